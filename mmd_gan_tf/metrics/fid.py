"""Frechet Inception Distance (Heusel et al. 2017).

FID = |mu_r - mu_f|^2 + tr(C_r) + tr(C_f) - 2 tr((C_r C_f)^(1/2)) on Inception pool_3 features, with
float64 means and (ddof 1) covariances. The trace of the square root comes from eigenvalues, not from
scipy's sqrtm: tr((C_r C_f)^(1/2)) = sum_i sqrt(lambda_i(S C_f S)) with S = C_r^(1/2) (symmetric PSD,
so the eigenvalues are real and clipped at 0 against rounding). With fewer samples than feature
dimensions (M, N < d), `fid` takes the same trace from the features instead: with C_r = A^T A and
C_f = B^T B (A [M, d], B [N, d] the centred features over sqrt(count - 1)), the nonzero eigenvalues of
C_r C_f are those of (A B^T)(A B^T)^T, so the trace is the sum of the singular values of A B^T [M, N]
(for 2 x 100 Inception features: an SVD of 100 x 100 instead of two eigendecompositions of 2048 x 2048).
FID is biased in the sample count: fewer than 2048 samples per set are refused unless `min_samples` is
lowered.
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


def _mean_and_scaled_centred(features) -> Tuple[tf.Tensor, tf.Tensor]:
  """Mean [d] and A = (X - mean) / sqrt(N - 1) [N, d] of features X [N, d], float64: A^T A is the
  covariance."""
  features = tf.cast(features, tf.float64)
  mean = tf.reduce_mean(features, axis=0)
  count = tf.cast(tf.shape(features)[0], tf.float64)
  return mean, (features - mean) / tf.sqrt(count - 1.0)


def _trace_sqrt_from_scaled(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  """tr((A^T A B^T B)^(1/2)): the sum of the singular values of A B^T (module docstring)."""
  return tf.reduce_sum(tf.linalg.svd(tf.matmul(a, b, transpose_b=True), compute_uv=False))


def trace_sqrt_product_from_features(real_features, fake_features) -> tf.Tensor:
  """tr((C_r C_f)^(1/2)) of the covariances of features real [M, d] and fake [N, d]: the sum of the singular
  values of A B^T [M, N] (module docstring); exact, and cheaper than `trace_sqrt_product` when M, N < d."""
  return _trace_sqrt_from_scaled(_mean_and_scaled_centred(real_features)[1],
                                 _mean_and_scaled_centred(fake_features)[1])


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
  counts, dim = (real_features.shape[0], fake_features.shape[0]), real_features.shape[1]
  if None in counts or dim is None or max(counts) >= dim:
    return frechet_distance(*feature_statistics(real_features), *feature_statistics(fake_features))
  # Fewer samples than dimensions: the same distance from [M, N] products (module docstring); tr(C) = |A|_F^2.
  mean_real, a = _mean_and_scaled_centred(real_features)
  mean_fake, b = _mean_and_scaled_centred(fake_features)
  return (tf.reduce_sum(tf.square(mean_real - mean_fake)) + tf.reduce_sum(tf.square(a))
          + tf.reduce_sum(tf.square(b)) - 2.0 * _trace_sqrt_from_scaled(a, b))
