"""SavedModel export of the generator.

The SavedModel has two endpoints, both returning {"images": float32 in the training range,
"images_uint8": uint8 in [0, 255]} of shape [n, S, S, C]:
  generate(z: float32 [n, z_dim])
  sample(num_samples: int32 [], seed: int64 [])   (z drawn as in training, seeded)
It loads with `tf.saved_model.load` in a process that never imported this project, and with
`saved_model_cli run`. `mmd_gan_tf.json` beside it records the config it was trained with.
"""

import os
import shutil

import keras
import tensorflow as tf

from mmd_gan_tf import config as config_lib
from mmd_gan_tf import files
from mmd_gan_tf import images as images_lib
from mmd_gan_tf import models
from mmd_gan_tf import noise

METADATA_FILE = "mmd_gan_tf.json"


def _plain_copy(generator: keras.Model, model_cfg: config_lib.ModelConfig) -> keras.Model:
  """A copy of `generator` with plain (not distributed) variables, for a portable SavedModel."""
  if tf.distribute.has_strategy():
    raise RuntimeError("export_generator must be called outside strategy.scope()")
  copy = models.build_generator(model_cfg)
  copy.set_weights(generator.get_weights())
  return copy


def export_generator(generator: keras.Model, cfg: config_lib.Config, export_dir: str) -> str:
  """Writes the SavedModel to `export_dir` atomically (a crash leaves the old export intact)."""
  model = _plain_copy(generator, cfg.model)
  image_range = cfg.data.image_range
  empty_shape = [0, cfg.model.image_size, cfg.model.image_size, cfg.model.channels]

  def outputs(z):
    # An empty batch gets its own branch: TF's conv kernels return [0, S, S, C_in] for n = 0 (and grappler
    # drops a reshape that is a no-op by static shape).
    images = tf.cond(tf.shape(z)[0] > 0, lambda: tf.cast(model(z, training=False), tf.float32),
                     lambda: tf.zeros(empty_shape, tf.float32))
    return {"images": images, "images_uint8": images_lib.to_uint8(images, image_range)}

  def sample(num_samples, seed):
    check = tf.debugging.assert_non_negative(num_samples, message="sample: num_samples must be >= 0")
    with tf.control_dependencies([check]):  # before the random op that would fail with a vaguer message
      num_samples = tf.identity(num_samples)
    return outputs(noise.sample_z(cfg.model, num_samples, seed))

  archive = keras.export.ExportArchive()
  archive.track(model)
  archive.add_endpoint("generate", outputs,
                       input_signature=[tf.TensorSpec([None, cfg.model.z_dim], tf.float32, name="z")])
  archive.add_endpoint("sample", sample,
                       input_signature=[tf.TensorSpec([], tf.int32, name="num_samples"),
                                        tf.TensorSpec([], tf.int64, name="seed")])
  export_dir = os.path.abspath(export_dir)
  tmp_dir, old_dir = export_dir + ".tmp", export_dir + ".old"
  shutil.rmtree(tmp_dir, ignore_errors=True)
  archive.write_out(tmp_dir, verbose=False)
  files.atomic_write_text(os.path.join(tmp_dir, METADATA_FILE), cfg.to_json() + "\n")
  if os.path.exists(export_dir):
    os.replace(export_dir, old_dir)
  os.replace(tmp_dir, export_dir)
  shutil.rmtree(old_dir, ignore_errors=True)
  return export_dir
