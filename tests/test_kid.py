"""KID against a float64 numpy oracle: unequal counts, several subset sizes, in-graph version."""

import numpy as np
import pytest
import tensorflow as tf

from mmd_gan_tf.metrics import kid


def _oracle_mmd2(real, fake):
  """Unbiased MMD^2 with k = (a.b / d + 1)^3, float64, written out term by term."""
  real, fake = real.astype(np.float64), fake.astype(np.float64)
  d = real.shape[1]
  k_rr = (real @ real.T / d + 1) ** 3
  k_ff = (fake @ fake.T / d + 1) ** 3
  k_rf = (real @ fake.T / d + 1) ** 3
  m, n = len(real), len(fake)
  within_real = (k_rr.sum() - np.trace(k_rr)) / (m * (m - 1))
  within_fake = (k_ff.sum() - np.trace(k_ff)) / (n * (n - 1))
  return within_real + within_fake - 2 * k_rf.mean()


def _oracle_kid(real, fake, real_idx, fake_idx):
  return np.array([_oracle_mmd2(real[r], fake[f]) for r, f in zip(real_idx, fake_idx)])


def _features(seed, count, dim=48, shift=0.0):
  # Non-negative like Inception pool features; float32 like the network's output.
  rng = np.random.default_rng(seed)
  return (rng.gamma(1.0, 0.5, size=(count, dim)) + shift).astype(np.float32)


REAL = _features(0, 70)
FAKE = _features(1, 95, shift=0.05)


@pytest.mark.parametrize("subset_size", [2, 7, 33, (12, 30), None])
def test_subset_values_match_oracle(subset_size):
  real_idx, fake_idx = kid.subset_indices(len(REAL), len(FAKE), 4, subset_size, seed=3)
  values = kid.kid_subset_values(REAL, FAKE, real_idx, fake_idx).numpy()
  assert values.dtype == np.float64
  np.testing.assert_allclose(values, _oracle_kid(REAL, FAKE, real_idx, fake_idx), rtol=1e-6)


def test_kid_mean_std_stderr_match_oracle():
  result = kid.kid(REAL, FAKE, num_subsets=9, subset_size=20, seed=5)
  real_idx, fake_idx = kid.subset_indices(len(REAL), len(FAKE), 9, 20, seed=5)
  expected = _oracle_kid(REAL, FAKE, real_idx, fake_idx)
  np.testing.assert_allclose(result.values, expected, rtol=1e-6)
  np.testing.assert_allclose(result.mean, expected.mean(), rtol=1e-6)
  np.testing.assert_allclose(result.std, expected.std(), rtol=1e-6)
  np.testing.assert_allclose(result.stderr, expected.std(ddof=1) / 3.0, rtol=1e-6)


def test_kid_with_negative_features_matches_oracle():
  rng = np.random.default_rng(7)
  real, fake = rng.normal(size=(40, 16)), rng.normal(0.3, 1.2, size=(25, 16))
  result = kid.kid(real, fake, num_subsets=1, subset_size=None)
  np.testing.assert_allclose(result.mean, _oracle_mmd2(real, fake), rtol=1e-6)
  assert np.isnan(result.stderr)


def test_subset_draws_are_seeded_and_without_replacement():
  real_idx, fake_idx = kid.subset_indices(50, 80, 6, 20, seed=1)
  again = kid.subset_indices(50, 80, 6, 20, seed=1)
  other = kid.subset_indices(50, 80, 6, 20, seed=2)
  np.testing.assert_array_equal(real_idx, again[0])
  np.testing.assert_array_equal(fake_idx, again[1])
  assert not np.array_equal(real_idx, other[0])
  assert real_idx.shape == (6, 20) and fake_idx.shape == (6, 20)
  assert all(len(set(row)) == 20 for row in np.concatenate([real_idx, fake_idx]))
  assert real_idx.max() < 50 and fake_idx.max() < 80


def test_sets_smaller_than_the_subset_are_an_error():
  with pytest.raises(ValueError, match="70 real features but subset_size=100"):
    kid.kid(REAL, FAKE, num_subsets=2, subset_size=100)
  with pytest.raises(ValueError, match="95 fake features but subset_size=96"):
    kid.kid(REAL, FAKE, num_subsets=2, subset_size=(10, 96))
  with pytest.raises(ValueError, match="num_subsets"):
    kid.kid(REAL, FAKE, num_subsets=0, subset_size=10)
  with pytest.raises(ValueError, match=r"\[M, d\]"):
    kid.kid(REAL, FAKE[:, :10], num_subsets=1, subset_size=10)
  with pytest.raises(ValueError, match="subset_size"):
    kid.kid_in_graph(REAL, FAKE, num_subsets=2, subset_size=80)


def test_kid_in_graph_matches_oracle_inside_tf_function():
  seed = 11

  @tf.function
  def in_graph(real, fake):
    return kid.kid_in_graph(real, fake, num_subsets=5, subset_size=25, seed=seed)

  mean, std = in_graph(tf.constant(REAL), tf.constant(FAKE))
  assert mean.dtype == tf.float64 and std.dtype == tf.float64
  base = tf.constant([seed, 0], tf.int64)
  real_idx = kid.stateless_subset_indices(len(REAL), 5, 25, base).numpy()
  fake_idx = kid.stateless_subset_indices(len(FAKE), 5, 25, base + [0, 1]).numpy()
  assert all(len(set(row)) == 25 for row in real_idx)
  expected = _oracle_kid(REAL, FAKE, real_idx, fake_idx)
  np.testing.assert_allclose(mean.numpy(), expected.mean(), rtol=1e-6)
  np.testing.assert_allclose(std.numpy(), expected.std(), rtol=1e-6)


def test_kid_separates_equal_from_shifted_distributions():
  same = kid.kid(_features(20, 300), _features(21, 300), num_subsets=10, subset_size=100, seed=0)
  shifted = kid.kid(_features(20, 300), _features(21, 300, shift=0.3), num_subsets=10,
                    subset_size=100, seed=0)
  assert abs(same.mean) < 3 * same.std + 1e-12
  assert shifted.mean > 10 * max(same.std, abs(same.mean))
