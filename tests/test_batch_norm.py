"""models.common.BatchNorm: Keras' batch normalization through the fused kernel, against float64 oracles."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_gan_tf.models import common

EPS, MOMENTUM = 1e-3, 0.9
GAMMA, BETA = np.array([1.5, 0.5, 2.0]), np.array([0.1, -0.2, 0.3])


def _layer(cls=common.BatchNorm, shape=(6, 4, 5, 3)):
  layer = cls(momentum=MOMENTUM, epsilon=EPS)
  layer.build(shape)
  layer.gamma.assign(GAMMA)
  layer.beta.assign(BETA)
  layer.moving_mean.assign([0.2, -0.1, 0.0])
  layer.moving_variance.assign([1.2, 0.8, 1.0])
  return layer


def _images(shape=(6, 4, 5, 3)):
  return np.random.default_rng(0).normal(1.0, 2.0, size=shape)


def test_training_step_matches_the_float64_oracle():
  x = _images()
  weights = np.random.default_rng(1).normal(size=x.shape)
  layer = _layer()
  inputs = tf.constant(x, tf.float32)
  with tf.GradientTape() as tape:
    tape.watch(inputs)
    outputs = layer(inputs, training=True)
    loss = tf.reduce_sum(outputs * tf.constant(weights, tf.float32))
  grad_x, grad_gamma, grad_beta = tape.gradient(loss, [inputs, layer.gamma, layer.beta])
  # Oracle: batch mean and biased variance over (N, H, W).
  mean, variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
  normalized = (x - mean) / np.sqrt(variance + EPS)
  np.testing.assert_allclose(outputs.numpy(), GAMMA * normalized + BETA, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(layer.moving_mean.numpy(), 0.9 * np.array([0.2, -0.1, 0.0]) + 0.1 * mean,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 * np.array([1.2, 0.8, 1.0]) + 0.1 * variance,
                             rtol=1e-5, atol=1e-6)
  # d/dx of sum(w * y): gamma / sqrt(var + eps) * (w - mean(w) - xhat * mean(w * xhat)), per channel.
  expected_x = GAMMA / np.sqrt(variance + EPS) * (
      weights - weights.mean(axis=(0, 1, 2)) - normalized * (weights * normalized).mean(axis=(0, 1, 2)))
  np.testing.assert_allclose(grad_x.numpy(), expected_x, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(grad_gamma.numpy(), (weights * normalized).sum(axis=(0, 1, 2)), rtol=1e-4)
  np.testing.assert_allclose(grad_beta.numpy(), weights.sum(axis=(0, 1, 2)), rtol=1e-5)


def test_inference_uses_the_moving_statistics_and_matches_keras():
  x = tf.constant(_images(), tf.float32)
  ours, theirs = _layer(), _layer(keras.layers.BatchNormalization)
  expected = GAMMA * (_images() - [0.2, -0.1, 0.0]) / np.sqrt(np.array([1.2, 0.8, 1.0]) + EPS) + BETA
  np.testing.assert_allclose(ours(x, training=False).numpy(), expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ours(x, training=False).numpy(), theirs(x, training=False).numpy(), atol=1e-5)
  # Trained side by side for a few batches, the two keep the same moving statistics.
  for seed in range(3):
    batch = tf.random.stateless_normal([6, 4, 5, 3], seed=[seed, 0])
    ours(batch, training=True)
    theirs(batch, training=True)
  np.testing.assert_allclose(ours.moving_variance.numpy(), theirs.moving_variance.numpy(), rtol=1e-5)
  np.testing.assert_allclose(ours.moving_mean.numpy(), theirs.moving_mean.numpy(), rtol=1e-5, atol=1e-6)


def test_bfloat16_inputs_stay_bfloat16_with_float32_statistics():
  policy = keras.config.dtype_policy()
  keras.config.set_dtype_policy("mixed_bfloat16")
  try:
    layer = _layer()
  finally:
    keras.config.set_dtype_policy(policy)
  x = _images()
  outputs = layer(tf.constant(x, tf.bfloat16), training=True)
  assert outputs.dtype == tf.bfloat16 and layer.moving_mean.dtype == "float32"
  mean, variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
  np.testing.assert_allclose(tf.cast(outputs, tf.float32).numpy(),
                             GAMMA * (x - mean) / np.sqrt(variance + EPS) + BETA, atol=0.08)
  # One fused op each way, no float32 copy of the images.
  traced = tf.function(lambda images: layer(images, training=True)).get_concrete_function(
      tf.TensorSpec([6, 4, 5, 3], tf.bfloat16))
  kinds = [op.type for op in traced.graph.get_operations()]
  assert "FusedBatchNormV3" in kinds and "Cast" not in [op.type for op in traced.graph.get_operations()
                                                        if op.inputs and op.inputs[0].dtype == tf.bfloat16]


@pytest.mark.parametrize("shape", [(6, 3), (6, 2, 4, 5, 3)])
def test_other_ranks_are_keras_own(shape):
  x = tf.constant(_images(shape), tf.float32)
  ours, theirs = _layer(shape=shape), _layer(keras.layers.BatchNormalization, shape=shape)
  np.testing.assert_allclose(ours(x, training=True).numpy(), theirs(x, training=True).numpy(), atol=1e-6)
  np.testing.assert_allclose(ours.moving_variance.numpy(), theirs.moving_variance.numpy(), rtol=1e-6)


def test_training_networks_use_the_fused_layer_and_exports_keras_own():
  """An exported generator.keras must load in plain Keras (without this package's classes registered)."""
  from mmd_gan_tf import config as config_lib  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import models  # pylint: disable=import-outside-toplevel
  cfg = config_lib.ModelConfig(arch="dcgan", width=0.0625)
  kinds = lambda net: {type(layer) for layer in net.layers if isinstance(layer, keras.layers.BatchNormalization)}
  assert kinds(models.build_generator(cfg)) == {common.BatchNorm}
  with common.keras_batch_norm():
    plain = models.build_generator(cfg)
  assert kinds(plain) == {keras.layers.BatchNormalization}
  assert kinds(models.build_generator(cfg)) == {common.BatchNorm}  # only inside the context
