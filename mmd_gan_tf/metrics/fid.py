"""Frechet Inception Distance (Heusel et al. 2017).

FID = |mu_r - mu_f|^2 + tr(C_r) + tr(C_f) - 2 tr((C_r C_f)^(1/2)) on Inception pool_3 features, with
float64 means and (ddof 1) covariances. The trace of the square root comes from eigenvalues, not from
scipy's sqrtm: tr((C_r C_f)^(1/2)) = sum_i sqrt(lambda_i(S C_f S)) with S = C_r^(1/2) (symmetric PSD,
so the eigenvalues are real and clipped at 0 against rounding). FID is biased in the sample count:
fewer than 2048 samples per set are refused unless `min_samples` is lowered.
"""

from typing import Tuple

import tensorflow as tf

DEFAULT_MIN_SAMPLES = 2048


def feature_statistics(features) -> Tuple[tf.Tensor, tf.Tensor]:
  """Mean [d] and unbiased covariance [d, d] of features [N, d], float64."""
  features = tf.cast(features, tf.float64)
  mean = tf.reduce_mean(features, axis=0)
  centred = features - mean
  count = tf.cast(tf.shape(features)[0], tf.float64)
  return mean, tf.matmul(centred, centred, transpose_a=True) / (count - 1)


def _sqrt_psd(matrix: tf.Tensor) -> tf.Tensor:
  eigenvalues, eigenvectors = tf.linalg.eigh(matrix)
  return (eigenvectors * tf.sqrt(tf.maximum(eigenvalues, 0.0))) @ tf.transpose(eigenvectors)


def trace_sqrt_product(cov_real: tf.Tensor, cov_fake: tf.Tensor) -> tf.Tensor:
  """tr((C_r C_f)^(1/2)) from the eigenvalues of C_r^(1/2) C_f C_r^(1/2) (similar to C_r C_f)."""
  root = _sqrt_psd(tf.cast(cov_real, tf.float64))
  product = root @ tf.cast(cov_fake, tf.float64) @ root
  product = 0.5 * (product + tf.transpose(product))  # exact symmetry for eigvalsh
  return tf.reduce_sum(tf.sqrt(tf.maximum(tf.linalg.eigvalsh(product), 0.0)))


def frechet_distance(mean_real, cov_real, mean_fake, cov_fake) -> tf.Tensor:
  """Frechet distance of two Gaussians N(mean_real [d], cov_real [d, d]), N(mean_fake, cov_fake).

  d^2 = |mu_r - mu_f|^2 + tr(C_r) + tr(C_f) - 2 tr((C_r C_f)^(1/2)) (Heusel et al. 2017, eq. 6); float64.
  """
  mean_real, mean_fake = tf.cast(mean_real, tf.float64), tf.cast(mean_fake, tf.float64)
  cov_real, cov_fake = tf.cast(cov_real, tf.float64), tf.cast(cov_fake, tf.float64)
  return (tf.reduce_sum(tf.square(mean_real - mean_fake)) + tf.linalg.trace(cov_real)
          + tf.linalg.trace(cov_fake) - 2.0 * trace_sqrt_product(cov_real, cov_fake))


def _check_count(name: str, count, min_samples: int) -> None:
  if count is not None and count < max(min_samples, 2):
    raise ValueError(f"FID: {count} {name} samples is below min_samples={min_samples} (FID is "
                     f"biased in the sample count; pass min_samples=0 to compute it anyway)")


def fid(real_features, fake_features, min_samples: int = DEFAULT_MIN_SAMPLES) -> tf.Tensor:
  """FID of features real [M, d] and fake [N, d] (M != N allowed), float64 scalar; in-graph usable.

  Raises:
    ValueError: fewer than `min_samples` (default 2048) samples in a set (checked on static shapes),
      or feature dimensions that differ.
  """
  real_features, fake_features = tf.convert_to_tensor(real_features), tf.convert_to_tensor(fake_features)
  if real_features.shape.rank != 2 or fake_features.shape.rank != 2 or \
      real_features.shape[1] != fake_features.shape[1]:
    raise ValueError(f"FID needs features [M, d] and [N, d], got {real_features.shape} and "
                     f"{fake_features.shape}")
  _check_count("real", real_features.shape[0], min_samples)
  _check_count("fake", fake_features.shape[0], min_samples)
  return frechet_distance(*feature_statistics(real_features), *feature_statistics(fake_features))
