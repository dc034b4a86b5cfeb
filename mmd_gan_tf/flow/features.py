"""Feature maps Phi of the gradient-flow generator update.

The flow matches batch means of a feature map Phi of dimension m applied to the critic features psi:
  - "critic": Phi = identity, the linear kernel k(a, b) = a . b on psi (m = critic_dim);
  - "rff": M random Fourier features of the Gaussian kernel exp(-|a - b|^2 / (2 s^2)) on psi
    (Rahimi & Recht 2007), Phi(a) = sqrt(2 / M) cos(a W + b), W ~ N(0, 1 / s^2), b ~ U[0, 2 pi]; then
    Phi(a) . Phi(b) -> k(a, b) as M grows, and 1/2 |delta|^2 approximates half the biased Gaussian MMD^2.
"""

import math
from typing import Callable

import tensorflow as tf

from mmd_gan_tf.config import FlowConfig


def critic_feature_map(features: tf.Tensor) -> tf.Tensor:
  """The identity feature map: Phi(psi) = psi.

  Args:
    features: critic features psi, [b, d].

  Returns:
    The same tensor, [b, d] (m = d).
  """
  return features


class RandomFourierFeatures(tf.Module):
  """Random Fourier features of the Gaussian kernel with bandwidth `sigma` (Rahimi & Recht 2007).

  Phi(a) = sqrt(2 / M) cos(a W + b) with W [d, M] ~ N(0, 1 / sigma^2) and b [M] ~ U[0, 2 pi], so that
  E_W,b[Phi(a) . Phi(c)] = exp(-|a - c|^2 / (2 sigma^2)). W and b are drawn once from `seed` (stateless
  RNG: the same seed gives the same features on every machine) and held in non-trainable tf.Variables, so a
  tf.train.Checkpoint that tracks this object saves and restores them. Create it under the strategy scope.
  """

  def __init__(self, input_dim: int, num_features: int, sigma: float = 1.0, seed: int = 0,
               name: str = "random_fourier_features"):
    super().__init__(name=name)
    if input_dim < 1:
      raise ValueError(f"input_dim must be >= 1, got {input_dim}")
    if num_features < 1:
      raise ValueError(f"num_features must be >= 1, got {num_features}")
    if not sigma > 0:
      raise ValueError(f"sigma must be > 0, got {sigma}")
    self.num_features = num_features
    self.sigma = sigma
    frequencies = tf.random.stateless_normal([input_dim, num_features], seed=[seed, 1]) / sigma
    phases = tf.random.stateless_uniform([num_features], seed=[seed, 2], maxval=2.0 * math.pi)
    self.frequencies = tf.Variable(frequencies, trainable=False, name="frequencies")
    self.phases = tf.Variable(phases, trainable=False, name="phases")

  def __call__(self, features: tf.Tensor) -> tf.Tensor:
    """Phi(psi) = sqrt(2 / M) cos(psi W + b).

    Args:
      features: critic features psi, [b, d].

    Returns:
      The random features, [b, M], dtype of `features`.
    """
    dtype = features.dtype
    projection = tf.matmul(features, tf.cast(self.frequencies, dtype)) + tf.cast(self.phases, dtype)
    return tf.cast(math.sqrt(2.0 / self.num_features), dtype) * tf.cos(projection)


def _make_critic_map(cfg: FlowConfig, critic_dim: int, seed: int) -> Callable:
  del cfg, critic_dim, seed
  return critic_feature_map


def _make_rff_map(cfg: FlowConfig, critic_dim: int, seed: int) -> Callable:
  return RandomFourierFeatures(critic_dim, cfg.rff_dim, sigma=cfg.rff_sigma, seed=seed)


FEATURE_MAPS = {"critic": _make_critic_map, "rff": _make_rff_map}


def make_feature_map(cfg: FlowConfig, critic_dim: int, seed: int = 0) -> Callable:
  """Builds the feature map named by `cfg.features`.

  Args:
    cfg: the flow configuration (`features`, `rff_dim`, `rff_sigma`).
    critic_dim: dimension d of the critic features.
    seed: seed of the random features (the trainer passes the run seed).

  Returns:
    A callable [b, d] -> [b, m]: `critic_feature_map` (m = d), or a `RandomFourierFeatures` module
    (m = cfg.rff_dim) that the trainer must track in its checkpoint.
  """
  if cfg.features not in FEATURE_MAPS:
    raise ValueError(f"flow features must be one of {sorted(FEATURE_MAPS)}, got {cfg.features!r}")
  return FEATURE_MAPS[cfg.features](cfg, critic_dim, seed)


def feature_dim(cfg: FlowConfig, critic_dim: int) -> int:
  """The dimension m of Phi: critic_dim for "critic", rff_dim for "rff"."""
  return critic_dim if cfg.features == "critic" else cfg.rff_dim
