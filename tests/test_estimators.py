"""MMD^2 estimators against float64 numpy oracles and Monte Carlo (SPEC section 3)."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from mmd_gan_tf import estimators, kernels
from mmd_gan_tf.config import LossConfig

CONFIGS = {
    "rbf": LossConfig(kernel="rbf", sigmas=(1.5,)),
    "mix_rbf": LossConfig(kernel="mix_rbf", sigmas=(2.0, 5.0, 10.0)),
    "mix_rq": LossConfig(kernel="mix_rq", alphas=(0.1, 1.0, 10.0)),
    "mix_rq_dot": LossConfig(kernel="mix_rq_dot", alphas=(0.1, 1.0, 10.0), dot_weight=1.0),
    "distance": LossConfig(kernel="distance"),
    "poly": LossConfig(kernel="poly"),
}


def np_gram(name, a, b, cfg):
  """float64 kernel matrix by explicit pairwise differences (independent of the library)."""
  d2 = np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
  if name == "rbf":
    return np.exp(-d2 / (2 * cfg.sigmas[0] ** 2))
  if name == "mix_rbf":
    return sum(np.exp(-d2 / (2 * s**2)) for s in cfg.sigmas)
  if name in ("mix_rq", "mix_rq_dot"):
    rq = sum((1 + d2 / (2 * alpha)) ** (-alpha) for alpha in cfg.alphas)
    return rq + (cfg.dot_weight * (a @ b.T) if name == "mix_rq_dot" else 0)
  if name == "distance":
    eps = cfg.distance_epsilon
    return (np.sqrt(np.sum(a**2, 1) + eps)[:, None] + np.sqrt(np.sum(b**2, 1) + eps)[None, :]
            - np.sqrt(d2 + eps))
  if name == "poly":
    return (a @ b.T / a.shape[1] + 1) ** 3
  raise AssertionError(name)


def np_mean_off_diagonal(k):
  """Mean over i != j, by an explicit mask."""
  mask = ~np.eye(k.shape[0], dtype=bool)
  return k[mask].mean()


def np_mmd2_biased(k_rr, k_ff, k_rf):
  return k_rr.mean() + k_ff.mean() - 2 * k_rf.mean()


def np_mmd2_unbiased(k_rr, k_ff, k_rf):
  return np_mean_off_diagonal(k_rr) + np_mean_off_diagonal(k_ff) - 2 * k_rf.mean()


def np_mmd2_and_variance(k_rr, k_ff, k_rf):
  """Unbiased MMD2_u and the unbiased variance of its U-statistic form, by brute-force enumeration.

  h_ij = k_rr[i,j] + k_ff[i,j] - k_rf[i,j] - k_rf[j,i]; Var U = 4 (m-2)/(m(m-1)) zeta1 + 2/(m(m-1)) zeta2
  with zeta1 = E h_ij h_il - (E h)^2, zeta2 = E h_ij^2 - (E h)^2, every moment the mean over distinct
  index tuples (Hoeffding 1948). Loops over all tuples: use small m.
  """
  m = k_rr.shape[0]
  h = k_rr + k_ff - k_rf - k_rf.T
  pairs = [h[i, j] ** 2 for i, j in itertools.permutations(range(m), 2)]
  triples = [h[i, j] * h[i, q] for i, j, q in itertools.permutations(range(m), 3)]
  quadruples = [h[i, j] * h[k, q] for i, j, k, q in itertools.permutations(range(m), 4)]
  zeta1 = np.mean(triples) - np.mean(quadruples)
  zeta2 = np.mean(pairs) - np.mean(quadruples)
  var = 4 * (m - 2) / (m * (m - 1)) * zeta1 + 2 / (m * (m - 1)) * zeta2
  return np_mmd2_unbiased(k_rr, k_ff, k_rf), var


def _samples(seed, m, n, d=4, shift=0.4):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(m, d)), rng.normal(loc=shift, size=(n, d))


def _blocks(name, real, fake):
  return kernels.KERNELS[name].blocks(tf.constant(real), tf.constant(fake), CONFIGS[name])


def _np_blocks(name, real, fake):
  cfg = CONFIGS[name]
  return np_gram(name, real, real, cfg), np_gram(name, fake, fake, cfg), np_gram(name, real, fake, cfg)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_biased_and_unbiased_match_oracle_with_50_real_vs_70_fake(name):
  real, fake = _samples(0, 50, 70)
  blocks, np_blocks = _blocks(name, real, fake), _np_blocks(name, real, fake)
  np.testing.assert_allclose(estimators.mmd2_biased(blocks).numpy(), np_mmd2_biased(*np_blocks), rtol=1e-9)
  np.testing.assert_allclose(estimators.mmd2_unbiased(blocks).numpy(), np_mmd2_unbiased(*np_blocks),
                             rtol=1e-9)
  assert estimators.mmd2_unbiased(blocks).dtype == tf.float64


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_all_off_diagonal_matches_oracle(name):
  real, fake = _samples(1, 40, 40)
  blocks, (k_rr, k_ff, k_rf) = _blocks(name, real, fake), _np_blocks(name, real, fake)
  want = np_mean_off_diagonal(k_rr) + np_mean_off_diagonal(k_ff) - 2 * np_mean_off_diagonal(k_rf)
  np.testing.assert_allclose(estimators.mmd2_all_off_diagonal(blocks).numpy(), want, rtol=1e-9)


@pytest.mark.parametrize("name", ["rbf", "mix_rq_dot", "distance"])
def test_variance_matches_brute_force_oracle(name):
  real, fake = _samples(11, 9, 9, shift=0.3)
  mmd2, var = estimators.mmd2_unbiased_and_variance(_blocks(name, real, fake))
  want_mmd2, want_var = np_mmd2_and_variance(*_np_blocks(name, real, fake))
  np.testing.assert_allclose(mmd2.numpy(), want_mmd2, rtol=1e-9)
  np.testing.assert_allclose(var.numpy(), want_var, rtol=1e-8)


def test_estimators_are_symmetric_in_real_and_fake():
  real, fake = _samples(2, 30, 45)
  blocks, swapped = _blocks("mix_rq_dot", real, fake), _blocks("mix_rq_dot", fake, real)
  for estimator in (estimators.mmd2_biased, estimators.mmd2_unbiased):
    np.testing.assert_allclose(estimator(blocks).numpy(), estimator(swapped).numpy(), rtol=1e-12)


def test_mix_rq_dot_unbiased_estimate_fails_with_a_constant_diagonal():
  """The true diagonal len(alphas) + |a|^2 must be removed; a constant one leaves a bias ~ MMD^2."""
  real, fake = _samples(3, 50, 70, d=8, shift=0.1)
  blocks, np_blocks = _blocks("mix_rq_dot", real, fake), _np_blocks("mix_rq_dot", real, fake)
  want = np_mmd2_unbiased(*np_blocks)
  got = estimators.mmd2_unbiased(blocks).numpy()
  np.testing.assert_allclose(got, want, rtol=1e-9)
  # What Binkowski's code computed: subtract a constant diagonal (the rq part, len(alphas)) instead.
  k_rr, k_ff, k_rf = np_blocks
  m, n, c = 50, 70, len(CONFIGS["mix_rq_dot"].alphas)
  constant = ((k_rr.sum() - m * c) / (m * (m - 1)) + (k_ff.sum() - n * c) / (n * (n - 1))
              - 2 * k_rf.mean())
  assert abs(constant - want) > 100 * 1e-9 * abs(want) + 1e-6  # the check above tells the two apart
  assert abs(constant - want) > abs(want)                        # and the bias is as large as MMD^2


@tf.function
def _rbf_estimates(real, fake):
  blocks = kernels.rbf(real, fake, CONFIGS["rbf"])
  return estimators.mmd2_unbiased(blocks), estimators.mmd2_biased(blocks)


@tf.function
def _rbf_mmd2_and_variance(real, fake):
  return estimators.mmd2_unbiased_and_variance(kernels.rbf(real, fake, CONFIGS["rbf"]))


def test_unbiased_mmd2_of_one_distribution_averages_to_zero():
  values, biased = [], []
  for seed in range(200):
    real, fake = _samples(100 + seed, 20, 30, shift=0.0)
    unbiased_value, biased_value = _rbf_estimates(tf.constant(real), tf.constant(fake))
    values.append(unbiased_value.numpy())
    biased.append(biased_value.numpy())
  values = np.array(values)
  standard_error = values.std() / np.sqrt(len(values))
  assert abs(values.mean()) < 3 * standard_error
  assert np.mean(biased) > 10 * standard_error  # the V-statistic is biased upwards: the test can tell


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_variance_matches_monte_carlo(shift):
  """Under the null (shift 0) the variance is the small zeta2 term: a biased formula fails there."""
  m, reps = 30, 600
  estimates, variances = [], []
  for seed in range(reps):
    real, fake = _samples(1000 + seed, m, m, d=2, shift=shift)
    mmd2, var = _rbf_mmd2_and_variance(tf.constant(real), tf.constant(fake))
    estimates.append(mmd2.numpy())
    variances.append(var.numpy())
  monte_carlo = np.var(estimates, ddof=1)
  # The sample variance of 600 draws has a relative standard error of about sqrt(2 / 599) = 6% (Gaussian);
  # heavier tails make it larger, hence the 25% band.
  assert abs(np.mean(variances) / monte_carlo - 1) < 0.25


def test_shape_errors():
  real, fake = _samples(4, 50, 70)
  blocks = _blocks("rbf", real, fake)
  with pytest.raises(ValueError, match="50 real vs 70 fake"):
    estimators.mmd2_all_off_diagonal(blocks)
  with pytest.raises(ValueError, match="50 real vs 70 fake"):
    estimators.mmd2_unbiased_and_variance(blocks)
  with pytest.raises(ValueError, match="at least 2 real"):
    estimators.mmd2_unbiased(_blocks("rbf", real[:1], fake))
  with pytest.raises(ValueError, match="at least 4"):
    estimators.mmd2_unbiased_and_variance(_blocks("rbf", real[:3], fake[:3]))


def test_float32_blocks_give_float32_estimates_inside_tf_function():
  real, fake = _samples(5, 16, 16)

  @tf.function
  def all_estimates(r, f):
    blocks = kernels.rbf(r, f, CONFIGS["rbf"])
    return (estimators.mmd2_biased(blocks), estimators.mmd2_unbiased(blocks),
            estimators.mmd2_all_off_diagonal(blocks), *estimators.mmd2_unbiased_and_variance(blocks))

  got = all_estimates(tf.constant(real, tf.float32), tf.constant(fake, tf.float32))
  assert all(g.dtype == tf.float32 for g in got)
  np_blocks = _np_blocks("rbf", real, fake)
  np.testing.assert_allclose(got[1].numpy(), np_mmd2_unbiased(*np_blocks), rtol=1e-4, atol=1e-6)
