"""The relative-similarity (3-sample) MMD test of Bounliphone et al. 2016, with the KID kernel.

Question: are the newest generated codes significantly closer to the real codes than older ones?
Statistic: diff = MMD2_u(real, new) - MMD2_u(real, old) (`estimators.mmd2_unbiased`, poly kernel),
t = diff / sqrt(Var(diff)), p = Phi(t). A small p means "new is closer"; the learning-rate adaptation
of Binkowski et al. 2018 counts p > 0.1 as a failure.

Var(diff): with m = n = r samples, diff is (up to the O(1/m) diagonal of the cross blocks) the one-sample
U-statistic over triples a_i = (r_i, new_i, old_i) with the symmetric core
  h(a_i, a_j) = k(n_i, n_j) - k(o_i, o_j) - k(r_i, n_j) - k(r_j, n_i) + k(r_i, o_j) + k(r_j, o_i),
whose variance is (Hoeffding) Var = (4 (m-2) zeta1 + 2 zeta2) / (m (m-1)) (Bounliphone et al. 2016,
appendix), with zeta1 = Var_a E_a' h(a, a') and zeta2 = Var h(a, a'). They are estimated here by plug-in:
theta = mean_{i!=j} H_ij, g_i = mean_{j!=i} H_ij, zeta1 = mean_i g_i^2 - theta^2,
zeta2 = mean_{i!=j} H_ij^2 - theta^2.
"""

import math
from typing import NamedTuple

import tensorflow as tf

from mmd_gan_tf import estimators
from mmd_gan_tf import kernels
from mmd_gan_tf.metrics.kid import KID_KERNEL


class RelativeSimilarity(NamedTuple):
  """Scalars (float64): the two MMD^2, their difference, its variance, t and p = Phi(t)."""
  mmd2_new: tf.Tensor
  mmd2_old: tf.Tensor
  diff: tf.Tensor
  variance: tf.Tensor
  t_stat: tf.Tensor
  p_value: tf.Tensor


def normal_cdf(t: tf.Tensor) -> tf.Tensor:
  """Phi(t) = erfc(-t / sqrt 2) / 2 (accurate in both tails)."""
  return 0.5 * tf.math.erfc(-t / math.sqrt(2.0))


def diff_core_matrix(new_new, old_old, real_new, real_old) -> tf.Tensor:
  """H_ij = h(a_i, a_j) for i != j, 0 on the diagonal: [m, m] from four [m, m] Gram matrices."""
  core = (new_new - old_old - real_new - tf.transpose(real_new) + real_old + tf.transpose(real_old))
  return tf.linalg.set_diag(core, tf.zeros_like(tf.linalg.diag_part(core)))


def diff_variance(new_new, old_old, real_new, real_old) -> tf.Tensor:
  """Plug-in estimate of Var(MMD2_u(real, new) - MMD2_u(real, old)) (module docstring); scalar."""
  core = diff_core_matrix(new_new, old_old, real_new, real_old)
  m = tf.cast(tf.shape(core)[0], core.dtype)
  pairs = m * (m - 1)
  theta = tf.reduce_sum(core) / pairs
  row_means = tf.reduce_sum(core, axis=1) / (m - 1)
  zeta1 = tf.reduce_mean(tf.square(row_means)) - tf.square(theta)
  zeta2 = tf.reduce_sum(tf.square(core)) / pairs - tf.square(theta)
  return (4 * (m - 2) * zeta1 + 2 * zeta2) / pairs


def relative_similarity_test(real_codes, new_fake_codes, old_fake_codes,
                             kernel_cfg=KID_KERNEL, variance_floor: float = 0.0) -> RelativeSimilarity:
  """The 3-sample test on codes real [m, d], new [m, d], old [m, d] (equal counts, m >= 3), float64.

  t = diff / sqrt(max(Var, variance_floor)); Binkowski's scorer floors the variance at 1e-5, which on
  Inception codes (Var ~ 1e-7 late in training) makes small differences count as "no improvement".

  Raises:
    ValueError: counts differ or are below 3 (static shapes).
  """
  real, new, old = (tf.cast(x, tf.float64) for x in (real_codes, new_fake_codes, old_fake_codes))
  counts = {real.shape[0], new.shape[0], old.shape[0]}
  if None not in counts and (len(counts) != 1 or min(counts) < 3):
    raise ValueError(f"the 3-sample test needs equal counts >= 3, got real {real.shape[0]}, "
                     f"new {new.shape[0]}, old {old.shape[0]}")
  blocks_new = kernels.get_kernel(kernel_cfg.kernel)(real, new, kernel_cfg)
  blocks_old = kernels.get_kernel(kernel_cfg.kernel)(real, old, kernel_cfg)
  mmd2_new = estimators.mmd2_unbiased(blocks_new)
  mmd2_old = estimators.mmd2_unbiased(blocks_old)
  variance = diff_variance(blocks_new.fake_fake, blocks_old.fake_fake, blocks_new.real_fake,
                           blocks_old.real_fake)
  diff = mmd2_new - mmd2_old
  floor = tf.constant(max(float(variance_floor), 1e-300), tf.float64)
  t_stat = diff / tf.sqrt(tf.maximum(variance, floor))
  return RelativeSimilarity(mmd2_new, mmd2_old, diff, variance, t_stat, normal_cdf(t_stat))
