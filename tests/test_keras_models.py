"""Keras-native models: every architecture's generator and critic (and Li's decoder) save and load as `.keras`
files with identical outputs and power vectors; the export writes `generator.keras` beside the SavedModel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from flags import build as config_builder
from mmd_gan_tf import export
from mmd_gan_tf import models
from mmd_gan_tf.config import ModelConfig
from mmd_gan_tf.layers import spectral_norm as sn

SN_MODE = {"dcgan": "conv", "dcgan5": "none", "resnet": "conv", "resnet_big": "none", "sngan": "matrix_gain",
           "li": "none"}


def _roundtrip(model: keras.Model, path) -> keras.Model:
  model.save(str(path))
  return keras.saving.load_model(str(path))


@pytest.mark.parametrize("arch", sorted(models.ARCHS))
def test_every_architecture_round_trips_through_a_keras_file(arch, tmp_path):
  assert set(SN_MODE) == set(models.ARCHS)  # a new architecture gets a row here
  size = models.ARCHS[arch].sizes[0]
  cfg = ModelConfig(arch=arch, width=0.0625, image_size=size, spectral_norm=SN_MODE[arch])
  generator, critic = models.build_generator(cfg), models.build_critic(cfg)
  z = tf.random.stateless_normal([3, cfg.z_dim], [0, 1])
  images = tf.random.stateless_uniform([3, size, size, cfg.channels], [0, 2], -1.0, 1.0)
  generator(z, training=True)  # moves the batch-norm statistics away from their initial values
  critic(images, training=True)  # one power iteration: the vectors are no longer their start
  loaded_generator = _roundtrip(generator, tmp_path / "g.keras")
  np.testing.assert_array_equal(generator(z, training=False), loaded_generator(z, training=False))
  loaded_critic = _roundtrip(critic, tmp_path / "c.keras")
  assert isinstance(loaded_critic, models.common.Critic) and loaded_critic.sn_multiplier == critic.sn_multiplier
  np.testing.assert_array_equal(critic(images, training=False), loaded_critic(images, training=False))
  layers, loaded_layers = sn.spectral_layers(critic), sn.spectral_layers(loaded_critic)
  assert len(layers) == len(loaded_layers) and (layers or SN_MODE[arch] == "none")
  for layer, loaded in zip(layers, loaded_layers):
    np.testing.assert_array_equal(layer.power_vector.numpy(), loaded.power_vector.numpy())
    assert (layer.mode, layer.multiplier) == (loaded.mode, loaded.multiplier)
  # Training-mode calls (another power iteration) agree too.
  np.testing.assert_allclose(critic(images, training=True), loaded_critic(images, training=True), rtol=1e-6,
                             atol=1e-6)
  decoder = models.build_decoder(cfg)
  if decoder is not None:
    codes = tf.random.stateless_normal([3, cfg.critic_dim], [0, 3])
    np.testing.assert_array_equal(decoder(codes), _roundtrip(decoder, tmp_path / "d.keras")(codes))


def test_the_export_writes_the_generator_as_a_keras_file_too(tmp_path):
  cfg = config_builder.build_config(dict(dataset="shapes", loss="rep_b", width=0.0625,
                                         workdir=str(tmp_path / "run")))
  generator = models.build_generator(cfg.model)
  export_dir = export.export_generator(generator, cfg, str(tmp_path / "run" / "export"))
  loaded = keras.saving.load_model(f"{export_dir}/{export.KERAS_FILE}")
  z = tf.random.stateless_normal([4, cfg.model.z_dim], [0, 4])
  saved_model = tf.saved_model.load(export_dir)
  np.testing.assert_allclose(loaded(z, training=False), saved_model.generate(z)["images"], rtol=1e-6, atol=1e-6)
  assert export.is_export(export_dir)  # the next export may replace it
