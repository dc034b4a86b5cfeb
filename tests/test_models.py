"""Every (arch, image_size): shapes, ranges, critic_dim, SN layer counts, replica training, export."""

import dataclasses
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf

from mmd_gan_tf import models
from mmd_gan_tf import noise
from helpers import paper_model_config as ModelConfig  # the papers' scale unless a test says otherwise
from mmd_gan_tf.layers import spectral_norm as sn

CASES = [(arch, size) for arch, spec in models.ARCHS.items() for size in spec.sizes]
# Number of SN layers of each critic: Wang's 8 (32, 48 px) and 10 (64 px), etc.
SN_LAYERS = {("dcgan", 32): 8, ("dcgan", 48): 8, ("dcgan", 64): 10, ("dcgan5", 32): 5,
             ("dcgan5", 64): 5, ("resnet", 32): 11, ("resnet", 64): 16, ("resnet_big", 128): 6,
             ("resnet_big", 160): 6, ("sngan", 32): 8, ("li", 32): 4, ("li", 64): 5}


def tiny(arch, size, **kwargs):
  width = 1 / 32 if size >= 128 else 1 / 16
  return ModelConfig(arch=arch, image_size=size, width=width, z_dim=8, critic_dim=5, **kwargs)


@pytest.fixture
def strategy(two_replica_strategy):
  """The fixture's 2 replicas, reducing without collective ops (see test_spectral_norm.py)."""
  return tf.distribute.MirroredStrategy(two_replica_strategy.extended.worker_devices,
                                        cross_device_ops=tf.distribute.ReductionToOneDevice())


@pytest.mark.parametrize("arch,size", CASES)
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_shapes_and_ranges(arch, size, activation):
  cfg = tiny(arch, size, output_activation=activation, spectral_norm="conv")
  generator, critic = models.build_generator(cfg), models.build_critic(cfg)
  assert generator.built and critic.built and critic.trainable_variables
  z = noise.sample_z(cfg, 3, seed=0) * 30.0  # large z drives the output activation to its limits
  low, high = (-1.0, 1.0) if activation == "tanh" else (0.0, 1.0)
  for training in (True, False):
    images = generator(z, training=training)
    assert images.shape == (3, size, size, 3) and images.dtype == tf.float32
    assert float(tf.reduce_min(images)) >= low and float(tf.reduce_max(images)) <= high
    assert float(tf.math.reduce_std(images[0] - images[1])) > 0
  features, activations = critic.features_and_activations(images, training=False)
  assert features.shape == (3, 5) and features.dtype == tf.float32
  np.testing.assert_allclose(critic(images).numpy(), features.numpy(), rtol=1e-5, atol=1e-6)
  assert len(activations) >= 3 and activations[-1] is not None
  assert all(a.shape[0] == 3 and a.dtype == tf.float32 for a in activations)
  layers = sn.spectral_layers(critic)
  assert len(layers) == SN_LAYERS[(arch, size)]
  expected_c = 64 ** (1 / SN_LAYERS[(arch, size)])
  assert all(layer.multiplier == pytest.approx(expected_c) for layer in layers)
  decoder = models.build_decoder(cfg)
  assert (decoder is not None) == (arch == "li")
  if decoder is not None:
    assert decoder(features, training=False).shape == (3, size, size, 3)


def test_width_scales_channels_and_modes_change_parameters():
  full = models.build_critic(ModelConfig(width=0.5, spectral_norm="matrix"))
  quarter = models.build_critic(ModelConfig(width=0.25, spectral_norm="matrix"))
  assert sum(v.shape.num_elements() for v in full.trainable_variables) > 3 * sum(
      v.shape.num_elements() for v in quarter.trainable_variables)
  gain = models.build_critic(ModelConfig(width=0.25, spectral_norm="conv_gain"))
  assert len(gain.trainable_variables) == len(quarter.trainable_variables) + 8
  none = models.build_critic(ModelConfig(width=0.25, spectral_norm="none"))
  assert not sn.spectral_layers(none) and not none.non_trainable_variables
  fixed = models.build_critic(ModelConfig(width=0.25, spectral_norm="conv", sn_multiplier=1 / 0.55))
  assert all(layer.multiplier == pytest.approx(1 / 0.55) for layer in sn.spectral_layers(fixed))


def test_batch_norm_settings_come_from_config():
  cfg = ModelConfig(width=0.125, bn_momentum=0.9, bn_epsilon=2e-5)
  bns = [layer for layer in models.build_generator(cfg).layers
         if isinstance(layer, tf.keras.layers.BatchNormalization)]
  assert len(bns) == 3
  assert all(layer.momentum == 0.9 and layer.epsilon == 2e-5 for layer in bns)


@pytest.mark.parametrize("bad,match", [
    (dict(arch="vgg"), "'vgg'"), (dict(image_size=40), "image_size=40"),
    (dict(arch="resnet_big", image_size=64), "image_size=64"), (dict(spectral_norm="full"), "'full'"),
    (dict(z_distribution="cauchy"), "'cauchy'"), (dict(output_activation="relu"), "'relu'"),
    (dict(critic_dim=0), "critic_dim"), (dict(width=0.0), "width"), (dict(sn_multiplier=-2.0), "-2.0")])
def test_validate_model_config_names_the_bad_value(bad, match):
  cfg = dataclasses.replace(ModelConfig(), **bad)
  with pytest.raises(ValueError, match=match):
    models.validate_model_config(cfg)
  with pytest.raises(ValueError, match=match):
    models.build_generator(cfg)


@pytest.mark.parametrize("distribution", ["normal", "uniform"])
def test_sample_z(distribution):
  cfg = ModelConfig(z_dim=16, z_distribution=distribution)
  first = noise.sample_z(cfg, 4000, seed=3).numpy()
  assert first.shape == (4000, 16) and first.dtype == np.float32
  np.testing.assert_array_equal(first, noise.sample_z(cfg, 4000, seed=tf.constant(3)).numpy())
  assert not np.array_equal(first, noise.sample_z(cfg, 4000, seed=4).numpy())
  assert not np.array_equal(noise.sample_z(cfg, 8).numpy(), noise.sample_z(cfg, 8).numpy())
  if distribution == "uniform":
    assert first.min() >= -1 and first.max() <= 1
    np.testing.assert_allclose(first.var(), 1 / 3, rtol=0.05)
  else:
    np.testing.assert_allclose(first.std(), 1.0, rtol=0.05)
    assert first.min() < -3 and first.max() > 3


# Every arch at its smallest size, each with one of the SN modes (cycled so that every mode is exercised).
# Replication does not depend on the image size (the larger sizes add blocks of the same kinds); every
# (arch, size) is built and run forward in test_shapes_and_ranges above.
SN_MODES = ("conv", "conv_gain", "matrix", "none")
REPLICA_CASES = [(arch, spec.sizes[0], SN_MODES[i % len(SN_MODES)])
                 for i, (arch, spec) in enumerate(models.ARCHS.items())]


def test_replica_cases_cover_every_arch_and_sn_mode():
  assert {arch for arch, _, _ in REPLICA_CASES} == set(models.ARCHS)
  assert {mode for _, _, mode in REPLICA_CASES} == set(SN_MODES)


@pytest.mark.end_to_end
@pytest.mark.parametrize("arch,size,mode", REPLICA_CASES)
def test_trains_on_two_replicas(strategy, arch, size, mode):
  """Simultaneous G/critic steps under strategy.run; the power vectors stay replica-identical."""
  cfg = tiny(arch, size, spectral_norm=mode)
  with strategy.scope():
    generator, critic = models.build_generator(cfg), models.build_critic(cfg)
    # epsilon 1e-12: every variable with a nonzero gradient moves by ~lr, however small the reference
    # codes' initial weights make its gradient (Binkowski's 0.02-std critic gives ~1e-12 on BN scales).
    optimizer = tf.keras.optimizers.Adam(1e-3, epsilon=1e-12)
    variables = generator.trainable_variables + critic.trainable_variables
    # Its slots exist before the step is traced (as in the trainer): else tf.function traces it twice, once
    # creating them and once more without.
    optimizer.build(variables)
  before = [v.numpy().copy() for v in variables]

  @tf.function
  def step():
    def replica_step():
      z = noise.sample_z(cfg, 2)
      with tf.GradientTape() as tape:
        fake = generator(z, training=True)
        features = critic(tf.concat([fake, tf.ones_like(fake) * 0.3], 0), training=True)
        loss = tf.reduce_mean(tf.square(features[:2] - features[2:]))
      optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
      return loss
    return strategy.reduce("mean", strategy.run(replica_step), axis=None)

  losses = [float(step()) for _ in range(2)]
  assert np.all(np.isfinite(losses))
  assert sum(np.abs(v.numpy() - b).max() > 0 for v, b in zip(variables, before)) == len(variables)
  for layer in sn.spectral_layers(critic):
    copies = [np.asarray(x) for x in strategy.experimental_local_results(layer.power_vector.value)]
    np.testing.assert_array_equal(copies[0], copies[1])


def test_generator_exports_with_tf_saved_model(strategy):
  cfg = ModelConfig(width=0.125, spectral_norm="conv")
  with strategy.scope():
    generator = models.build_generator(cfg)

  @tf.function(input_signature=[tf.TensorSpec([None, cfg.z_dim], tf.float32)])
  def generate(z):
    return generator(z, training=False)

  module = tf.Module()
  module.generator, module.generate = generator, generate
  with tempfile.TemporaryDirectory() as directory:
    tf.saved_model.save(module, directory, signatures={"generate": generate})
    loaded = tf.saved_model.load(directory)
    z = noise.sample_z(cfg, 3, seed=1)
    np.testing.assert_allclose(loaded.generate(z).numpy(), generator(z, training=False).numpy(),
                               atol=1e-6)


def test_model_table_counts_conv_flops():
  from tools import model_table
  cfg = ModelConfig(width=1 / 16, critic_dim=5, spectral_norm="none")
  critic, generator = models.build_critic(cfg), models.build_generator(cfg)
  first_conv = [layer for layer in critic.network.layers if isinstance(layer, sn.SNConv2D)][0]
  assert model_table.layer_flops(first_conv) == 2 * 32 * 32 * (3 * 3 * 3) * 4  # 3x3 conv, 64/16 filters
  tconv = [layer for layer in generator.layers if isinstance(layer, tf.keras.layers.Conv2DTranspose)][0]
  assert model_table.layer_flops(tconv) == 2 * 4 * 4 * 32 * (4 * 4 * 16)  # 4x4 input, 512/16 -> 256/16
  params, flops = model_table.model_stats(critic)
  assert params == sum(int(np.prod(v.shape)) for v in critic.trainable_variables) and flops > 0


def test_leaky_relu_matches_tensorflows_to_the_second_derivative():
  from mmd_gan_tf.models import common  # pylint: disable=import-outside-toplevel
  x = tf.constant(np.random.default_rng(0).normal(size=(64,)), tf.float64)
  for alpha in (0.1, 0.2):
    with tf.GradientTape() as outer:
      outer.watch(x)
      with tf.GradientTape() as inner:
        inner.watch(x)
        y = common.leaky_relu(x, alpha)
        loss = tf.reduce_sum(y ** 3)
      grad = inner.gradient(loss, x)
      penalty = tf.reduce_sum(grad ** 2)
    second = outer.gradient(penalty, x)
    slope = np.where(x.numpy() > 0, 1.0, float(np.float32(alpha)))  # float64 oracle (TF's alpha attr is float32)
    np.testing.assert_allclose(y.numpy(), x.numpy() * slope, rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), 3 * y.numpy() ** 2 * slope, rtol=1e-12)
    np.testing.assert_allclose(second.numpy(), 2 * grad.numpy() * 6 * y.numpy() * slope ** 2, rtol=1e-12)


def test_a_conv_leaky_relu_step_graph_gets_through_grapplers_remapper():
  """keras.layers.LeakyReLU after a biased conv makes Grappler's remapper fail on the gradient graph (an E-line
  on every run, and none of its fusions there); common.LeakyReLU's gradient reads the output instead, also
  in the second-order graph of a gradient penalty."""
  script = (
      "import numpy as np, tensorflow as tf, keras\n"
      "from mmd_gan_tf.models import common\n"
      "inputs = keras.Input([8, 8, 3])\n"
      "x = common.LeakyReLU(0.1)(keras.layers.Conv2D(4, 3, padding='same')(inputs))\n"
      "x = common.LeakyReLU(0.1)(keras.layers.Conv2D(4, 3, padding='same')(x))\n"
      "model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(x)))\n"
      "@tf.function\n"
      "def step(images):\n"
      "  with tf.GradientTape() as tape:\n"
      "    loss = tf.reduce_sum(model(images))\n"
      "  return tape.gradient(loss, model.trainable_variables)\n"
      "@tf.function\n"
      "def penalty_step(images):\n"  # a gradient penalty: the critic's input gradient, differentiated again
      "  with tf.GradientTape() as outer:\n"
      "    with tf.GradientTape() as inner:\n"
      "      inner.watch(images)\n"
      "      out = tf.reduce_sum(model(images))\n"
      "    penalty = tf.reduce_sum(inner.gradient(out, images) ** 2)\n"
      "  return outer.gradient(penalty, model.trainable_variables)\n"
      "images = tf.constant(np.random.default_rng(0).normal(size=[2, 8, 8, 3]).astype(np.float32))\n"
      "step(images)\n"
      "penalty_step(images)\n"
      "print('stepped')\n")
  from helpers import ROOT, tool_env  # pylint: disable=import-outside-toplevel
  result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=tool_env(), capture_output=True,
                          text=True, timeout=300, check=False)
  assert result.stdout.strip() == "stepped", result.stderr[-2000:]
  assert "remapper failed" not in result.stderr
