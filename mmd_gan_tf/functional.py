"""The losses as plain functions of critic features, for use in your own Keras code.

No trainer objects: each function takes real and fake feature tensors [m, d], [n, d] and keyword settings,
and calls the same kernels (`kernels.KERNELS`), estimators and loss formulas that `main.py` trains with.
Inside a MirroredStrategy step, all-gather the features first (MMD^2 is not a per-example mean) and divide
the loss by the replica count before taking its gradient (see `steps.py`).

    real_features, fake_features = critic(real), critic(generator(z))
    critic_loss = functional.repulsive_critic_loss(real_features, fake_features, bounded=True)
    generator_loss = functional.repulsive_generator_loss(real_features, fake_features)
"""

import dataclasses

import tensorflow as tf

from mmd_gan_tf import estimators
from mmd_gan_tf import kernels
from mmd_gan_tf import losses
from mmd_gan_tf.config import LossConfig

ESTIMATORS = {"unbiased": estimators.mmd2_unbiased, "biased": estimators.mmd2_biased,
              "all_off_diagonal": estimators.mmd2_all_off_diagonal}


def kernel_config(kernel: str = "rbf", **settings) -> LossConfig:
  """A LossConfig for `kernel` with `settings` (e.g. sigmas=(1, 2, 4), alphas=..., dot_weight=...), checked by
  the kernel's own rule; a setting that is not a LossConfig field raises TypeError naming it."""
  settings = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
  cfg = dataclasses.replace(LossConfig(), kernel=kernel, **settings)
  kernels.get_kernel_spec(kernel).check(cfg)
  return cfg


def gram_blocks(real_features: tf.Tensor, fake_features: tf.Tensor, kernel: str = "rbf",
                **settings) -> kernels.GramBlocks:
  """K(real, real) [m, m], K(fake, fake) [n, n], K(real, fake) [m, n] and the true diagonals."""
  return kernels.get_kernel(kernel)(real_features, fake_features, kernel_config(kernel, **settings))


def mmd2(real_features: tf.Tensor, fake_features: tf.Tensor, kernel: str = "rbf", estimator: str = "unbiased",
         **settings) -> tf.Tensor:
  """MMD^2 between the feature sets with any registered kernel.

  Args:
    real_features: [m, d].
    fake_features: [n, d] (m = n for "all_off_diagonal").
    kernel: a key of `kernels.KERNELS` ("rbf", "mix_rbf", "mix_rq_dot", "distance", "poly", ...).
    estimator: "unbiased" (Gretton et al. 2012 eq. 3; Binkowski, Arbel), "biased" (eq. 5; Li) or
      "all_off_diagonal" (Wang).
    **settings: the kernel's LossConfig fields (sigmas, alphas, dot_weight, ...).

  Returns:
    Scalar MMD^2 in the features' dtype (float32 for half-precision features).
  """
  if estimator not in ESTIMATORS:
    raise ValueError(f"unknown estimator {estimator!r}; known: {sorted(ESTIMATORS)}")
  return ESTIMATORS[estimator](gram_blocks(real_features, fake_features, kernel, **settings))


def repulsive_critic_loss(real_features: tf.Tensor, fake_features: tf.Tensor, sigma: float = 1.0,
                          rep_lambda: float = 1.0, bounded: bool = False, bound_low: float = 0.25,
                          bound_high: float = 4.0) -> tf.Tensor:
  """Wang et al. 2019's critic loss lambda mean K_rr - (lambda - 1) mean K_rf - mean K_ff (minimised).

  Args:
    real_features: [m, d]; fake_features: [m, d].
    sigma: the Gaussian kernel's bandwidth.
    rep_lambda: 1 is the repulsive loss, -1 the attractive one (-MMD^2).
    bounded: Wang's bounded kernel RBF-B (`rep_b`): real-real distances capped at `bound_high`, fake-fake
      distances floored at `bound_low` (squared distances, in units of the features).
  """
  kernel = "bounded_rbf" if bounded else "rbf"
  blocks = gram_blocks(real_features, fake_features, kernel, sigmas=(float(sigma),), bound_low=bound_low,
                       bound_high=bound_high)
  return losses.rep_critic_value(blocks, rep_lambda)


def repulsive_generator_loss(real_features: tf.Tensor, fake_features: tf.Tensor,
                             sigma: float = 1.0) -> tf.Tensor:
  """The generator's loss of `rep` and `rep_b`: Wang's all-off-diagonal MMD^2 with the Gaussian kernel."""
  return mmd2(real_features, fake_features, "rbf", "all_off_diagonal", sigmas=(float(sigma),))
