"""Penalties against closed-form gradients and float64 numpy oracles."""

import numpy as np
import pytest
import tensorflow as tf

from mmd_gan_tf import penalties
from mmd_gan_tf.config import LossConfig

IMAGE_SHAPE = (4, 5, 3)  # H, W, C: rank-4 batches, non-square, so every axis matters
PIXELS = int(np.prod(IMAGE_SHAPE))


def linear_critic(weights):
  """psi(x) = vec(x) W: its input Jacobian is W^T for every x."""
  w = tf.constant(weights)
  return lambda images, training=True: tf.reshape(images, [tf.shape(images)[0], -1]) @ w


def np_rbf_feature_gradient(p, real, fake, sigma):
  """d/dp of mean_i k(p, r_i) - mean_j k(p, f_j) for k = exp(-|p - q|^2 / (2 s^2)): [b, d]."""
  def part(q):
    k = np.exp(-np.sum((p[:, None] - q[None]) ** 2, -1) / (2 * sigma**2))   # [b, m]
    return np.mean(k[..., None] * (q[None] - p[:, None]), axis=1) / sigma**2
  return part(real) - part(fake)


def np_mix_rq_dot_feature_gradient(p, real, fake, alphas, w):
  def part(q):
    d2 = np.sum((p[:, None] - q[None]) ** 2, -1)
    coef = sum((1 + d2 / (2 * a)) ** (-a - 1) for a in alphas)               # [b, m]
    return np.mean(-coef[..., None] * (p[:, None] - q[None]) + w * q[None], axis=1)
  return part(real) - part(fake)


def _setup(seed, batch=6, dim=3, m=10, n=14):
  rng = np.random.default_rng(seed)
  points = rng.normal(size=(batch,) + IMAGE_SHAPE)
  weights = rng.normal(scale=0.15, size=(PIXELS, dim))  # features psi(x) of the scale of r, f
  real = rng.normal(size=(m, dim))
  fake = rng.normal(loc=0.7, size=(n, dim))
  return points, weights, real, fake


@pytest.mark.parametrize("kernel", ["rbf", "mix_rq_dot"])
def test_witness_gradient_penalty_matches_closed_form_over_all_pixels(kernel):
  points, weights, real, fake = _setup(0)
  cfg = LossConfig(kernel=kernel, sigmas=(1.2,), alphas=(0.5, 2.0), dot_weight=0.8)
  gp = penalties.witness_gradient_penalty(linear_critic(weights), tf.constant(points), tf.constant(real),
                                          tf.constant(fake), cfg)
  p = points.reshape(len(points), -1) @ weights
  if kernel == "rbf":
    grad_features = np_rbf_feature_gradient(p, real, fake, 1.2)
  else:
    grad_features = np_mix_rq_dot_feature_gradient(p, real, fake, (0.5, 2.0), 0.8)
  grad_images = (grad_features @ weights.T).reshape(points.shape)           # chain rule through psi
  norms = np.sqrt(np.sum(grad_images**2, axis=(1, 2, 3)))
  want = np.mean((norms - 1) ** 2)
  np.testing.assert_allclose(gp.numpy(), want, rtol=1e-8)
  # The reference code's bug, the norm over axis 1 (height) only, gives a clearly different value,
  # so the assertion above fails for it.
  wrong = np.mean((np.sqrt(np.sum(grad_images**2, axis=1)) - 1) ** 2)
  assert abs(wrong - want) > 0.05 * abs(want)


def test_witness_matches_oracle():
  points, weights, real, fake = _setup(1)
  cfg = LossConfig(kernel="rbf", sigmas=(0.9,))
  p = points.reshape(len(points), -1) @ weights
  got = penalties.witness(tf.constant(p), tf.constant(real), tf.constant(fake), cfg)
  k = lambda q: np.exp(-np.sum((p[:, None] - q[None]) ** 2, -1) / (2 * 0.81)).mean(1)
  np.testing.assert_allclose(got.numpy(), k(real) - k(fake), rtol=1e-10)


def test_gradient_penalty_double_backprop_matches_closed_form():
  """D(x) = vec(x) . w: GP = (|w| - 1)^2 at any point, d GP / dw = 2 (|w| - 1) w / |w|."""
  rng = np.random.default_rng(2)
  w_value = rng.normal(scale=0.2, size=(PIXELS,))
  w = tf.Variable(w_value)
  points = tf.constant(rng.normal(size=(5,) + IMAGE_SHAPE))
  with tf.GradientTape() as tape:
    gp = penalties.gradient_penalty(lambda x: tf.reshape(x, [5, -1]) @ w[:, None], points)
  grad = tape.gradient(gp, w)
  norm = np.linalg.norm(w_value)
  np.testing.assert_allclose(gp.numpy(), (norm - 1) ** 2, rtol=1e-8)
  np.testing.assert_allclose(grad.numpy(), 2 * (norm - 1) * w_value / norm, rtol=1e-7)


def test_interpolate():
  rng = np.random.default_rng(3)
  real, fake = rng.normal(size=(4,) + IMAGE_SHAPE), rng.normal(size=(4,) + IMAGE_SHAPE)
  alpha = np.array([0.0, 0.25, 0.5, 1.0])
  got = penalties.interpolate(tf.constant(real), tf.constant(fake), tf.constant(alpha))
  np.testing.assert_allclose(got.numpy(), (1 - alpha[:, None, None, None]) * real
                             + alpha[:, None, None, None] * fake, rtol=1e-12)
  drawn = penalties.interpolate(tf.constant(real), tf.constant(fake)).numpy()
  ratio = (drawn - real) / (fake - real)                     # one alpha per example, in [0, 1]
  np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1, :1, :1], ratio.shape), rtol=1e-6)
  assert np.all((ratio >= 0) & (ratio <= 1))
  seed = tf.constant([3, 4], tf.int64)
  first = penalties.interpolate(tf.constant(real), tf.constant(fake), seed=seed).numpy()
  np.testing.assert_array_equal(first, penalties.interpolate(tf.constant(real), tf.constant(fake), seed=seed))
  assert not np.allclose(first, penalties.interpolate(tf.constant(real), tf.constant(fake), seed=seed + 1))
  with pytest.raises(ValueError, match="differ in shape"):
    penalties.interpolate(tf.constant(real), tf.constant(fake[:3]))


def test_jacobian_squared_norm_matches_closed_form():
  """psi(x) = tanh(vec(x) W): |J|_F^2 = sum_k (1 - tanh(z_k)^2)^2 |W_k|^2."""
  rng = np.random.default_rng(4)
  weights = rng.normal(scale=0.1, size=(PIXELS, 2))
  images = rng.normal(size=(3,) + IMAGE_SHAPE)
  w = tf.constant(weights)
  critic = lambda x, training=True: tf.tanh(tf.reshape(x, [3, -1]) @ w)
  got = penalties.jacobian_squared_norm(critic, tf.constant(images))
  z = images.reshape(3, -1) @ weights
  want = np.sum((1 - np.tanh(z) ** 2) ** 2 * np.sum(weights**2, axis=0), axis=1)
  np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)


def test_activation_l2_matches_oracle():
  rng = np.random.default_rng(5)
  acts = [rng.normal(size=(4, 3, 3, 8)), rng.normal(size=(4, 16)), rng.normal(size=(4, 2, 2, 5))]
  got = penalties.activation_l2([tf.constant(a) for a in acts])
  want = sum(np.mean(np.sum(a.reshape(4, -1) ** 2, axis=1) / a[0].size) for a in acts)
  np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
  with pytest.raises(ValueError, match="activations"):
    penalties.activation_l2([])


def test_gradient_norm_needs_a_batch_axis():
  with pytest.raises(ValueError, match="rank >= 2"):
    penalties.per_example_gradient_norm(lambda x: x, tf.constant([1.0, 2.0]))
