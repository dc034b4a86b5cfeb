"""Kernel Inception Distance (Binkowski et al. 2018, section 4).

KID = unbiased MMD^2 (`estimators.mmd2_unbiased`) with the cubic polynomial kernel
k(a, b) = (a.b / d + 1)^3 (`kernels.poly`) on Inception pool_3 features, averaged over subsets drawn
without replacement within a subset (seeded). Everything is computed in float64. Reported: the mean
over subsets, the standard deviation over subsets (torch-fidelity / Binkowski's convention, ddof 0) and,
separately named, the standard error of the mean, std(ddof 1) / sqrt(num_subsets) (TF-GAN's block
estimator; an approximation when subsets overlap). Negative values are legitimate. Papers print KID x 1e3.
"""

from typing import NamedTuple, Tuple, Union

import numpy as np
import tensorflow as tf

from mmd_gan_tf import estimators
from mmd_gan_tf import kernels
from mmd_gan_tf.config import LossConfig

KID_KERNEL = LossConfig(kernel="poly", poly_degree=3, poly_gamma=None, poly_coef=1.0)
SubsetSize = Union[int, Tuple[int, int], None]


class KidResult(NamedTuple):
  """KID over subsets: mean, std (ddof 0), stderr (std ddof 1 / sqrt(S)) and the per-subset values."""
  mean: float
  std: float
  stderr: float
  values: np.ndarray


def _subset_sizes(num_real: int, num_fake: int, subset_size: SubsetSize) -> Tuple[int, int]:
  if subset_size is None:
    return num_real, num_fake
  real_size, fake_size = (subset_size, subset_size) if np.isscalar(subset_size) else subset_size
  if real_size < 2 or fake_size < 2:
    raise ValueError(f"KID subset_size must be >= 2, got {subset_size}")
  if num_real < real_size:
    raise ValueError(f"KID: {num_real} real features but subset_size={real_size}; use more samples "
                     f"or a smaller subset size")
  if num_fake < fake_size:
    raise ValueError(f"KID: {num_fake} fake features but subset_size={fake_size}; use more samples "
                     f"or a smaller subset size")
  return int(real_size), int(fake_size)


def subset_indices(num_real: int, num_fake: int, num_subsets: int, subset_size: SubsetSize,
                   seed: int) -> Tuple[np.ndarray, np.ndarray]:
  """Seeded subset draws (numpy), without replacement within each subset.

  Args:
    num_real, num_fake: sizes of the two feature sets (may differ).
    num_subsets: S >= 1.
    subset_size: int (both sets), (real, fake) pair, or None for the whole sets (one subset).
    seed: numpy seed.

  Returns:
    (real_idx [S, m_s], fake_idx [S, n_s]) int64.
  """
  if num_subsets < 1:
    raise ValueError(f"KID num_subsets must be >= 1, got {num_subsets}")
  real_size, fake_size = _subset_sizes(num_real, num_fake, subset_size)
  if subset_size is None:
    return np.arange(num_real)[None], np.arange(num_fake)[None]
  rng = np.random.default_rng(seed)
  real_idx = np.stack([rng.choice(num_real, real_size, replace=False) for _ in range(num_subsets)])
  fake_idx = np.stack([rng.choice(num_fake, fake_size, replace=False) for _ in range(num_subsets)])
  return real_idx.astype(np.int64), fake_idx.astype(np.int64)


def kid_subset_values(real_features, fake_features, real_idx, fake_idx) -> tf.Tensor:
  """Unbiased poly-kernel MMD^2 of each subset, float64.

  Args:
    real_features: [M, d] (any float dtype; cast to float64).
    fake_features: [N, d].
    real_idx: int [S, m] rows of real_features per subset.
    fake_idx: int [S, n] rows of fake_features per subset.

  Returns:
    float64 [S]: MMD2_u(real[real_idx[s]], fake[fake_idx[s]]) with k = (a.b / d + 1)^3.
  """
  real = tf.cast(real_features, tf.float64)
  fake = tf.cast(fake_features, tf.float64)

  def one_subset(indices):
    blocks = kernels.KERNELS["poly"].blocks(tf.gather(real, indices[0]), tf.gather(fake, indices[1]),
                                     KID_KERNEL)
    return estimators.mmd2_unbiased(blocks)

  # map_fn runs the subsets one after another: one subset's Gram blocks in memory at a time.
  return tf.map_fn(one_subset, (tf.convert_to_tensor(real_idx), tf.convert_to_tensor(fake_idx)),
                   fn_output_signature=tf.float64, parallel_iterations=1)


def kid(real_features, fake_features, num_subsets: int = 100, subset_size: SubsetSize = 1000,
        seed: int = 0) -> KidResult:
  """KID for reporting (eager): mean, std, stderr over `num_subsets` seeded subsets.

  Args:
    real_features: [M, 2048] Inception features of real images.
    fake_features: [N, 2048] of generated images; M != N allowed.
    num_subsets: number of subsets S (100 for reporting).
    subset_size: samples per subset from each set (1000); (real, fake) pair; None = whole sets once.
    seed: seed of the subset draws.

  Raises:
    ValueError: a set smaller than the subset size (no silent shrinking), bad S or sizes.
  """
  real_features, fake_features = np.asarray(real_features), np.asarray(fake_features)
  _check_features(real_features, fake_features)
  real_idx, fake_idx = subset_indices(len(real_features), len(fake_features), num_subsets,
                                      subset_size, seed)
  values = _kid_values_fn(real_features, fake_features, real_idx, fake_idx).numpy()
  return summarize(values)


@tf.function(reduce_retracing=True)
def _kid_values_fn(real_features, fake_features, real_idx, fake_idx):
  return kid_subset_values(real_features, fake_features, real_idx, fake_idx)


def summarize(values: np.ndarray) -> KidResult:
  """Mean, std (ddof 0) and standard error (ddof 1 / sqrt(S); nan for S = 1) of per-subset values."""
  values = np.asarray(values, np.float64)
  stderr = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
  return KidResult(float(values.mean()), float(values.std()), float(stderr), values)


def _check_features(real, fake) -> None:
  if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
    raise ValueError(f"KID needs feature matrices [M, d] and [N, d], got {real.shape} and {fake.shape}")


def stateless_subset_indices(num_items, num_subsets: int, subset_size: int, seed) -> tf.Tensor:
  """In-graph seeded draws without replacement within a subset: int32 [S, subset_size].

  Args:
    num_items: size of the set (int or scalar tensor).
    num_subsets: S (Python int).
    subset_size: samples per subset (Python int).
    seed: shape [2] int64 seed for `tf.random.stateless_uniform`.
  """
  noise = tf.random.stateless_uniform([num_subsets, num_items], seed=tf.cast(seed, tf.int64))
  return tf.argsort(noise, axis=1)[:, :subset_size]


def kid_in_graph(real_features, fake_features, num_subsets: int = 10, subset_size: int = 1000,
                 seed=0) -> Tuple[tf.Tensor, tf.Tensor]:
  """KID during training, usable inside a tf.function: (mean, std over subsets), float64 scalars.

  Args:
    real_features: [M, 2048] (e.g. cached real features as a constant or variable).
    fake_features: [N, 2048] features of the current samples.
    num_subsets: S (10 during training).
    subset_size: per-set samples per subset (1000); must be <= M and <= N (checked when shapes are
      static).
    seed: int or [2] int tensor; subsets for the real and the fake set are drawn from derived seeds.
  """
  real_features = tf.convert_to_tensor(real_features)
  fake_features = tf.convert_to_tensor(fake_features)
  num_real, num_fake = real_features.shape[0], fake_features.shape[0]
  if num_real is not None and num_fake is not None:
    _subset_sizes(num_real, num_fake, subset_size)
  seed = tf.convert_to_tensor(seed, tf.int64)
  base = tf.stack([seed, tf.constant(0, tf.int64)]) if seed.shape.rank == 0 else seed
  real_idx = stateless_subset_indices(tf.shape(real_features)[0], num_subsets, subset_size, base)
  fake_idx = stateless_subset_indices(tf.shape(fake_features)[0], num_subsets, subset_size,
                                      base + tf.constant([0, 1], tf.int64))
  values = kid_subset_values(real_features, fake_features, real_idx, fake_idx)
  return tf.reduce_mean(values), tf.math.reduce_std(values)

