"""MMD^2 estimators on Gram blocks.

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

  MMD2 = mean_{i!=j} K_rr + mean_{i!=j} K_ff - 2 mean_{i!=j} K_rf (the estimator of Wang et al.
  2019's code).

  Args:
    blocks: GramBlocks with K_rr, K_ff, K_rf all [m, m].

  Returns:
    Scalar MMD^2 (may be negative).
  """
  _require_square(blocks.real_fake, "mmd2_all_off_diagonal")
  return (off_diagonal_mean(blocks.real_real) + off_diagonal_mean(blocks.fake_fake)
          - 2 * off_diagonal_mean(blocks.real_fake))


def _pair_kernel_matrix(blocks: GramBlocks) -> tf.Tensor:
  """h_ij = K_rr[i,j] + K_ff[i,j] - K_rf[i,j] - K_rf[j,i] for i != j, 0 on the diagonal: [m, m], symmetric."""
  h = blocks.real_real + blocks.fake_fake - blocks.real_fake - tf.transpose(blocks.real_fake)
  return tf.linalg.set_diag(h, tf.zeros_like(blocks.real_diag))


def mmd2_unbiased_and_variance(blocks: GramBlocks) -> Tuple[tf.Tensor, tf.Tensor]:
  """Unbiased MMD^2 and an unbiased estimate of its variance (m = n).

  With z_i = (r_i, f_i) the estimator is (up to the K_rf diagonal, an O(m^-3) difference in variance)
  the U-statistic U = mean_{i != j} h_ij, whose variance is (Hoeffding; Sutherland et al. 2017, appendix A)
    Var U = 4 (m-2) / (m (m-1)) zeta1 + 2 / (m (m-1)) zeta2,
    zeta1 = E[h_ij h_il] - MMD^4,  zeta2 = E[h_ij^2] - MMD^4.
  Each moment is estimated without bias by its mean over distinct indices (pairs, triples, quadruples),
  all from the row sums of h: the unbiased estimator of Sutherland 2019 (arXiv:1906.02104), which corrects
  the 2017 plug-in formula behind Binkowski's `_mmd2_and_variance`. That formula drops lower-order terms;
  under the null, where the variance IS the lower-order term, its bias dominates (the Monte Carlo test
  in tests/test_estimators.py checks both regimes).

  Args:
    blocks: GramBlocks with K_rr, K_ff, K_rf all [m, m], m >= 4. Pass float64 blocks for large m.

  Returns:
    (mmd2, variance): `mmd2_unbiased(blocks)` and the variance estimate (can be slightly negative).
  """
  _require_square(blocks.real_fake, "mmd2_unbiased_and_variance")
  if blocks.real_fake.shape[0] is not None and blocks.real_fake.shape[0] < 4:
    raise ValueError(f"the variance needs at least 4 samples per set, got {blocks.real_fake.shape[0]}")
  h = _pair_kernel_matrix(blocks)
  m = _count(h, 0)
  rows = tf.reduce_sum(h, axis=1)
  pair_sq = tf.reduce_sum(tf.square(h))                  # sum over i != j of h_ij^2
  triples = tf.reduce_sum(tf.square(rows)) - pair_sq      # sum over distinct i, j, l of h_ij h_il
  quadruples = tf.square(tf.reduce_sum(rows)) - 4 * triples - 2 * pair_sq  # distinct i, j, k, l
  mmd4 = quadruples / (m * (m - 1) * (m - 2) * (m - 3))
  zeta1 = triples / (m * (m - 1) * (m - 2)) - mmd4
  zeta2 = pair_sq / (m * (m - 1)) - mmd4
  variance = (4 * (m - 2) * zeta1 + 2 * zeta2) / (m * (m - 1))
  return mmd2_unbiased(blocks), variance
