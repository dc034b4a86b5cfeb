"""Wang et al. 2019's SN-DCGAN at 32, 48 and 64 px (SPEC section 6).

G (32 px): dense z -> 4x4x512 (linear), tconv 4x4/2 256, 128, 64 (BN, ReLU), conv 3x3 -> C, tanh.
   48 px: 6x6x512 start with BN+ReLU after the dense. 64 px: 4x4x1024 start, tconvs 512, 256, 128, 64.
Critic: conv3 64, conv4/2 128, conv3 128, conv4/2 256, conv3 256, conv4/2 512, conv3 512
   (64 px: + conv4/2 1024, conv3 1024), dense -> critic_dim; LeakyReLU 0.1; SN on every layer.
"""

import keras

from mmd_gan_tf.config import ModelConfig
from mmd_gan_tf.models import common

SIZES = (32, 48, 64)
_START = {32: (4, 512, (256, 128, 64)), 48: (6, 512, (256, 128, 64)),
          64: (4, 1024, (512, 256, 128, 64))}
_CRITIC = {32: (64, 128, 256, 512), 48: (64, 128, 256, 512), 64: (64, 128, 256, 512, 1024)}


def generator(cfg: ModelConfig) -> keras.Model:
  """z [b, z_dim] -> images [b, S, S, C]."""
  start, start_channels, up_channels = _START[cfg.image_size]
  z = keras.Input((cfg.z_dim,), name="z")
  x = keras.layers.Dense(start * start * common.channels(cfg, start_channels))(z)
  if cfg.image_size == 48:
    x = keras.layers.ReLU()(common.batch_norm(cfg)(x))
  x = keras.layers.Reshape((start, start, common.channels(cfg, start_channels)))(x)
  for paper_channels in up_channels:
    x = keras.layers.Conv2DTranspose(common.channels(cfg, paper_channels), 4, 2, padding="same")(x)
    x = keras.layers.ReLU()(common.batch_norm(cfg)(x))
  x = keras.layers.Conv2D(cfg.channels, 3, padding="same")(x)
  return keras.Model(z, common.output_activation(cfg, x), name="generator")


def critic(cfg: ModelConfig) -> keras.Model:
  """images [b, S, S, C] -> features [b, critic_dim]; 8 SN layers (32, 48 px) or 10 (64 px)."""
  sn = common.SNLayers(cfg)
  images = keras.Input((cfg.image_size, cfg.image_size, cfg.channels), name="images")
  widths = _CRITIC[cfg.image_size]
  activations = []
  x = images
  for index, paper_channels in enumerate(widths):
    if index > 0:  # the 4x4/2 conv that halves the resolution, then a 3x3 conv
      x = keras.layers.LeakyReLU(0.1)(sn.conv(common.channels(cfg, paper_channels), 4, 2)(x))
      activations.append(x)
    x = keras.layers.LeakyReLU(0.1)(sn.conv(common.channels(cfg, paper_channels), 3, 1)(x))
    activations.append(x)
  features = sn.dense(cfg.critic_dim)(common.flatten(x))
  return common.make_critic(cfg, images, features, activations, sn)
