"""Kernels against float64 numpy oracles (SPEC section 2), m != n throughout."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from mmd_gan_tf import kernels
from mmd_gan_tf.config import ConfigError, LossConfig

LI_SIGMAS = (1.0, 2.0, 4.0, 8.0, 16.0)
CONFIGS = {
    "rbf": LossConfig(kernel="rbf", sigmas=(1.5,)),
    "mix_rbf": LossConfig(kernel="mix_rbf", sigmas=LI_SIGMAS),
    "mix_rq": LossConfig(kernel="mix_rq", alphas=(0.2, 0.5, 1.0, 2.0, 5.0)),
    "mix_rq_dot": LossConfig(kernel="mix_rq_dot", alphas=(0.1, 1.0, 10.0), dot_weight=0.7),
    "distance": LossConfig(kernel="distance", distance_epsilon=1e-8),
    "poly": LossConfig(kernel="poly"),
    "bounded_rbf": LossConfig(kernel="bounded_rbf", sigmas=(1.0,), bound_low=0.25, bound_high=4.0),
}


def np_d2(a, b):
  """Squared distances by explicit differences (not the |a|^2 + |b|^2 - 2ab expansion)."""
  return np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)


def np_kernel(name, a, b, cfg, block="real_fake"):
  """float64 oracle: the kernel matrix k(a_i, b_j); `block` selects rbf-B's bounds."""
  d2, dot = np_d2(a, b), a @ b.T
  if name in ("rbf", "bounded_rbf"):
    if name == "bounded_rbf" and block == "real_real":
      d2 = np.minimum(d2, cfg.bound_high)
    if name == "bounded_rbf" and block == "fake_fake":
      d2 = np.maximum(d2, cfg.bound_low)
    return np.exp(-d2 / (2 * cfg.sigmas[0] ** 2))
  if name == "mix_rbf":
    return sum(np.exp(-d2 / (2 * s**2)) for s in cfg.sigmas)
  if name in ("mix_rq", "mix_rq_dot"):
    rq = sum((1 + d2 / (2 * alpha)) ** (-alpha) for alpha in cfg.alphas)
    return rq + (cfg.dot_weight * dot if name == "mix_rq_dot" else 0)
  if name == "distance":
    eps = cfg.distance_epsilon
    norm_a = np.sqrt(np.sum(a**2, 1) + eps)[:, None]
    norm_b = np.sqrt(np.sum(b**2, 1) + eps)[None, :]
    return norm_a + norm_b - np.sqrt(d2 + eps)
  if name == "poly":
    return (dot / a.shape[1] + 1) ** 3
  raise AssertionError(name)


def _features(seed, m=50, n=70, d=5):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(m, d)), rng.normal(loc=0.5, scale=1.3, size=(n, d))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_blocks_match_numpy_oracle_with_unequal_sizes(name):
  real, fake = _features(0)
  cfg = CONFIGS[name]
  blocks = kernels.KERNELS[name].blocks(tf.constant(real), tf.constant(fake), cfg)
  assert [b.dtype for b in blocks] == [tf.float64] * 5
  assert blocks.real_real.shape == (50, 50) and blocks.fake_fake.shape == (70, 70)
  assert blocks.real_fake.shape == (50, 70)
  k_rr = np_kernel(name, real, real, cfg, "real_real")
  k_ff = np_kernel(name, fake, fake, cfg, "fake_fake")
  np.testing.assert_allclose(blocks.real_real.numpy(), k_rr, rtol=1e-9, atol=1e-9)
  np.testing.assert_allclose(blocks.fake_fake.numpy(), k_ff, rtol=1e-9, atol=1e-9)
  np.testing.assert_allclose(blocks.real_fake.numpy(), np_kernel(name, real, fake, cfg), rtol=1e-9, atol=1e-9)
  np.testing.assert_allclose(blocks.real_diag.numpy(), np.diag(k_rr), rtol=1e-9, atol=1e-9)
  np.testing.assert_allclose(blocks.fake_diag.numpy(), np.diag(k_ff), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_symmetry(name):
  real, fake = _features(1, m=20, n=30)
  cfg = CONFIGS[name]
  blocks = kernels.KERNELS[name].blocks(tf.constant(real), tf.constant(fake), cfg)
  np.testing.assert_allclose(blocks.real_real.numpy(), blocks.real_real.numpy().T, rtol=1e-12)
  np.testing.assert_allclose(blocks.fake_fake.numpy(), blocks.fake_fake.numpy().T, rtol=1e-12)
  if name != "bounded_rbf":  # rbf-B treats the two sets differently by design
    swapped = kernels.KERNELS[name].blocks(tf.constant(fake), tf.constant(real), cfg)
    np.testing.assert_allclose(swapped.real_fake.numpy(), blocks.real_fake.numpy().T, rtol=1e-12)
    np.testing.assert_allclose(swapped.real_real.numpy(), blocks.fake_fake.numpy(), rtol=1e-12)


def test_mix_rq_dot_diagonal_is_not_constant():
  real, fake = _features(2)
  cfg = CONFIGS["mix_rq_dot"]
  blocks = kernels.mix_rq_dot(tf.constant(real), tf.constant(fake), cfg)
  expected = len(cfg.alphas) + cfg.dot_weight * np.sum(real**2, axis=1)
  np.testing.assert_allclose(blocks.real_diag.numpy(), expected, rtol=1e-12)
  assert np.ptp(blocks.real_diag.numpy()) > 1.0


def test_mix_rbf_is_a_sum_not_a_mean():
  real, fake = _features(3, m=4, n=6)
  blocks = kernels.mix_rbf(tf.constant(real), tf.constant(fake), CONFIGS["mix_rbf"])
  np.testing.assert_allclose(blocks.real_diag.numpy(), np.full(4, float(len(LI_SIGMAS))))


def test_half_precision_is_computed_in_float32():
  real, fake = _features(4, m=10, n=12)
  cfg = CONFIGS["mix_rq_dot"]
  blocks = kernels.mix_rq_dot(tf.constant(real, tf.float16), tf.constant(fake, tf.float16), cfg)
  assert all(b.dtype == tf.float32 for b in blocks)
  real16, fake16 = real.astype(np.float16).astype(np.float64), fake.astype(np.float16).astype(np.float64)
  want = np_kernel("mix_rq_dot", real16, fake16, cfg)
  np.testing.assert_allclose(blocks.real_fake.numpy(), want, rtol=1e-5)


def test_float32_stays_float32():
  real, fake = _features(5, m=10, n=12)
  blocks = kernels.rbf(tf.constant(real, tf.float32), tf.constant(fake, tf.float32), LossConfig())
  assert all(b.dtype == tf.float32 for b in blocks)


def test_squared_distance_is_clamped_for_coincident_points():
  rng = np.random.default_rng(6)
  real = rng.normal(scale=300.0, size=(16, 8)).astype(np.float32)
  cfg = CONFIGS["distance"]
  real_t = tf.constant(real)
  with tf.GradientTape() as tape:
    tape.watch(real_t)
    blocks = kernels.distance(real_t, real_t, cfg)  # fake == real: every real_fake diagonal d2 is 0
    total = tf.reduce_sum(blocks.real_fake) + tf.reduce_sum(blocks.real_real)
  grad = tape.gradient(total, real_t)
  assert np.all(np.isfinite(grad.numpy()))
  p = kernels.pairs(real_t, real_t)
  assert np.all(p.d2.numpy() >= 0)
  rbf = kernels.rbf(real_t, real_t, LossConfig(sigmas=(1000.0,)))
  assert np.all(rbf.real_fake.numpy() <= 1.0)


def test_bounded_rbf_equals_rbf_when_bounds_inactive():
  rng = np.random.default_rng(7)
  real = rng.uniform(-0.4, 0.4, size=(10, 3))               # all real d2 < 4 * 0.64 < b_u
  fake = 0.6 * np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).reshape(3, -1).T  # all fake d2 >= 0.36 > b_l
  cfg = CONFIGS["bounded_rbf"]
  bounded = kernels.bounded_rbf(tf.constant(real), tf.constant(fake), cfg)
  plain = kernels.rbf(tf.constant(real), tf.constant(fake), dataclasses.replace(cfg, kernel="rbf"))
  for got, want in zip(bounded[:3], plain[:3]):
    off = ~np.eye(got.shape[0], got.shape[1], dtype=bool)
    np.testing.assert_allclose(got.numpy()[off], want.numpy()[off], rtol=1e-12)


def test_bad_inputs_raise_clear_errors():
  real, fake = _features(8, m=4, n=5)
  with pytest.raises(ValueError, match="feature dimensions"):
    kernels.rbf(tf.constant(real), tf.constant(fake[:, :3]), LossConfig())
  with pytest.raises(ValueError, match="exactly one bandwidth"):
    kernels.rbf(tf.constant(real), tf.constant(fake), LossConfig(sigmas=(1.0, 2.0)))
  with pytest.raises(ValueError, match="unknown kernel"):
    kernels.get_kernel("gaussian")
  with pytest.raises(ValueError, match="different dtypes"):
    kernels.rbf(tf.constant(real), tf.constant(fake, tf.float32), LossConfig())
  with pytest.raises(ValueError, match="positive alphas"):
    kernels.mix_rq(tf.constant(real), tf.constant(fake), LossConfig(alphas=(0.0, 1.0)))


@pytest.mark.parametrize("name", list(kernels.KERNELS))
def test_every_kernel_check_accepts_the_default_parameters(name):
  kernels.KERNELS[name].check(LossConfig(kernel=name))


@pytest.mark.parametrize("name, bad", [
    ("rbf", dict(sigmas=(1.0, 2.0))), ("bounded_rbf", dict(sigmas=())), ("mix_rbf", dict(sigmas=())),
    ("mix_rq", dict(alphas=())), ("mix_rq_dot", dict(alphas=(-1.0,))), ("bounded_rbf", dict(bound_low=5.0))])
def test_kernel_checks_name_the_field(name, bad):
  field = "loss." + next(iter(bad))
  with pytest.raises(ConfigError) as info:
    kernels.KERNELS[name].check(LossConfig(kernel=name, **bad))
  assert info.value.field == field and name in info.value.reason


def test_cross_kernel_matches_oracle():
  real, fake = _features(9, m=7, n=11)
  cfg = CONFIGS["mix_rq_dot"]
  got = kernels.cross_kernel(tf.constant(real), tf.constant(fake), cfg)
  np.testing.assert_allclose(got.numpy(), np_kernel("mix_rq_dot", real, fake, cfg), rtol=1e-10)


def test_mmd_gp_preset_is_binkowskis_mix_rq_1dot():
  """The mmd_gp preset's kernel is the run scripts' `mix_rq_1dot`: sum over alphas 0.1, 1, 10 of the RQ
  kernel plus 1.0 a.b, checked against a float64 oracle written from Binkowski's formula, with the unbiased
  MMD^2 on the true diagonal."""
  from flags import build as config_builder  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import estimators  # pylint: disable=import-outside-toplevel
  cfg = config_builder.build_config({"dataset": "cifar10", "loss": "mmd_gp"}).loss
  assert (cfg.kernel, cfg.alphas, cfg.dot_weight) == ("mix_rq_dot", (0.1, 1.0, 10.0), 1.0)
  real, fake = _features(3, m=40, n=40, d=16)

  def oracle(a, b):
    d2 = np_d2(a, b)
    return sum((1 + d2 / (2 * alpha)) ** -alpha for alpha in (0.1, 1.0, 10.0)) + 1.0 * (a @ b.T)

  blocks = kernels.KERNELS[cfg.kernel].blocks(tf.constant(real), tf.constant(fake), cfg)
  np.testing.assert_allclose(blocks.real_fake.numpy(), oracle(real, fake), rtol=1e-10)
  np.testing.assert_allclose(blocks.real_real.numpy(), oracle(real, real), rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(blocks.real_diag.numpy(), 3.0 + np.sum(real**2, 1), rtol=1e-12)
  k_rr, k_ff, k_rf = oracle(real, real), oracle(fake, fake), oracle(real, fake)
  m = len(real)
  want = ((k_rr.sum() - np.trace(k_rr)) / (m * (m - 1)) + (k_ff.sum() - np.trace(k_ff)) / (m * (m - 1))
          - 2 * k_rf.mean())
  np.testing.assert_allclose(estimators.mmd2_unbiased(blocks).numpy(), want, rtol=1e-9)
