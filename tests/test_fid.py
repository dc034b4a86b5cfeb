"""FID against a numpy/scipy oracle; Inception Score against a numpy oracle."""

import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from mmd_gan_tf.metrics import fid
from mmd_gan_tf.metrics import inception_score


def _oracle_fid(real, fake):
  real, fake = real.astype(np.float64), fake.astype(np.float64)
  mu_r, mu_f = real.mean(0), fake.mean(0)
  cov_r, cov_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
  root = scipy.linalg.sqrtm(cov_r @ cov_f)
  return np.sum((mu_r - mu_f) ** 2) + np.trace(cov_r) + np.trace(cov_f) - 2 * np.trace(root).real


def _features(seed, count, dim=12, scale=1.0, shift=0.0):
  rng = np.random.default_rng(seed)
  mixing = rng.normal(size=(dim, dim)) * scale
  return (rng.normal(size=(count, dim)) @ mixing + shift).astype(np.float32)


def test_fid_matches_scipy_oracle_with_unequal_counts():
  real, fake = _features(0, 300), _features(1, 220, scale=0.7, shift=0.4)
  value = fid.fid(real, fake, min_samples=0)
  assert value.dtype == tf.float64
  np.testing.assert_allclose(value.numpy(), _oracle_fid(real, fake), rtol=1e-8)


def test_trace_sqrt_product_matches_sqrtm():
  rng = np.random.default_rng(2)
  a, b = rng.normal(size=(9, 9)), rng.normal(size=(9, 4))
  cov_real, cov_fake = a @ a.T, b @ b.T  # the second is rank deficient
  expected = np.trace(scipy.linalg.sqrtm(cov_real @ cov_fake)).real
  np.testing.assert_allclose(fid.trace_sqrt_product(cov_real, cov_fake).numpy(), expected, rtol=1e-7)


@pytest.mark.parametrize("real_count, fake_count", [(40, 25), (25, 63)])
def test_fewer_samples_than_dimensions_take_the_features_route_to_the_same_distance(real_count, fake_count):
  real, fake = _features(7, real_count, dim=64), _features(8, fake_count, dim=64, scale=0.6, shift=0.3)
  """M, N < d: C_r C_f is singular, and the square roots of its ~1e-13 "zero" eigenvalues put ~1e-5 of
  rounding into the covariance routes (scipy's sqrtm and `trace_sqrt_product` alike); the features route
  has none. Oracle: numpy's singular values of the scaled centred features' product A B^T, float64."""
  real, fake = _features(7, real_count, dim=64), _features(8, fake_count, dim=64, scale=0.6, shift=0.3)
  real64, fake64 = real.astype(np.float64), fake.astype(np.float64)
  a = (real64 - real64.mean(0)) / np.sqrt(real_count - 1)
  b = (fake64 - fake64.mean(0)) / np.sqrt(fake_count - 1)
  trace_root = np.linalg.svd(a @ b.T, compute_uv=False).sum()
  np.testing.assert_allclose(fid.trace_sqrt_product_from_features(real, fake).numpy(), trace_root, rtol=1e-10)
  mu_r, mu_f = real64.mean(0), fake64.mean(0)
  expected = np.sum((mu_r - mu_f) ** 2) + np.sum(a ** 2) + np.sum(b ** 2) - 2 * trace_root
  value = fid.fid(real, fake, min_samples=0)
  np.testing.assert_allclose(value.numpy(), expected, rtol=1e-10)
  # The covariance routes agree to their rounding.
  covariances = fid.frechet_distance(*fid.feature_statistics(real), *fid.feature_statistics(fake))
  np.testing.assert_allclose(value.numpy(), covariances.numpy(), rtol=1e-7)
  np.testing.assert_allclose(value.numpy(), _oracle_fid(real, fake), rtol=1e-7)


def test_fid_of_a_set_with_itself_is_zero_and_runs_in_graph():
  real = _features(3, 100)
  in_graph = tf.function(lambda r, f: fid.fid(r, f, min_samples=0))
  np.testing.assert_allclose(in_graph(tf.constant(real), tf.constant(real)).numpy(), 0.0, atol=1e-6)
  few = _features(3, 10, dim=32)  # the features route
  np.testing.assert_allclose(in_graph(tf.constant(few), tf.constant(few)).numpy(), 0.0, atol=1e-6)
  unknown = tf.function(lambda r, f: fid.fid(r, f, min_samples=0),
                        input_signature=[tf.TensorSpec([None, 12], tf.float32)] * 2)  # counts unknown
  np.testing.assert_allclose(unknown(real, real).numpy(), 0.0, atol=1e-6)  # the covariance route


def test_fid_refuses_fewer_than_2048_samples():
  real, fake = _features(4, 2048, dim=4), _features(5, 2047, dim=4)
  with pytest.raises(ValueError, match="2047 fake samples is below min_samples=2048"):
    fid.fid(real, fake)
  np.testing.assert_allclose(fid.fid(real, fake, min_samples=2000).numpy(), _oracle_fid(real, fake),
                             rtol=1e-8)
  with pytest.raises(ValueError, match=r"\[M, d\]"):
    fid.fid(real, fake[:, :3], min_samples=0)


def _oracle_inception_score(logits, splits):
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  scores = []
  for part in np.array_split(probs, splits):
    marginal = part.mean(0)
    kl = (part * (np.log(part) - np.log(marginal))).sum(1)
    scores.append(np.exp(kl.mean()))
  return np.mean(scores), np.std(scores)


def test_inception_score_matches_oracle():
  logits = np.random.default_rng(6).normal(scale=3.0, size=(53, 10))
  score = inception_score.inception_score_from_logits(logits, num_splits=5)
  mean, std = _oracle_inception_score(logits, 5)
  np.testing.assert_allclose([score.mean, score.std], [mean, std], rtol=1e-9)
  assert 1.0 <= score.mean <= 10.0
  confident = np.eye(10)[np.arange(50) % 10] * 50.0  # every class equally often, certain
  np.testing.assert_allclose(inception_score.inception_score_from_logits(confident, 1).mean, 10.0,
                             rtol=1e-6)
  with pytest.raises(ValueError, match="num_splits"):
    inception_score.inception_score_from_logits(logits, num_splits=60)
