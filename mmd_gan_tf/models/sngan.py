"""Arbel et al. 2018's `sngan` DCGAN at 32 px (the SMMD CIFAR-10 network; MichaelArbel/Scaled-MMD-GAN).

G: dense z -> 4x4x512, BN, ReLU; tconv 5x5/2 256, 128, 64 (BN, ReLU); tconv 3x3/1 -> C; output activation.
Critic: conv3 64, conv4/2 128, conv3 128, conv4/2 256, conv3 256, conv4/2 512, conv3 512, each followed
   by LeakyReLU 0.2 (no batch norm), dense -> critic_dim; SN (`cfg.spectral_norm`) on every layer.
Initialisers as Arbel's code: convs truncated normal 0.02, transposed convs normal 0.02, the generator's
dense normal 0.01, the critic's dense normal 0.02, biases zero.
"""

import keras

from mmd_gan_tf.config import ModelConfig
from mmd_gan_tf.models import common
from mmd_gan_tf.models import dcgan
from mmd_gan_tf.models import initializers as init

SIZES = (32,)
_UP_CHANNELS = (256, 128, 64)
_CRITIC_CHANNELS = (64, 128, 256, 512)


def generator(cfg: ModelConfig) -> keras.Model:
  """z [b, z_dim] -> images [b, 32, 32, C]."""
  start_channels = common.channels(cfg, 512)
  z = keras.Input((cfg.z_dim,), name="z")
  x = keras.layers.Dense(4 * 4 * start_channels, kernel_initializer=init.binkowski_linear())(z)
  x = keras.layers.Reshape((4, 4, start_channels))(x)
  x = keras.layers.ReLU()(common.batch_norm(cfg)(x))
  for paper_channels in _UP_CHANNELS:
    x = keras.layers.Conv2DTranspose(common.channels(cfg, paper_channels), 5, 2, padding="same",
                                     kernel_initializer=init.binkowski_deconv())(x)
    x = keras.layers.ReLU()(common.batch_norm(cfg)(x))
  x = keras.layers.Conv2DTranspose(cfg.channels, 3, 1, padding="same", kernel_initializer=init.binkowski_deconv())(x)
  return keras.Model(z, common.output_activation(cfg, x), name="generator")


def critic(cfg: ModelConfig) -> keras.Model:
  """images [b, 32, 32, C] -> features [b, critic_dim]; 8 SN layers."""
  sn = common.SNLayers(cfg, kernel_initializer=init.binkowski_conv)
  return dcgan.pyramid_critic(cfg, _CRITIC_CHANNELS, 0.2, sn, keras.initializers.RandomNormal(stddev=0.02))
