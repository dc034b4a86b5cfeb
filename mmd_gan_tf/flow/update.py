"""The parametric kernelised gradient-flow generator update (Mroueh & Nguyen 2020).

With a feature map Phi of dimension m on the critic features (`features.py`) and generator parameters theta
(P of them):
  delta = mean Phi(real) - mean_z Phi(G_theta(z))             [m]; 1/2 |delta|^2 is the flow's MMD^2
  J     = d/dtheta mean_z Phi(G_theta(z))                      [m, P]
  w     = (J J^T + lambda I)^-1 delta                          [m]  (the critic of the regularised problem)
  theta <- theta + eta J^T w  =  theta - eta (J^T J + lambda I)^-1 grad_theta 1/2 |delta|^2
The first-order change of 1/2 |delta|^2 is -eta delta^T J J^T (J J^T + lambda I)^-1 delta <= 0.

Replicas (MirroredStrategy, called inside `strategy.run`): means over the batch are GLOBAL means (mean over
replicas of the local means; local batches are equal), so J = mean_r J_r. Each replica returns -J_r^T w / R:
the optimizer sums gradients over replicas, so the applied update is exactly -J^T w, the one-device update.

The generator is evaluated with `stateless_call` (non-trainable state such as batch-norm statistics is updated
once per call of `flow_generator_gradients`, like a plain generator step, however many passes the solver makes);
`feature_fn` is called several times and must have no side effects (call the critic with training=False).
"""

from typing import Callable, Dict, List, Sequence, Tuple

import keras
import tensorflow as tf

from mmd_gan_tf import distribute
from mmd_gan_tf.config import ConfigError, FlowConfig
from mmd_gan_tf.flow.features import FEATURE_MAPS
from mmd_gan_tf.flow.solvers import conjugate_gradient, solve_direct

SOLVERS = ("direct", "cg")
METRICS = ("mean", "per_sample")


def validate_flow_config(cfg: FlowConfig) -> None:
  """Raises ConfigError (a ValueError) naming the first bad field of `cfg` ("flow.<field>": the command line
  names its flag)."""
  if not cfg.flow_lambda > 0:
    raise ConfigError("flow.flow_lambda", cfg.flow_lambda, "must be > 0 (flow_lambda)")
  if cfg.features not in FEATURE_MAPS:
    raise ConfigError("flow.features", cfg.features, f"{cfg.features!r} is not a flow feature map: {sorted(FEATURE_MAPS)}")
  if cfg.solver not in SOLVERS:
    raise ConfigError("flow.solver", cfg.solver, f"{cfg.solver!r} is not a flow solver: {SOLVERS}")
  if cfg.metric not in METRICS:
    raise ConfigError("flow.metric", cfg.metric, f"{cfg.metric!r} is not a flow metric: {METRICS}")
  if cfg.metric == "per_sample" and cfg.solver != "direct":
    raise ConfigError("flow.solver", cfg.solver, "the flow metric 'per_sample' needs the solver 'direct'")
  if cfg.rff_dim < 1:
    raise ConfigError("flow.rff_dim", cfg.rff_dim, "must be >= 1 (the flow's random features)")
  if not cfg.rff_sigma > 0:
    raise ConfigError("flow.rff_sigma", cfg.rff_sigma, "must be > 0 (the flow's random-feature bandwidth)")
  if cfg.cg_iterations < 1:
    raise ConfigError("flow.cg_iterations", cfg.cg_iterations, "must be >= 1 (the flow's cg solver)")
  if cfg.cg_tolerance < 0:
    raise ConfigError("flow.cg_tolerance", cfg.cg_tolerance, "must be >= 0 (the flow's cg solver)")


def _replica_mean(value, replica_context):
  """Mean over replicas of a (nest of) per-replica tensor(s); the identity on one replica."""
  if distribute.num_replicas(replica_context) == 1:
    return value
  return replica_context.all_reduce(tf.distribute.ReduceOp.MEAN, value)


def global_batch_mean(values: tf.Tensor, replica_context=None) -> tf.Tensor:
  """Mean over the global batch: the mean over replicas of the local batch means (equal local batches).

  Args:
    values: local features, [b, m].
    replica_context: `tf.distribute.get_replica_context()` inside `strategy.run`, or None on one device.

  Returns:
    [m], the same on every replica.
  """
  return _replica_mean(tf.reduce_mean(values, axis=0), replica_context)


def _fake_features(generator: keras.Model, feature_fn: Callable, z: tf.Tensor, theta: Sequence[tf.Tensor],
                   state: Sequence[tf.Tensor], training: bool) -> Tuple[tf.Tensor, List[tf.Tensor]]:
  """Phi(G_theta(z)) [b, m] without side effects, and the generator's updated non-trainable state."""
  images, new_state = generator.stateless_call(list(theta), list(state), z, training=training)
  return feature_fn(images), new_state


def _flatten_rows(jacobian: tf.Tensor, rows: int) -> tf.Tensor:
  return tf.reshape(tf.cast(jacobian, tf.float64), [rows, -1])


def _gram(jacobians: Sequence[tf.Tensor], m: int) -> tf.Tensor:
  """J J^T [m, m] float64 from per-variable Jacobians [m, *shape_v] (J = their concatenation over v)."""
  rows = [_flatten_rows(jacobian, m) for jacobian in jacobians]
  return tf.add_n([tf.matmul(row, row, transpose_b=True) for row in rows])


def _per_sample_metric(per_sample: Sequence[tf.Tensor], m: int) -> tf.Tensor:
  """D = mean_z J_z J_z^T [m, m] float64 from per-sample Jacobians [b, m, *shape_v]."""
  terms = []
  for jacobian in per_sample:
    flat = tf.reshape(tf.cast(jacobian, tf.float64), [tf.shape(jacobian)[0], m, -1])
    terms.append(tf.einsum("bip,bjp->ij", flat, flat) / tf.cast(tf.shape(flat)[0], tf.float64))
  return tf.add_n(terms)


def _contract(solution: tf.Tensor, jacobians: Sequence[tf.Tensor]) -> List[tf.Tensor]:
  """J^T w per variable: [m] x [m, *shape_v] -> [*shape_v]."""
  return [tf.tensordot(tf.cast(solution, jacobian.dtype), jacobian, axes=1) for jacobian in jacobians]


def _local_jacobians(tape, fake_phi, fake_mean, theta, metric, pfor):
  """Local J_r = d/dtheta mean_z Phi(G(z)) per variable [m, *shape_v], and the local D_r [m, m] or None.

  One reverse pass per row, vectorised by pfor or a tf.while_loop (pfor has no vectorised rule for
  Conv2DBackpropFilter and falls back to a loop inside pfor: on the CPU the plain loop is faster for conv nets).
  """
  options = dict(unconnected_gradients=tf.UnconnectedGradients.ZERO, experimental_use_pfor=pfor)
  if metric == "per_sample":
    # b m reverse passes (vectorised) and b m P floats of memory: b times the cost of the mean metric.
    per_sample = tape.jacobian(fake_phi, theta, **options)
    local = [tf.reduce_mean(jacobian, axis=0) for jacobian in per_sample]
    return local, _per_sample_metric(per_sample, fake_phi.shape[-1])
  return tape.jacobian(fake_mean, theta, **options), None


def _system_matrices(local, local_metric, m, replica_context):
  """(J J^T, system matrix) [m, m] float64 of the global batch: J = mean_r J_r, D = mean_r D_r."""
  gram = _gram(_replica_mean(local, replica_context), m)  # all-reduces m x P floats
  if local_metric is None:
    return gram, gram
  return gram, _replica_mean(local_metric, replica_context)


def flow_system_matrix(generator: keras.Model, feature_fn: Callable, z: tf.Tensor, metric: str = "mean",
                       replica_context=None, training: bool = True, pfor: bool = False) -> tf.Tensor:
  """The metric of the flow without side effects: J J^T ("mean") or D = mean_z J_z J_z^T ("per_sample").

  Args:
    generator, feature_fn, z, replica_context, training: as in `flow_generator_gradients`.
    metric: "mean" | "per_sample".
    pfor: vectorise the Jacobian with pfor (`FlowConfig.jacobian_pfor`).

  Returns:
    [m, m] float64, symmetric PSD; J is the Jacobian of the global-batch mean of Phi(G(z)).
  """
  if metric not in METRICS:
    raise ValueError(f"flow metric must be one of {METRICS}, got {metric!r}")
  theta = [tf.identity(variable.value) for variable in generator.trainable_variables]
  state = [variable.value for variable in generator.non_trainable_variables]
  with tf.GradientTape(persistent=not pfor) as tape:  # eager while-loop Jacobians need a persistent tape
    tape.watch(theta)
    fake_phi, _ = _fake_features(generator, feature_fn, z, theta, state, training)
    fake_mean = tf.reduce_mean(fake_phi, axis=0)
  local, local_metric = _local_jacobians(tape, fake_phi, fake_mean, theta, metric, pfor)
  return _system_matrices(local, local_metric, fake_phi.shape[-1], replica_context)[1]


def _direct_solve(tape, fake_phi, fake_mean, theta, delta, cfg, replica_context):
  """Direct solver: (w, local J_r^T w per variable, J J^T w, metrics) from the explicit Jacobian."""
  local, local_metric = _local_jacobians(tape, fake_phi, fake_mean, theta, cfg.metric, cfg.jacobian_pfor)
  gram, system = _system_matrices(local, local_metric, fake_phi.shape[-1], replica_context)
  solve = solve_direct(system, delta, cfg.flow_lambda)
  metrics = {"flow/min_eig": solve.eigenvalues[0],
             "flow/condition": solve.eigenvalues[-1] / solve.eigenvalues[0]}
  return solve.solution, _contract(solve.solution, local), tf.linalg.matvec(gram, solve.solution), metrics


def _cg_solve(tape, fake_mean, theta, delta, cfg, replica_context, forward_fn):
  """CG solver: each product u -> J (J^T u) is one reverse- and one forward-mode pass (two all-reduces)."""

  def vector_jacobian(u):  # local J_r^T u, per variable
    return tape.gradient(fake_mean, theta, output_gradients=tf.cast(u, fake_mean.dtype),
                         unconnected_gradients=tf.UnconnectedGradients.ZERO)

  def matvec(u):
    tangents = _replica_mean(vector_jacobian(u), replica_context)  # global J^T u
    with tf.autodiff.ForwardAccumulator(theta, tangents) as accumulator:
      mean = tf.reduce_mean(forward_fn(), axis=0)
    product = accumulator.jvp(mean, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return tf.cast(_replica_mean(product, replica_context), tf.float64)  # global J J^T u

  solve = conjugate_gradient(matvec, delta, cfg.flow_lambda, cfg.cg_iterations, cfg.cg_tolerance,
                             unroll=distribute.num_replicas(replica_context) > 1)
  gram_solution = delta - solve.residual - cfg.flow_lambda * solve.solution  # J J^T w, no extra product
  metrics = {"flow/min_eig": solve.ritz_min, "flow/condition": solve.ritz_max / solve.ritz_min,
             "flow/cg_iterations": solve.iterations,
             "flow/cg_relative_residual": tf.norm(solve.residual) / tf.norm(delta)}
  return solve.solution, vector_jacobian(solve.solution), gram_solution, metrics


def flow_generator_gradients(generator: keras.Model, feature_fn: Callable, z: tf.Tensor,
                             real_phi_mean: tf.Tensor, cfg: FlowConfig, replica_context=None,
                             training: bool = True, update_state: bool = True
                             ) -> Tuple[List[tf.Tensor], Dict[str, tf.Tensor]]:
  """The flow generator update as gradients for an optimizer.

  w = (J J^T + lambda I)^-1 delta (or (D + lambda I)^-1 delta, D = mean_z J_z J_z^T, with cfg.metric =
  "per_sample"); the returned gradients are -J^T w (divided by the replica count R, see the module docstring),
  so `optimizer.apply_gradients` moves theta along +J^T w. Costs beyond the forward pass: "direct" makes m
  reverse passes (a tf.while_loop, or pfor with cfg.jacobian_pfor) and holds m x P floats (all-reduced across
  replicas); "cg" makes k reverse + k forward-mode passes + 1 reverse pass (k <= cg_iterations; two
  all-reduces per product, of P and m floats) and holds nothing of size m P; "per_sample" makes b m reverse
  passes and holds b m P floats.

  Args:
    generator: built Keras model z [b, z_dim] -> images; its `trainable_variables` are theta.
    feature_fn: images [b, ...] -> Phi(critic(images)) [b, m], side-effect free (critic with training=False).
    z: the local latent batch, [b, z_dim].
    real_phi_mean: the GLOBAL mean of Phi on the real batch, [m] (see `global_batch_mean`).
    cfg: the flow configuration.
    replica_context: the replica context inside `strategy.run`, or None on one device.
    training: the generator's training flag (batch norm in training mode, as in a plain generator step).
    update_state: assign the generator's updated non-trainable state (batch-norm moving statistics) once;
      False when the caller has already run the generator on this batch in this step.

  Returns:
    (gradients aligned with `generator.trainable_variables`, metrics): "flow/mmd2_before" = 1/2 |delta|^2,
    "flow/predicted_decrease" = delta^T J J^T w (the first-order decrease of 1/2 |delta|^2 per unit step),
    "flow/step_norm" = |J^T w|, "flow/min_eig" and "flow/condition" of the system matrix + lambda I (Ritz
    estimates for cg, plus "flow/cg_iterations" and "flow/cg_relative_residual"); float32 scalars.
  """
  validate_flow_config(cfg)
  theta = [tf.identity(variable.value) for variable in generator.trainable_variables]
  state = [tf.identity(variable.value) for variable in generator.non_trainable_variables]
  # CG reuses the tape for every product; eager while-loop Jacobians need a persistent tape too.
  with tf.GradientTape(persistent=cfg.solver == "cg" or not cfg.jacobian_pfor) as tape:
    tape.watch(theta)
    fake_phi, new_state = _fake_features(generator, feature_fn, z, theta, state, training)
    fake_mean = tf.reduce_mean(fake_phi, axis=0)
  if update_state:
    for variable, value in zip(generator.non_trainable_variables, new_state):
      variable.assign(value)
  delta = tf.cast(real_phi_mean - _replica_mean(fake_mean, replica_context), tf.float64)
  if cfg.solver == "direct":
    solution, directions, gram_solution, metrics = _direct_solve(
        tape, fake_phi, fake_mean, theta, delta, cfg, replica_context)
  else:
    forward_fn = lambda: _fake_features(generator, feature_fn, z, theta, state, training)[0]  # noqa: E731
    solution, directions, gram_solution, metrics = _cg_solve(
        tape, fake_mean, theta, delta, cfg, replica_context, forward_fn)
  # Gradients are summed over replicas by the optimizer: -J_r^T w / R sums to -J^T w.
  scale = 1.0 / distribute.num_replicas(replica_context)
  gradients = [-scale * direction for direction in directions]
  metrics.update({"flow/mmd2_before": 0.5 * tf.reduce_sum(delta * delta),
                  "flow/predicted_decrease": tf.reduce_sum(delta * gram_solution),
                  "flow/step_norm": tf.sqrt(tf.maximum(tf.reduce_sum(solution * gram_solution), 0.0))})
  return gradients, {name: tf.cast(value, tf.float32) for name, value in metrics.items()}


def flow_mmd2(generator: keras.Model, feature_fn: Callable, z: tf.Tensor, real_phi_mean: tf.Tensor,
              replica_context=None, training: bool = True) -> tf.Tensor:
  """1/2 |mean Phi(real) - mean_z Phi(G(z))|^2 (global means) without side effects: "flow/mmd2_after".

  Args:
    generator, feature_fn, z, real_phi_mean, replica_context, training: as in `flow_generator_gradients`
      (pass the same z and real_phi_mean after `apply_gradients` to measure the step's actual decrease).

  Returns:
    Scalar in the dtype of `real_phi_mean`.
  """
  theta = [variable.value for variable in generator.trainable_variables]
  state = [variable.value for variable in generator.non_trainable_variables]
  fake_phi, _ = _fake_features(generator, feature_fn, z, theta, state, training)
  delta = tf.cast(real_phi_mean - global_batch_mean(fake_phi, replica_context), tf.float64)
  return tf.cast(0.5 * tf.reduce_sum(delta * delta), real_phi_mean.dtype)


class FlowGeneratorUpdate:
  """The trainer's `generator_update(nets, outputs, z) -> (grads, metrics)` hook for `--loss=flow`.

  Duck-typed on the trainer's objects: `nets.generator` (Keras model), `outputs.critic(images, training)`
  (local critic features), `outputs.real_features` (the ALL-GATHERED global real features [B, critic_dim]).
  Call it inside `strategy.run` after the step's plain forward pass (which already updated the generator's
  batch-norm statistics, hence update_state=False); after `apply_gradients`, `mmd2_after` gives
  "flow/mmd2_after" on the same z and real batch.
  """

  def __init__(self, cfg: FlowConfig, feature_map: Callable):
    validate_flow_config(cfg)
    self.cfg = cfg
    self.feature_map = feature_map

  def _inputs(self, outputs):
    def feature_fn(images):
      return self.feature_map(tf.cast(outputs.critic(images, training=False), tf.float32))
    real_phi_mean = tf.reduce_mean(self.feature_map(tf.stop_gradient(outputs.real_features)), axis=0)
    return feature_fn, real_phi_mean

  # Plain Python on tensors: no autograph conversion needed inside the trainer's tf.function.
  @tf.autograph.experimental.do_not_convert
  def __call__(self, nets, outputs, z):
    feature_fn, real_phi_mean = self._inputs(outputs)
    return flow_generator_gradients(nets.generator, feature_fn, z, real_phi_mean, self.cfg,
                                    tf.distribute.get_replica_context(), update_state=False)

  @tf.autograph.experimental.do_not_convert
  def mmd2_after(self, nets, outputs, z):
    feature_fn, real_phi_mean = self._inputs(outputs)
    return flow_mmd2(nets.generator, feature_fn, z, real_phi_mean, tf.distribute.get_replica_context())

  def metrics_after(self, nets, outputs, z) -> Dict[str, tf.Tensor]:
    """What the step logs after the update was applied: {"flow/mmd2_after"}."""
    return {"flow/mmd2_after": self.mmd2_after(nets, outputs, z)}

  @property
  def checkpointed(self) -> Dict[str, tf.Module]:
    """The trackables of the update that a checkpoint must hold (the random features' frequencies)."""
    return {"flow_features": self.feature_map} if isinstance(self.feature_map, tf.Module) else {}


def build_generator_update(cfg) -> FlowGeneratorUpdate:
  """The update of `--loss=flow` for a run's `Config` (its feature map seeded by the run's seed);
  `losses.FLOW.build` calls it."""
  from mmd_gan_tf.flow.features import make_feature_map  # pylint: disable=import-outside-toplevel
  return FlowGeneratorUpdate(cfg.flow, make_feature_map(cfg.flow, cfg.model.critic_dim, seed=cfg.train.seed))


def validate_generator_update(cfg) -> None:
  """`losses.FLOW.validate`: the flow settings of a run's `Config`."""
  validate_flow_config(cfg.flow)
