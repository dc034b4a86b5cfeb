"""Critic and generator losses of the MMD GAN family and the baselines.

Every loss is `fn(outputs: CriticOutputs, cfg: LossConfig) -> LossTerms`; `LOSSES[name]` is a
`LossSpec` holding the critic and the generator loss. The critic MINIMISES its loss.

The replica rule (ARCHITECTURE.md): kernel / MMD terms use the GLOBAL, all-gathered features
`real_features` / `fake_features`; per-example terms (penalties, reconstruction errors) are local
means over this replica's examples. The trainer divides every loss by num_replicas_in_sync.

Every MMD-based loss reports the metrics "kernel/real_real", "kernel/fake_fake", "kernel/real_fake"
(the Gram block means; off-diagonal means for rep / rep_b), "mmd2", and its penalty components.
"""

import dataclasses
import importlib
from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple

import tensorflow as tf

from mmd_gan_tf import estimators, kernels, penalties
from mmd_gan_tf.config import Config, ConfigError, LossConfig


class CriticOutputs(NamedTuple):
  """What the trainer hands to a loss.

  Attributes:
    real_images: [b, H, W, C] this replica's real images.
    fake_images: [b, H, W, C] this replica's generated images.
    real_features: [B, critic_dim] critic features of the GLOBAL real batch (all-gathered, differentiable).
    fake_features: [B, critic_dim] critic features of the GLOBAL fake batch.
    critic: callable(images, training=True) -> [b, critic_dim] local features.
    gather: callable [b, ...] -> [B, ...] (differentiable all-gather; identity on one device).
    real_activations: list of local critic activations on real images, or None.
    fake_activations: list of local critic activations on fake images, or None.
    real_reconstruction: [b, H, W, C] decoder output for the real codes (loss `mmd`), or None.
    fake_reconstruction: [b, H, W, C] decoder output for the fake codes, or None.
    seed: optional stateless seed [2] for the gradient-penalty interpolates (per replica and step);
      a stateful draw when None.
  """
  real_images: tf.Tensor
  fake_images: tf.Tensor
  real_features: tf.Tensor
  fake_features: tf.Tensor
  critic: Optional[Callable] = None
  gather: Optional[Callable] = None
  real_activations: Optional[Sequence[tf.Tensor]] = None
  fake_activations: Optional[Sequence[tf.Tensor]] = None
  real_reconstruction: Optional[tf.Tensor] = None
  fake_reconstruction: Optional[tf.Tensor] = None
  seed: Optional[tf.Tensor] = None


class LossTerms(NamedTuple):
  """A scalar loss and the scalars to log beside it."""
  loss: tf.Tensor
  metrics: Dict[str, tf.Tensor]


LossFn = Callable[[CriticOutputs, LossConfig], LossTerms]


Check = Callable[[Config], None]

@dataclasses.dataclass(frozen=True)
class GeneratorUpdateKind:
  """A generator update other than the gradient of the generator loss, owned by its own module.

  `module` defines `build_generator_update(cfg: Config) -> update` (everything the update needs, e.g. the
  flow's feature map) and `validate_generator_update(cfg: Config)` (raises ValueError naming the bad value;
  run when the config is built). The built update is called in the generator step as
  `update(nets, outputs, z) -> (grads, metrics)`; its gradients are applied as given, then
  `update.metrics_after(nets, outputs, z) -> dict` adds what it measures after the step, and
  `update.checkpointed` (a dict of trackables) joins the run's checkpoint. The module is imported when used
  (it may import this one).
  """
  name: str
  module: str
  section: str  # the Config section of its settings (e.g. "flow"): a flag setting one has no effect elsewhere

  def build(self, cfg: Config):
    return importlib.import_module(self.module).build_generator_update(cfg)

  def validate(self, cfg: Config) -> None:
    importlib.import_module(self.module).validate_generator_update(cfg)


# How the generator moves: by the gradient of its loss (None), or by the gradient flow of flow/update.py.
GRADIENT = None
FLOW = GeneratorUpdateKind("flow", "mmd_gan_tf.flow.update", "flow")


class LossSpec(NamedTuple):
  """One entry of `LOSSES`: the two losses and what the trainer and the config must provide for them.

  Attributes:
    critic_loss: the critic's LossFn (minimised).
    generator_loss: the generator's LossFn (minimised; only logged for the flow update).
    needs_activations: the critic loss reads every critic layer's activations (L2 penalty).
    needs_decoder: the critic loss reads reconstructions (an arch with a decoder).
    uses_kernel: the loss applies `cfg.kernel` to critic features (the MMD family), so the kernel's
      own check applies and its parameters matter.
    generator_update: GRADIENT (None: the gradient of generator_loss) or a GeneratorUpdateKind (FLOW).
    second_order: the critic loss differentiates the critic with respect to its input (a gradient penalty,
      the SMMD scale), so the critic's update takes gradients of gradients. XLA on a CPU compiles these
      into much slower code (`trainer.use_xla`).
    generator_optimizer: the optimizer the generator must use whatever `optim.optimizer` says, or None.
    checks: fns(Config) raising ConfigError for a combination this loss cannot train; run by
      `check_config` when the config is built.
    parameters: the LossConfig fields the loss itself reads, besides its kernel's (`KernelSpec.parameters`):
      a flag setting another one has no effect with this loss and is refused.
    description: one line for `--help`.
  """
  critic_loss: LossFn
  generator_loss: LossFn
  needs_activations: bool = False
  needs_decoder: bool = False
  uses_kernel: bool = False
  generator_update: Optional[GeneratorUpdateKind] = GRADIENT
  second_order: bool = False
  generator_optimizer: Optional[str] = None
  checks: Tuple[Check, ...] = ()
  parameters: Tuple[str, ...] = ()
  description: str = ""


# ----------------------------------------------------------------------------------------------------
# Shared pieces.


def _features(outputs: CriticOutputs):
  return kernels.as_kernel_dtype(outputs.real_features), kernels.as_kernel_dtype(outputs.fake_features)


def _blocks(outputs: CriticOutputs, cfg: LossConfig) -> kernels.GramBlocks:
  """Gram blocks of the configured (unbounded) kernel on the global features."""
  if cfg.kernel == "bounded_rbf":
    raise ValueError("kernel 'bounded_rbf' is critic-side only: use loss 'rep_b' with kernel 'rbf'")
  return kernels.get_kernel(cfg.kernel)(*_features(outputs), cfg)


def _kernel_metrics(blocks: kernels.GramBlocks, mean: Callable = tf.reduce_mean) -> Dict[str, tf.Tensor]:
  return {"kernel/real_real": mean(blocks.real_real), "kernel/fake_fake": mean(blocks.fake_fake),
          "kernel/real_fake": mean(blocks.real_fake)}


def _scalar_critic(features: tf.Tensor, name: str) -> tf.Tensor:
  """[B, 1] critic outputs -> [B]; the all-gather loses static shapes, so the check is dynamic then."""
  if features.shape.rank not in (None, 2) or features.shape[-1] not in (None, 1):
    raise ValueError(f"loss {name!r} needs critic_dim 1, got critic features of shape {features.shape}")
  features = kernels.as_kernel_dtype(features)
  with tf.control_dependencies([tf.debugging.assert_equal(
      tf.shape(features)[-1], 1, message=f"loss {name!r} needs critic_dim 1")]):
    return tf.reshape(features, [-1])


def _require(value, what: str, loss: str):
  if value is None:
    raise ValueError(f"loss {loss!r} needs CriticOutputs.{what}, got None")
  return value


# ----------------------------------------------------------------------------------------------------
# rep / rep_b (Wang, Sun, Halgamuge 2019).


def rep_critic_value(blocks: kernels.GramBlocks, rep_lambda: float) -> tf.Tensor:
  """Wang's general critic loss L_D = lambda mean K_rr - (lambda - 1) mean K_rf - mean K_ff.

  Wang et al. 2019, the generalised repulsive loss (off-diagonal means, as in their code). lambda = 1
  is the repulsive loss mean K_rr - mean K_ff; lambda = -1 is the attractive L_D = -MMD^2 = -L_G.

  Args:
    blocks: GramBlocks with all three blocks [m, m].
    rep_lambda: lambda.

  Returns:
    Scalar critic loss (minimised by the critic).
  """
  lam = tf.constant(rep_lambda, blocks.real_real.dtype)
  mean = estimators.off_diagonal_mean
  return lam * mean(blocks.real_real) - (lam - 1) * mean(blocks.real_fake) - mean(blocks.fake_fake)


def _rep_metrics(blocks: kernels.GramBlocks) -> Dict[str, tf.Tensor]:
  metrics = _kernel_metrics(blocks, estimators.off_diagonal_mean)
  metrics["mmd2"] = estimators.mmd2_all_off_diagonal(blocks)
  return metrics


def rep_critic_loss(outputs: CriticOutputs, cfg: LossConfig) -> LossTerms:
  """Repulsive critic loss (general lambda form, cfg.rep_lambda) with the kernel cfg.kernel."""
  blocks = _blocks(outputs, cfg)
  return LossTerms(rep_critic_value(blocks, cfg.rep_lambda), _rep_metrics(blocks))


def rep_generator_loss(outputs: CriticOutputs, cfg: LossConfig) -> LossTerms:
  """Generator loss of rep: the all-off-diagonal MMD^2 with the kernel cfg.kernel (Wang et al. 2019)."""
  metrics = _rep_metrics(_blocks(outputs, cfg))
  return LossTerms(metrics["mmd2"], metrics)


def _rep_b_cfg(cfg: LossConfig) -> LossConfig:
  """rep_b is defined for the Gaussian kernel only; cfg.kernel may name it 'rbf' or 'bounded_rbf'."""
  if cfg.kernel not in ("rbf", "bounded_rbf"):
    raise ValueError(f"loss 'rep_b' is defined for the rbf kernel only, got kernel {cfg.kernel!r}")
  return dataclasses.replace(cfg, kernel="rbf")


def rep_b_critic_loss(outputs: CriticOutputs, cfg: LossConfig) -> LossTerms:
  """rep with Wang's bounded kernel RBF-B in the critic loss (Wang et al. 2019); metrics from plain rbf."""
  cfg = _rep_b_cfg(cfg)
  bounded = kernels.bounded_rbf(*_features(outputs), cfg)
  metrics = _rep_metrics(_blocks(outputs, cfg))
  metrics["kernel_bounded/real_real"] = estimators.off_diagonal_mean(bounded.real_real)
  metrics["kernel_bounded/fake_fake"] = estimators.off_diagonal_mean(bounded.fake_fake)
  return LossTerms(rep_critic_value(bounded, cfg.rep_lambda), metrics)


def rep_b_generator_loss(outputs: CriticOutputs, cfg: LossConfig) -> LossTerms:
  """Generator loss of rep_b: the plain-rbf all-off-diagonal MMD^2 (the bounds are critic-side only)."""
  return rep_generator_loss(outputs, _rep_b_cfg(cfg))


# ----------------------------------------------------------------------------------------------------
# mmd (Li et al. 2017).


def one_sided(real_features: tf.Tensor, fake_features: tf.Tensor) -> tf.Tensor:
  """Li's one-sided term h = -mean_j relu(-(mean_i r_ij - mean_i f_ij)) over feature dimensions j.

  Args:
    real_features: [m, d].
    fake_features: [n, d].

  Returns:
    Scalar h <= 0 (0 when the real feature mean dominates the fake one in every dimension).
  """
  gap = tf.reduce_mean(real_features, axis=0) - tf.reduce_mean(fake_features, axis=0)
  return -tf.reduce_mean(tf.nn.relu(-gap))


def _li_terms(outputs: CriticOutputs, cfg: LossConfig):
  blocks = _blocks(outputs, cfg)
  mmd2 = estimators.mmd2_biased(blocks)
  distance = tf.sqrt(tf.nn.relu(mmd2) + tf.constant(cfg.mmd_epsilon, mmd2.dtype))
  h = one_sided(*_features(outputs))
  metrics = _kernel_metrics(blocks)
  metrics.update({"mmd2": mmd2, "one_sided": h})
  return distance + cfg.one_sided_weight * h, metrics


def reconstruction_error(images: tf.Tensor, reconstruction: tf.Tensor) -> tf.Tensor:
  """Mean squared reconstruction error over all local elements (Li 2017's AE regulariser)."""
  images = kernels.as_kernel_dtype(images)
  return tf.reduce_mean(tf.square(kernels.as_kernel_dtype(reconstruction) - images))


def mmd_critic_loss(outputs: CriticOutputs, cfg: LossConfig) -> LossTerms:
  """Li et al. 2017's critic loss, minimised: -(sqrt(relu(MMD2_b) + eps) + 16 h) + 8 AE(real) + 8 AE(fake)."""
  objective, metrics = _li_terms(outputs, cfg)
  ae_real = reconstruction_error(outputs.real_images, _require(outputs.real_reconstruction,
                                                               "real_reconstruction", "mmd"))
  ae_fake = reconstruction_error(outputs.fake_images, _require(outputs.fake_reconstruction,
                                                               "fake_reconstruction", "mmd"))
  metrics.update({"ae/real": ae_real, "ae/fake": ae_fake})
  return LossTerms(-objective + cfg.ae_weight * (ae_real + ae_fake), metrics)


def mmd_generator_loss(outputs: CriticOutputs, cfg: LossConfig) -> LossTerms:
  """Li's generator loss sqrt(relu(MMD2_b) + eps) + 16 h."""
  objective, metrics = _li_terms(outputs, cfg)
  return LossTerms(objective, metrics)


# ----------------------------------------------------------------------------------------------------
# mmd_gp (Binkowski et al. 2018) and smmd (Arbel et al. 2018).


def _unbiased_terms(outputs: CriticOutputs, cfg: LossConfig):
  blocks = _blocks(outputs, cfg)
  mmd2 = estimators.mmd2_unbiased(blocks)
  metrics = _kernel_metrics(blocks)
  metrics["mmd2"] = mmd2
  return mmd2, metrics


def mmd_gp_critic_loss(outputs: CriticOutputs, cfg: LossConfig) -> LossTerms:
  """Binkowski's critic loss -MMD2_u + lambda_gp GP(witness) + lambda_l2 L2(activations).

  The GP is taken at random interpolates of the local real and fake images, the gradient norm per
  example over all pixels; L2 covers the activations of every critic layer on real and fake images.
  """
  mmd2, metrics = _unbiased_terms(outputs, cfg)
  points = penalties.interpolate(outputs.real_images, outputs.fake_images, seed=outputs.seed)
  gp = penalties.witness_gradient_penalty(_require(outputs.critic, "critic", "mmd_gp"), points,
                                          *_features(outputs), cfg)
  real_acts = _require(outputs.real_activations, "real_activations", "mmd_gp")
  fake_acts = _require(outputs.fake_activations, "fake_activations", "mmd_gp")
  l2 = penalties.activation_l2(list(real_acts) + list(fake_acts))
  metrics.update({"penalty/gp": gp, "penalty/l2": l2})
  return LossTerms(-mmd2 + cfg.gp_weight * gp + cfg.l2_weight * l2, metrics)


def mmd_gp_generator_loss(outputs: CriticOutputs, cfg: LossConfig) -> LossTerms:
  """Binkowski's generator loss MMD2_u(real, fake)."""
  mmd2, metrics = _unbiased_terms(outputs, cfg)
  return LossTerms(mmd2, metrics)


def smmd_scale(outputs: CriticOutputs, cfg: LossConfig) -> tf.Tensor:
  """Arbel et al. 2018's scale s = 1 / (lambda mean_{x real} |J_psi(x)|_F^2 + 1), lambda = cfg.smmd_scale.

  The mean is over the GLOBAL real batch (per-example norms all-gathered): s multiplies the MMD, so a
  per-replica mean would not average back to the single-device loss.
  """
  critic = _require(outputs.critic, "critic", "smmd")
  norms = penalties.jacobian_squared_norm(critic, outputs.real_images)
  if outputs.gather is not None:
    norms = outputs.gather(norms)
  return 1 / (cfg.smmd_scale * tf.reduce_mean(norms) + 1)


def _smmd_terms(outputs: CriticOutputs, cfg: LossConfig):
  mmd2, metrics = _unbiased_terms(outputs, cfg)
  scale = tf.cast(smmd_scale(outputs, cfg), mmd2.dtype)
  metrics.update({"smmd/scale": scale, "smmd/scaled_mmd2": scale * mmd2})
  return scale * mmd2, metrics


def smmd_critic_loss(outputs: CriticOutputs, cfg: LossConfig) -> LossTerms:
  """Arbel's critic loss -s MMD2_u (the critic maximises the scaled MMD)."""
  scaled, metrics = _smmd_terms(outputs, cfg)
  return LossTerms(-scaled, metrics)


def smmd_generator_loss(outputs: CriticOutputs, cfg: LossConfig) -> LossTerms:
  """Arbel's generator loss s MMD2_u (s does not depend on the generator)."""
  scaled, metrics = _smmd_terms(outputs, cfg)
  return LossTerms(scaled, metrics)


# ----------------------------------------------------------------------------------------------------
# Baselines: wgan_gp (Gulrajani et al. 2017) and hinge (Miyato et al. 2018).


def wgan_gp_critic_loss(outputs: CriticOutputs, cfg: LossConfig) -> LossTerms:
  """WGAN-GP critic loss mean D(fake) - mean D(real) + lambda GP(D) at interpolates (lambda: gp_weight)."""
  real = _scalar_critic(outputs.real_features, "wgan_gp")
  fake = _scalar_critic(outputs.fake_features, "wgan_gp")
  critic = _require(outputs.critic, "critic", "wgan_gp")
  points = penalties.interpolate(outputs.real_images, outputs.fake_images, seed=outputs.seed)
  gp = penalties.gradient_penalty(lambda t: critic(t, training=True)[:, 0], points)
  wasserstein = tf.reduce_mean(real) - tf.reduce_mean(fake)
  return LossTerms(-wasserstein + cfg.gp_weight * gp, {"wasserstein": wasserstein, "penalty/gp": gp})


def hinge_critic_loss(outputs: CriticOutputs, cfg: LossConfig) -> LossTerms:
  """Hinge critic loss mean relu(1 - D(real)) + mean relu(1 + D(fake)) (Miyato et al. 2018).

  The means run over the batch and every critic output: with critic_dim d > 1 this is the average of d
  hinge losses, as in Wang et al.'s hinge baseline (16 outputs); with d = 1 it is Miyato's.
  """
  del cfg
  real, fake = outputs.real_features, outputs.fake_features
  loss = tf.reduce_mean(tf.nn.relu(1 - real)) + tf.reduce_mean(tf.nn.relu(1 + fake))
  return LossTerms(loss, {"critic/real": tf.reduce_mean(real), "critic/fake": tf.reduce_mean(fake)})


def _critic_mean_generator_terms(fake: tf.Tensor) -> LossTerms:
  return LossTerms(-tf.reduce_mean(fake), {"critic/fake": tf.reduce_mean(fake)})


def wgan_gp_generator_loss(outputs: CriticOutputs, cfg: LossConfig) -> LossTerms:
  """Generator loss of wgan_gp: -mean D(fake) over the batch of scalar critic outputs."""
  del cfg
  return _critic_mean_generator_terms(_scalar_critic(outputs.fake_features, "wgan_gp"))


def hinge_generator_loss(outputs: CriticOutputs, cfg: LossConfig) -> LossTerms:
  """Generator loss of hinge: -mean D(fake) over the batch and every critic output (Miyato et al. 2018)."""
  del cfg
  return _critic_mean_generator_terms(outputs.fake_features)


# ----------------------------------------------------------------------------------------------------
# Combinations a loss cannot train: each fails when the config is built, not when a step is traced.


def check_one_critic_output(cfg: Config) -> None:
  """WGAN-GP's critic is one scalar D(x): its mean difference and gradient penalty need critic_dim 1."""
  if cfg.model.critic_dim != 1:
    raise ConfigError("model.critic_dim", cfg.model.critic_dim, f"loss {cfg.loss.name!r} needs critic_dim 1")


def check_unbounded_kernel(cfg: Config) -> None:
  """A critic-side-only kernel (bounded_rbf) has no generator loss: only the loss built for it may use it."""
  if kernels.get_kernel_spec(cfg.loss.kernel).critic_side_only:
    raise ConfigError("loss.kernel", cfg.loss.kernel, f"kernel {cfg.loss.kernel!r} is critic-side only: loss "
                      f"{cfg.loss.name!r} needs an unbounded kernel (for Wang's bounded kernel use loss 'rep_b' "
                      "with kernel 'rbf')")


def check_gaussian_kernel(cfg: Config) -> None:
  """rep_b bounds Wang's Gaussian kernel: it is defined for rbf (or its bounded form) only."""
  if cfg.loss.kernel not in ("rbf", "bounded_rbf"):
    raise ConfigError("loss.kernel", cfg.loss.kernel, f"loss {cfg.loss.name!r} is defined for the rbf "
                      "kernel only")


def check_alternating_schedule(cfg: Config) -> None:
  """The gradient flow replaces the generator step of the alternating schedule."""
  if cfg.train.schedule != "alternating":
    raise ConfigError("train.schedule", cfg.train.schedule, f"is not possible with loss {cfg.loss.name!r}: "
                      "the gradient flow replaces the generator step of the alternating schedule")


def check_config(cfg: Config) -> None:
  """Runs the checks of cfg.loss.name and, for a kernel loss, of its kernel; raises ConfigError."""
  spec = get_loss(cfg.loss.name)
  if spec.uses_kernel:
    kernels.get_kernel_spec(cfg.loss.kernel).check(cfg.loss)
  for check in spec.checks:
    check(cfg)


_MMD_CHECKS = (check_unbounded_kernel,)

LOSSES: Dict[str, LossSpec] = {
    "rep": LossSpec(rep_critic_loss, rep_generator_loss, uses_kernel=True, checks=_MMD_CHECKS,
                    parameters=("rep_lambda",), description="Wang et al. 2019 repulsive"),
    "rep_b": LossSpec(rep_b_critic_loss, rep_b_generator_loss, uses_kernel=True, checks=(check_gaussian_kernel,),
                      parameters=("rep_lambda", "bound_low", "bound_high"),
                      description="rep with Wang's bounded Gaussian kernel"),
    "mmd": LossSpec(mmd_critic_loss, mmd_generator_loss, needs_decoder=True, uses_kernel=True,
                    checks=_MMD_CHECKS, parameters=("mmd_epsilon", "one_sided_weight", "ae_weight"),
                    description="Li et al. 2017 MMD GAN"),
    "mmd_gp": LossSpec(mmd_gp_critic_loss, mmd_gp_generator_loss, needs_activations=True, uses_kernel=True,
                       second_order=True, checks=_MMD_CHECKS, parameters=("gp_weight", "l2_weight"),
                       description="Binkowski et al. 2018 MMD GAN-GP"),
    "smmd": LossSpec(smmd_critic_loss, smmd_generator_loss, uses_kernel=True, second_order=True,
                     checks=_MMD_CHECKS, parameters=("smmd_scale",), description="Arbel et al. 2018 scaled MMD"),
    "wgan_gp": LossSpec(wgan_gp_critic_loss, wgan_gp_generator_loss, second_order=True,
                        checks=(check_one_critic_output,), parameters=("gp_weight",),
                        description="Gulrajani et al. 2017 baseline"),
    "hinge": LossSpec(hinge_critic_loss, hinge_generator_loss, description="Miyato et al. 2018 baseline"),
    # Mroueh & Nguyen: the critic is trained as in MMD-GP; the generator loss (MMD2_u) is only
    # logged, its update is the gradient flow of mmd_gan_tf/flow/update.py. Its step J^T w is a
    # natural-gradient direction: Adam's per-coordinate rescaling would destroy it, hence plain SGD.
    "flow": LossSpec(mmd_gp_critic_loss, mmd_gp_generator_loss, needs_activations=True, uses_kernel=True,
                     second_order=True, generator_update=FLOW, generator_optimizer="sgd",
                     checks=_MMD_CHECKS + (check_alternating_schedule,), parameters=("gp_weight", "l2_weight"),
                     description="Mroueh & Nguyen gradient flow"),
}


def get_loss(name: str) -> LossSpec:
  """LOSSES[name] with a clear error for an unknown name."""
  if name not in LOSSES:
    raise ValueError(f"unknown loss {name!r}; known: {sorted(LOSSES)}")
  return LOSSES[name]
