"""Tests of the gradient-flow generator update (SPEC section 9) against float64 numpy oracles."""

import dataclasses
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_gan_tf.config import FlowConfig
from mmd_gan_tf.flow.update import (FlowGeneratorUpdate, flow_generator_gradients, flow_mmd2, flow_system_matrix,
                             global_batch_mean, validate_flow_config)
from mmd_gan_tf.flow.features import RandomFourierFeatures, critic_feature_map, make_feature_map
from mmd_gan_tf.flow.solvers import conjugate_gradient, solve_direct

Z_DIM, HIDDEN, OUT = 3, 5, 6


# ---------------------------------------------------------------------------------------------- fixtures
def _generator(dtype="float64", seed=0, hidden=HIDDEN, batch_norm=False):
  """A 2-layer dense generator z [b, 3] -> x [b, 6] (P = 56 parameters with hidden = 5)."""
  keras.utils.set_random_seed(seed)
  layers = [keras.Input((Z_DIM,)), keras.layers.Dense(hidden, activation="tanh", dtype=dtype)]
  if batch_norm:
    layers.append(keras.layers.BatchNormalization(dtype=dtype))
  layers.append(keras.layers.Dense(OUT, dtype=dtype))
  return keras.Sequential(layers)


def _critic_matrix(m, seed=1):
  return np.random.default_rng(seed).normal(size=(OUT, m)) / np.sqrt(OUT)


def _feature_fn(matrix, duplicate=False):
  """A fixed "critic" tanh(x C) [b, m] (duplicate: [Phi, Phi], a rank-deficient J J^T)."""
  def feature_fn(images):
    phi = tf.tanh(tf.matmul(images, tf.cast(matrix, images.dtype)))
    return tf.concat([phi, phi], axis=1) if duplicate else phi
  return feature_fn


def _latents(batch, seed=2):
  return np.random.default_rng(seed).normal(size=(batch, Z_DIM))


def _np_phi(flat, generator, z, matrix, duplicate=False):
  """numpy float64 Phi(G_theta(z)) [b, m] for the flat parameter vector theta [P]."""
  params, start = [], 0
  for variable in generator.trainable_variables:
    size = int(np.prod(variable.shape))
    params.append(flat[start:start + size].reshape(variable.shape))
    start += size
  weights = iter(params)
  hidden = np.tanh(z @ next(weights) + next(weights))
  phi = np.tanh((hidden @ next(weights) + next(weights)) @ matrix)
  return np.concatenate([phi, phi], axis=1) if duplicate else phi


def _flat_params(generator):
  return np.concatenate([np.asarray(v.numpy(), np.float64).ravel() for v in generator.trainable_variables])


def _np_jacobian(fn, flat, eps=1e-6):
  """Central finite differences of fn: [P] -> [...], returned as [..., P]."""
  columns = []
  for i in range(flat.size):
    step = np.zeros_like(flat)
    step[i] = eps
    columns.append((fn(flat + step) - fn(flat - step)) / (2 * eps))
  return np.stack(columns, axis=-1)


def _np_flow(generator, z, matrix, real_mean, flow_lambda, duplicate=False):
  """numpy oracle: (J [m, P], delta [m], w [m], J^T w [P])."""
  flat = _flat_params(generator)
  jacobian = _np_jacobian(lambda t: _np_phi(t, generator, z, matrix, duplicate).mean(0), flat)
  delta = real_mean - _np_phi(flat, generator, z, matrix, duplicate).mean(0)
  solution = np.linalg.solve(jacobian @ jacobian.T + flow_lambda * np.eye(len(delta)), delta)
  return jacobian, delta, solution, jacobian.T @ solution


def _flat(tensors):
  return np.concatenate([np.asarray(t, np.float64).ravel() for t in tensors])


def _apply(generator, gradients, step):
  for variable, gradient in zip(generator.trainable_variables, gradients):
    variable.assign_sub(step * tf.cast(gradient, variable.dtype))


def _problem(m=4, batch=7, dtype="float64", duplicate=False, hidden=HIDDEN, target_shift=0.3):
  """A generator, feature_fn, z and a real mean 'target_shift' away from the current fake mean."""
  generator = _generator(dtype, hidden=hidden)
  matrix = _critic_matrix(m)
  z = tf.constant(_latents(batch), dtype)
  fake_mean = _np_phi(_flat_params(generator), generator, _latents(batch), matrix, duplicate).mean(0)
  shift = np.random.default_rng(3).normal(size=fake_mean.shape)
  real_mean = fake_mean + target_shift * shift / np.linalg.norm(shift)
  return generator, _feature_fn(matrix, duplicate), z, tf.constant(real_mean, dtype), matrix


# ---------------------------------------------------------------------------------------------- features
def test_rff_matches_numpy_formula_and_gaussian_kernel():
  rff = RandomFourierFeatures(input_dim=3, num_features=20000, sigma=2.0, seed=5)
  points = np.random.default_rng(0).normal(size=(4, 3))
  features = rff(tf.constant(points, tf.float64)).numpy()
  frequencies, phases = rff.frequencies.numpy().astype(np.float64), rff.phases.numpy().astype(np.float64)
  np.testing.assert_allclose(features, np.sqrt(2 / 20000) * np.cos(points @ frequencies + phases), atol=1e-12)
  assert abs(frequencies.std() - 0.5) < 0.01 and phases.min() >= 0 and phases.max() <= 2 * np.pi
  squared = ((points[:, None] - points[None]) ** 2).sum(-1)
  np.testing.assert_allclose(features @ features.T, np.exp(-squared / (2 * 2.0 ** 2)), atol=0.03)


def test_rff_is_seeded_non_trainable_and_checkpointed(tmp_path):
  first, again, other = (RandomFourierFeatures(4, 8, seed=s) for s in (1, 1, 2))
  np.testing.assert_array_equal(first.frequencies.numpy(), again.frequencies.numpy())
  assert not np.allclose(first.frequencies.numpy(), other.frequencies.numpy())
  assert not first.trainable_variables and len(first.variables) == 2
  path = tf.train.Checkpoint(rff=first).save(str(tmp_path / "ckpt"))
  tf.train.Checkpoint(rff=other).restore(path).assert_consumed()
  np.testing.assert_array_equal(other.phases.numpy(), first.phases.numpy())


def test_make_feature_map():
  features = tf.random.normal([5, 3])
  critic_map = make_feature_map(FlowConfig(features="critic"), critic_dim=3)
  assert critic_map is critic_feature_map and critic_map(features) is features
  rff = make_feature_map(FlowConfig(features="rff", rff_dim=10, rff_sigma=0.5), critic_dim=3, seed=4)
  assert rff(features).shape == (5, 10) and rff.sigma == 0.5
  with pytest.raises(ValueError, match="'gauss'"):
    make_feature_map(FlowConfig(features="gauss"), critic_dim=3)


# ---------------------------------------------------------------------------------------------- solvers
@pytest.mark.parametrize("rank", [7, 3])
def test_solve_direct_matches_numpy(rank):
  rng = np.random.default_rng(rank)
  factor = rng.normal(size=(7, rank))
  gram, delta = factor @ factor.T, rng.normal(size=7)
  solve = solve_direct(tf.constant(gram, tf.float32), delta, 0.05)
  np.testing.assert_allclose(solve.solution, np.linalg.solve(gram + 0.05 * np.eye(7), delta), rtol=1e-4)
  np.testing.assert_allclose(solve.eigenvalues, np.linalg.eigvalsh(gram) + 0.05, rtol=1e-5, atol=1e-6)
  assert solve.solution.dtype == tf.float64


@pytest.mark.parametrize("unroll", [False, True])
def test_conjugate_gradient_matches_numpy(unroll):
  rng = np.random.default_rng(0)
  factor = rng.normal(size=(9, 5))
  gram, delta = factor @ factor.T, rng.normal(size=9)
  matvec = lambda u: tf.linalg.matvec(tf.constant(gram), u)  # noqa: E731
  solve = tf.function(lambda: conjugate_gradient(matvec, delta, 0.1, 20, 1e-12, unroll=unroll))()
  np.testing.assert_allclose(solve.solution, np.linalg.solve(gram + 0.1 * np.eye(9), delta), rtol=1e-9)
  assert int(solve.iterations) == 6  # 5 distinct eigenvalues + lambda: exact in 6 steps
  eigenvalues = np.linalg.eigvalsh(gram) + 0.1
  np.testing.assert_allclose([solve.ritz_min, solve.ritz_max], eigenvalues[[0, -1]], rtol=1e-8)
  few = conjugate_gradient(matvec, delta, 0.1, 2, 0.0, unroll=unroll)
  assert int(few.iterations) == 2 and few.ritz_min >= eigenvalues[0] - 1e-9
  assert few.ritz_max <= eigenvalues[-1] + 1e-9
  np.testing.assert_allclose(few.residual, delta - (gram + 0.1 * np.eye(9)) @ few.solution.numpy(), atol=1e-9)


# ---------------------------------------------------------------------------------------------- the flow
@pytest.mark.parametrize("duplicate, pfor", [(False, False), (True, False), (False, True)])
def test_gram_matches_finite_differences(duplicate, pfor):
  generator, feature_fn, z, _, matrix = _problem(m=4, duplicate=duplicate)
  gram = flow_system_matrix(generator, feature_fn, z, pfor=pfor).numpy()
  flat = _flat_params(generator)
  jacobian = _np_jacobian(lambda t: _np_phi(t, generator, z.numpy(), matrix, duplicate).mean(0), flat)
  np.testing.assert_allclose(gram, jacobian @ jacobian.T, rtol=1e-7, atol=1e-10)


def test_per_sample_metric_matches_finite_differences():
  generator, feature_fn, z, _, matrix = _problem(m=4, batch=5)
  metric = flow_system_matrix(generator, feature_fn, z, metric="per_sample", pfor=True).numpy()
  per_sample = _np_jacobian(lambda t: _np_phi(t, generator, z.numpy(), matrix), _flat_params(generator))
  np.testing.assert_allclose(metric, np.einsum("bip,bjp->ij", per_sample, per_sample) / 5, rtol=1e-7, atol=1e-10)
  one = z[:1]  # with one sample D = J J^T, so both metrics give the same update
  mean_update = flow_generator_gradients(generator, feature_fn, one, tf.zeros(4, tf.float64), FlowConfig())
  sample_update = flow_generator_gradients(generator, feature_fn, one, tf.zeros(4, tf.float64),
                                           FlowConfig(metric="per_sample"))
  np.testing.assert_allclose(_flat(mean_update[0]), _flat(sample_update[0]), rtol=1e-9)


@pytest.mark.parametrize("solver", ["direct", "cg"])
def test_update_matches_numpy_oracle(solver):
  generator, feature_fn, z, real_mean, matrix = _problem(m=5)
  cfg = FlowConfig(flow_lambda=0.01, solver=solver, cg_iterations=10, cg_tolerance=1e-12)
  gradients, metrics = flow_generator_gradients(generator, feature_fn, z, real_mean, cfg)
  jacobian, delta, solution, direction = _np_flow(generator, z.numpy(), matrix, real_mean.numpy(), 0.01)
  np.testing.assert_allclose(-_flat(gradients), direction, rtol=1e-6, atol=1e-9)
  gram = jacobian @ jacobian.T
  eigenvalues = np.linalg.eigvalsh(gram + 0.01 * np.eye(5))
  expected = {"flow/mmd2_before": 0.5 * delta @ delta, "flow/predicted_decrease": delta @ gram @ solution,
              "flow/step_norm": np.linalg.norm(direction), "flow/min_eig": eigenvalues[0],
              "flow/condition": eigenvalues[-1] / eigenvalues[0]}
  for name, value in expected.items():
    np.testing.assert_allclose(metrics[name], value, rtol=1e-4, err_msg=name)
  assert metrics["flow/predicted_decrease"] > 0 and all(v.dtype == tf.float32 for v in metrics.values())


def test_direct_and_cg_agree_in_float32():
  generator, feature_fn, z, real_mean, _ = _problem(m=6, dtype="float32")
  direct, _ = flow_generator_gradients(generator, feature_fn, z, real_mean, FlowConfig(flow_lambda=0.1))
  cg, metrics = flow_generator_gradients(generator, feature_fn, z, real_mean,
                                         FlowConfig(flow_lambda=0.1, solver="cg", cg_tolerance=1e-7))
  np.testing.assert_allclose(_flat(cg), _flat(direct), rtol=1e-3, atol=1e-5)
  assert metrics["flow/cg_relative_residual"] < 1e-5


def test_small_step_decreases_mmd2_by_predicted_amount():
  generator, feature_fn, z, real_mean, _ = _problem(m=4)
  cfg = FlowConfig(flow_lambda=0.1)
  gradients, metrics = flow_generator_gradients(generator, feature_fn, z, real_mean, cfg)
  start = [v.numpy() for v in generator.trainable_variables]
  before = float(flow_mmd2(generator, feature_fn, z, real_mean))  # float64, like the model
  np.testing.assert_allclose(metrics["flow/mmd2_before"], before, rtol=1e-6)
  errors = []
  for step in (1e-1, 1e-2, 1e-3):
    _apply(generator, gradients, step)
    actual = before - float(flow_mmd2(generator, feature_fn, z, real_mean))
    errors.append(abs(actual / (step * float(metrics["flow/predicted_decrease"])) - 1))
    for variable, value in zip(generator.trainable_variables, start):
      variable.assign(value)
  assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-3, errors


def test_large_lambda_tends_to_mmd_gradient():
  generator, feature_fn, z, real_mean, _ = _problem(m=4)
  with tf.GradientTape() as tape:  # the plain MMD^2 generator gradient: grad of 1/2 |delta|^2
    delta = real_mean - tf.reduce_mean(feature_fn(generator(z, training=True)), axis=0)
    loss = 0.5 * tf.reduce_sum(delta * delta)
  plain = _flat(tape.gradient(loss, generator.trainable_variables))
  cosines = []
  for flow_lambda in (1e-3, 1e-1, 1e1, 1e3):
    gradients, _ = flow_generator_gradients(generator, feature_fn, z, real_mean, FlowConfig(flow_lambda=flow_lambda))
    flow = _flat(gradients)
    cosines.append(flow @ plain / np.linalg.norm(flow) / np.linalg.norm(plain))
  assert all(a < b for a, b in zip(cosines, cosines[1:])) and cosines[-1] > 1 - 1e-6, cosines


@pytest.mark.parametrize("lambda_scale, step", [(1e-6, 0.5), (1.0, 0.3)])
def test_repeated_steps_shrink_delta_geometrically(lambda_scale, step):
  """Rate of SPEC section 9: J J^T >= mu I gives |delta| shrinking by at least 1 - step mu / (mu + lambda)."""
  generator, feature_fn, z, real_mean, _ = _problem(m=4, target_shift=0.05)
  mu = np.linalg.eigvalsh(flow_system_matrix(generator, feature_fn, z).numpy())[0]
  cfg = FlowConfig(flow_lambda=lambda_scale * mu)
  update = tf.function(lambda: flow_generator_gradients(generator, feature_fn, z, real_mean, cfg))
  norms, bounds = [np.sqrt(2 * float(flow_mmd2(generator, feature_fn, z, real_mean)))], []
  for _ in range(8):
    gradients, metrics = update()
    mu_now = float(metrics["flow/min_eig"]) - cfg.flow_lambda  # smallest eigenvalue of J J^T at this step
    bounds.append(1 - step * mu_now / (mu_now + cfg.flow_lambda))
    _apply(generator, gradients, step)
    norms.append(np.sqrt(2 * float(flow_mmd2(generator, feature_fn, z, real_mean))))
  ratios = np.array(norms[1:]) / np.array(norms[:-1])
  assert np.all(ratios <= np.array(bounds) + 0.02) and norms[-1] < 0.95 ** 8 * norms[0], (ratios, bounds)
  if lambda_scale < 1e-3:  # Gauss-Newton: exactly the rate 1 - step to first order
    np.testing.assert_allclose(ratios, 1 - step, atol=0.02)


@pytest.mark.parametrize("solver", ["direct", "cg"])
@pytest.mark.parametrize("case", ["duplicated_features", "more_features_than_parameters"])
def test_rank_deficient_solve_stays_finite(solver, case):
  if case == "duplicated_features":
    generator, feature_fn, z, real_mean, matrix = _problem(m=4, duplicate=True)
  else:  # hidden 1: P = 3 + 1 + 6 + 6 = 16 < m = 20
    generator, feature_fn, z, real_mean, matrix = _problem(m=20, hidden=1)
  cfg = FlowConfig(flow_lambda=1e-9, solver=solver, cg_iterations=40)
  gradients, metrics = flow_generator_gradients(generator, feature_fn, z, real_mean, cfg)
  assert np.all(np.isfinite(_flat(gradients))) and np.all(np.isfinite(list(metrics.values())))
  # 0 <= delta^T A (A + lambda)^-1 delta <= |delta|^2; strictly below it when delta leaves the range of J.
  assert 0 <= metrics["flow/predicted_decrease"] <= 2 * metrics["flow/mmd2_before"]
  assert metrics["flow/condition"] > 1e6
  if solver == "direct":
    np.testing.assert_allclose(metrics["flow/min_eig"], 1e-9, rtol=1e-2)
  *_, direction = _np_flow(generator, z.numpy(), matrix, real_mean.numpy(), 1e-9, duplicate=case[0] == "d")
  flow = -_flat(gradients)
  assert flow @ direction / np.linalg.norm(flow) / np.linalg.norm(direction) > 0.999


def test_state_updated_once_and_mmd2_has_no_side_effects():
  generator = _generator("float32", batch_norm=True)
  reference = _generator("float32", batch_norm=True)
  reference.set_weights(generator.get_weights())
  z = tf.constant(_latents(6), tf.float32)
  feature_fn = _feature_fn(_critic_matrix(4))
  cfg = FlowConfig(solver="cg", cg_iterations=5, cg_tolerance=0.0)
  flow_generator_gradients(generator, feature_fn, z, tf.zeros(4), cfg)
  flow_mmd2(generator, feature_fn, z, tf.zeros(4))
  reference(z, training=True)  # one plain training call
  for variable, expected in zip(generator.non_trainable_variables, reference.non_trainable_variables):
    np.testing.assert_allclose(variable.numpy(), expected.numpy(), rtol=1e-6)
  assert not np.allclose(reference.non_trainable_variables[0].numpy(), 0.0)
  before = [v.numpy() for v in generator.non_trainable_variables]
  flow_generator_gradients(generator, feature_fn, z, tf.zeros(4), cfg, update_state=False)
  for variable, expected in zip(generator.non_trainable_variables, before):
    np.testing.assert_array_equal(variable.numpy(), expected)


def test_trainer_hook_uses_global_real_features_and_critic_without_side_effects():
  generator, _, z, _, matrix = _problem(m=4, dtype="float32")
  real_features = tf.random.stateless_normal([9, 4], seed=[0, 1])
  calls = []

  def critic(images, training=True):
    calls.append(training)
    return tf.tanh(tf.matmul(images, tf.cast(matrix, images.dtype)))

  rff = RandomFourierFeatures(4, 16, seed=3)
  hook = FlowGeneratorUpdate(FlowConfig(features="rff", rff_dim=16), rff)
  nets, outputs = types.SimpleNamespace(generator=generator), types.SimpleNamespace(
      critic=critic, real_features=real_features)
  gradients, metrics = hook(nets, outputs, z)
  assert calls == [False]  # direct solver: one forward pass, critic without side effects
  feature_fn = lambda images: rff(critic(images))  # noqa: E731
  real_phi_mean = tf.reduce_mean(rff(real_features), axis=0)  # Phi before the mean
  expected, expected_metrics = flow_generator_gradients(generator, feature_fn, z, real_phi_mean, hook.cfg)
  np.testing.assert_allclose(_flat(gradients), _flat(expected), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(metrics["flow/mmd2_before"], expected_metrics["flow/mmd2_before"], rtol=1e-6)
  np.testing.assert_allclose(hook.mmd2_after(nets, outputs, z), flow_mmd2(generator, feature_fn, z, real_phi_mean))


def test_two_replicas_apply_the_one_device_update(two_replica_strategy):
  # Both solvers share one strategy: a second MirroredStrategy in the same process reuses the collective
  # instance keys of the first (TF issue 62790), see the report on tests/conftest.py.
  for solver in ("direct", "cg"):
    _check_two_replicas(two_replica_strategy, FlowConfig(flow_lambda=0.05, solver=solver, cg_iterations=8,
                                                         cg_tolerance=0.0))


def _check_two_replicas(strategy, cfg, learning_rate=0.5):
  """Global batch 8 split 4 + 4: summed replica gradients, SGD-updated weights and metrics equal one device's."""
  feature_fn = _feature_fn(_critic_matrix(4))
  z = _latents(8).astype(np.float32)
  real = np.random.default_rng(7).normal(size=(8, OUT)).astype(np.float32)

  single = _generator("float32")
  real_mean = tf.reduce_mean(feature_fn(tf.constant(real)), axis=0)
  expected, expected_metrics = flow_generator_gradients(single, feature_fn, tf.constant(z), real_mean, cfg)
  _apply(single, expected, learning_rate)
  expected_metrics["flow/mmd2_after"] = flow_mmd2(single, feature_fn, tf.constant(z), real_mean)

  with strategy.scope():
    generator = _generator("float32")
    optimizer = keras.optimizers.SGD(learning_rate)
    optimizer.build(generator.trainable_variables)

  def replica_step(z_local, real_local):
    context = tf.distribute.get_replica_context()
    real_phi_mean = global_batch_mean(feature_fn(real_local), context)
    gradients, metrics = flow_generator_gradients(generator, feature_fn, z_local, real_phi_mean, cfg, context)
    optimizer.apply_gradients(zip(gradients, generator.trainable_variables))
    metrics["flow/mmd2_after"] = flow_mmd2(generator, feature_fn, z_local, real_phi_mean, context)
    return gradients, metrics

  halves = lambda array: strategy.experimental_distribute_values_from_function(  # noqa: E731
      lambda ctx: tf.constant(array[4 * ctx.replica_id_in_sync_group:4 * ctx.replica_id_in_sync_group + 4]))
  gradients, metrics = tf.function(lambda a, b: strategy.run(replica_step, args=(a, b)))(halves(z), halves(real))
  local = [strategy.experimental_local_results(g) for g in gradients]
  summed = _flat([sum(np.asarray(part) for part in parts) for parts in local])
  np.testing.assert_allclose(summed, _flat(expected), rtol=1e-4, atol=1e-5, err_msg=cfg.solver)
  np.testing.assert_allclose(_flat(generator.trainable_variables), _flat(single.trainable_variables), atol=1e-5)
  for name, value in expected_metrics.items():
    for replica_value in strategy.experimental_local_results(metrics[name]):
      np.testing.assert_allclose(replica_value, value, rtol=1e-3, atol=1e-6, err_msg=f"{cfg.solver} {name}")


@pytest.mark.parametrize("field, value, match", [
    ("flow_lambda", 0.0, "flow_lambda"), ("features", "gauss", "'gauss'"), ("solver", "lu", "'lu'"),
    ("metric", "full", "'full'"), ("rff_dim", 0, "rff_dim"), ("cg_iterations", 0, "cg_iterations"),
    ("cg_tolerance", -1.0, "cg_tolerance"), ("rff_sigma", 0.0, "rff_sigma")])
def test_validate_flow_config_names_the_bad_value(field, value, match):
  with pytest.raises(ValueError, match=match):
    validate_flow_config(dataclasses.replace(FlowConfig(), **{field: value}))
  with pytest.raises(ValueError, match="per_sample"):
    validate_flow_config(FlowConfig(metric="per_sample", solver="cg"))


def test_the_flow_loss_owns_its_generator_update():
  """The loss's registry entry builds the update (feature map seeded by the run) and names what joins the
  checkpoint; the trainer asks it, naming no update kind."""
  from flags import build as config_builder  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import losses, trainer  # pylint: disable=import-outside-toplevel
  assert trainer._generator_update(config_builder.build_config({"loss": "rep_b"})) == (None, {})  # pylint: disable=protected-access
  cfg = config_builder.build_config({"loss": "flow", "flow_features": "rff", "flow_rff_dim": 8, "seed": 3})
  update, tracked = trainer._generator_update(cfg)  # pylint: disable=protected-access
  assert isinstance(update, FlowGeneratorUpdate) and list(tracked) == ["flow_features"]
  assert isinstance(tracked["flow_features"], RandomFourierFeatures)
  np.testing.assert_array_equal(tracked["flow_features"].frequencies.numpy(),
                                make_feature_map(cfg.flow, cfg.model.critic_dim, seed=3).frequencies.numpy())
  critic_cfg = config_builder.build_config({"loss": "flow", "flow_features": "critic"})
  assert trainer._generator_update(critic_cfg)[1] == {}  # pylint: disable=protected-access
  with pytest.raises(ValueError, match="flow"):
    losses.FLOW.validate(dataclasses.replace(cfg, flow=dataclasses.replace(cfg.flow, cg_iterations=0)))
