"""Binkowski et al. 2018's ResNet generator with a DCGAN critic, at 128 and 160 px.

G: dense z -> s x s x 1024 (s = 4 at 128 px, 5 at 160 px), four pre-activation up-blocks
   1024 -> 512 -> 256 -> 128 -> 64 (BN, 2x nearest upsampling, conv 3x3, 1x1 shortcut), then BN, ReLU,
   tconv 5x5/2 -> C and the output activation.
Critic: five 5x5/2 convs 64, 128, 256, 512, 1024 with LeakyReLU 0.2, dense -> critic_dim.
"""

import keras

from mmd_gan_tf.config import ModelConfig
from mmd_gan_tf.models import common, dcgan5, resnet

SIZES = (128, 160)
_UP_CHANNELS = (512, 256, 128, 64)
_CRITIC_CHANNELS = (64, 128, 256, 512, 1024)


def generator(cfg: ModelConfig) -> keras.Model:
  """z [b, z_dim] -> images [b, S, S, C]."""
  start = cfg.image_size // 32
  start_channels = common.channels(cfg, 1024)
  z = keras.Input((cfg.z_dim,), name="z")
  x = keras.layers.Dense(start * start * start_channels)(z)
  x = keras.layers.Reshape((start, start, start_channels))(x)
  for paper_channels in _UP_CHANNELS:
    x = resnet.up_block(cfg, x, common.channels(cfg, paper_channels))
  x = keras.layers.ReLU()(common.batch_norm(cfg)(x))
  x = keras.layers.Conv2DTranspose(cfg.channels, 5, 2, padding="same")(x)
  return keras.Model(z, common.output_activation(cfg, x), name="generator")


def critic(cfg: ModelConfig) -> keras.Model:
  """images [b, S, S, C] -> features [b, critic_dim]; 6 SN layers."""
  return dcgan5.conv_stack_critic(cfg, _CRITIC_CHANNELS)
