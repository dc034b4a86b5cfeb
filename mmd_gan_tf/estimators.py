"""MMD^2 estimators on Gram blocks (SPEC section 3).

Each estimator takes the `GramBlocks` of a kernel on m real and n fake features and returns a scalar
in the dtype of the blocks. The biased and unbiased estimators accept m != n; the all-off-diagonal
estimator and the variance need m == n.
"""

from typing import Tuple

import tensorflow as tf

from mmd_gan_tf.kernels import GramBlocks


def _count(matrix: tf.Tensor, axis: int) -> tf.Tensor:
  return tf.cast(tf.shape(matrix)[axis], matrix.dtype)


def _require_at_least_two(blocks: GramBlocks) -> None:
  for name, size in (("real", blocks.real_real.shape[0]), ("fake", blocks.fake_fake.shape[0])):
    if size is not None and size < 2:
      raise ValueError(f"the unbiased estimator needs at least 2 {name} samples, got {size}")


def _require_square(matrix: tf.Tensor, what: str) -> None:
  rows, cols = matrix.shape[0], matrix.shape[1]
  if rows is not None and cols is not None and rows != cols:
    raise ValueError(f"{what} needs as many real as fake samples, got {rows} real vs {cols} fake")
  if rows is not None and rows < 2:
    raise ValueError(f"{what} needs at least 2 samples per set, got {rows}")


def off_diagonal_mean(matrix: tf.Tensor) -> tf.Tensor:
  """Mean of the m (m - 1) off-diagonal entries of a square matrix [m, m] -> scalar."""
  _require_square(matrix, "off_diagonal_mean")
  m = _count(matrix, 0)
  return (tf.reduce_sum(matrix) - tf.linalg.trace(matrix)) / (m * (m - 1))


def mmd2_biased(blocks: GramBlocks) -> tf.Tensor:
  """Biased (V-statistic) MMD^2 (Gretton et al. 2012 eq. 5; used by Li et al. 2017).

  MMD2_b = sum K_rr / m^2 + sum K_ff / n^2 - 2 sum K_rf / (m n).

  Args:
    blocks: GramBlocks with K_rr [m, m], K_ff [n, n], K_rf [m, n].

  Returns:
    Scalar MMD2_b, >= 0 for a positive-definite kernel.
  """
  return (tf.reduce_mean(blocks.real_real) + tf.reduce_mean(blocks.fake_fake)
          - 2 * tf.reduce_mean(blocks.real_fake))


def mmd2_unbiased(blocks: GramBlocks) -> tf.Tensor:
  """Unbiased MMD^2: U-statistics within each set (Gretton et al. 2012 eq. 3; Binkowski, Arbel, KID).

  MMD2_u = (sum K_rr - sum diag_r) / (m (m-1)) + (sum K_ff - sum diag_f) / (n (n-1)) - 2 sum K_rf / (m n),
  with the blocks' true diagonals (not a constant).

  Args:
    blocks: GramBlocks with K_rr [m, m], K_ff [n, n], K_rf [m, n]; m, n >= 2.

  Returns:
    Scalar MMD2_u (may be negative).
  """
  _require_at_least_two(blocks)
  m, n = _count(blocks.real_real, 0), _count(blocks.fake_fake, 0)
  real_term = (tf.reduce_sum(blocks.real_real) - tf.reduce_sum(blocks.real_diag)) / (m * (m - 1))
  fake_term = (tf.reduce_sum(blocks.fake_fake) - tf.reduce_sum(blocks.fake_diag)) / (n * (n - 1))
  return real_term + fake_term - 2 * tf.reduce_mean(blocks.real_fake)


def mmd2_all_off_diagonal(blocks: GramBlocks) -> tf.Tensor:
  """Wang's MMD^2: every block, K_rf included, averaged over its m (m - 1) off-diagonal entries (m = n).

  MMD2 = mean_{i!=j} K_rr + mean_{i!=j} K_ff - 2 mean_{i!=j} K_rf (Wang et al. 2019, eq. 2's estimator in
  their code).

  Args:
    blocks: GramBlocks with K_rr, K_ff, K_rf all [m, m].

  Returns:
    Scalar MMD^2 (may be negative).
  """
  _require_square(blocks.real_fake, "mmd2_all_off_diagonal")
  return (off_diagonal_mean(blocks.real_real) + off_diagonal_mean(blocks.fake_fake)
          - 2 * off_diagonal_mean(blocks.real_fake))


def _sum_sq(x: tf.Tensor) -> tf.Tensor:
  return tf.reduce_sum(tf.square(x))


def mmd2_unbiased_and_variance(blocks: GramBlocks) -> Tuple[tf.Tensor, tf.Tensor]:
  """Unbiased MMD^2 and the estimate of its variance (Sutherland et al. 2017, appendix A; m = n).

  Var = 4 (m-2) / (m (m-1)) zeta1 + 2 / (m (m-1)) zeta2, with zeta1, zeta2 the unbiased estimates of the
  U-statistic variance components built from row sums of the diagonal-free blocks Kt_rr, Kt_ff and of
  K_rf (the formula of Binkowski's `_mmd2_and_variance`). Used for the KID confidence and the
  relative-similarity test of the learning-rate adaptation.

  Args:
    blocks: GramBlocks with K_rr, K_ff, K_rf all [m, m], m >= 3.

  Returns:
    (mmd2, variance): scalars in the dtype of the blocks.
  """
  _require_square(blocks.real_fake, "mmd2_unbiased_and_variance")
  if blocks.real_fake.shape[0] is not None and blocks.real_fake.shape[0] < 3:
    raise ValueError(f"the variance needs at least 3 samples per set, got {blocks.real_fake.shape[0]}")
  m = _count(blocks.real_real, 0)
  real_rows = tf.reduce_sum(blocks.real_real, 1) - blocks.real_diag    # Kt_rr row sums [m]
  fake_rows = tf.reduce_sum(blocks.fake_fake, 1) - blocks.fake_diag    # Kt_ff row sums [m]
  cross_rows, cross_cols = tf.reduce_sum(blocks.real_fake, 1), tf.reduce_sum(blocks.real_fake, 0)
  real_sum, fake_sum = tf.reduce_sum(real_rows), tf.reduce_sum(fake_rows)
  cross_sum = tf.reduce_sum(cross_rows)
  real_sq = _sum_sq(blocks.real_real) - _sum_sq(blocks.real_diag)     # sum of Kt_rr^2
  fake_sq = _sum_sq(blocks.fake_fake) - _sum_sq(blocks.fake_diag)
  cross_sq = _sum_sq(blocks.real_fake)
  dots = tf.reduce_sum(real_rows * cross_rows) + tf.reduce_sum(fake_rows * cross_cols)
  within_sums_sq = real_sum**2 + fake_sum**2
  m1, m2 = m - 1, m - 2
  mmd2 = (real_sum + fake_sum) / (m * m1) - 2 * cross_sum / m**2
  zeta1 = ((_sum_sq(real_rows) - real_sq + _sum_sq(fake_rows) - fake_sq) / (m * m1 * m2)
           - within_sums_sq / (m * m1)**2
           + (_sum_sq(cross_rows) + _sum_sq(cross_cols) - 2 * cross_sq) / (m * m * m1)
           - 2 * cross_sum**2 / m**4
           - 2 * dots / (m * m * m1)
           + 2 * (real_sum + fake_sum) * cross_sum / (m**3 * m1))
  zeta2 = ((real_sq + fake_sq) / (m * m1)
           - within_sums_sq / (m * m1)**2
           + 2 * cross_sq / (m * m)
           - 2 * cross_sum**2 / m**4
           - 4 * dots / (m * m * m1)
           + 4 * (real_sum + fake_sum) * cross_sum / (m**3 * m1))
  variance = 4 * m2 / (m * m1) * zeta1 + 2 / (m * m1) * zeta2
  return mmd2, variance
