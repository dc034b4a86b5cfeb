"""A 5x5 DCGAN: Binkowski et al. 2018's `--architecture=dcgan` network (the `mmd_gp` preset).

G: dense z -> s x s x 512 (s = 2 at 32 px, 4 at 64 px), BN, ReLU; tconv 5x5/2 256, 128, 64 (BN, ReLU);
   tconv 5x5/2 -> C; output activation.
Critic: conv 5x5/2 64, 128, 256, 512 with LeakyReLU 0.2 (no BN: it is used with gradient penalties),
   dense -> critic_dim. SN layers follow `cfg.spectral_norm`.
Initialisers as Binkowski's code: convs truncated normal 0.02, transposed convs normal 0.02, dense
layers normal 0.01, biases zero.
"""

import keras

from mmd_gan_tf.config import ModelConfig
from mmd_gan_tf.models import common
from mmd_gan_tf.models import initializers as init

SIZES = (32, 64)
_UP_CHANNELS = (256, 128, 64)
_CRITIC_CHANNELS = (64, 128, 256, 512)


def generator(cfg: ModelConfig) -> keras.Model:
  """z [b, z_dim] -> images [b, S, S, C]."""
  start = cfg.image_size // 16
  start_channels = common.channels(cfg, 512)
  z = keras.Input((cfg.z_dim,), name="z")
  x = keras.layers.Dense(start * start * start_channels, kernel_initializer=init.binkowski_linear())(z)
  x = keras.layers.Reshape((start, start, start_channels))(x)
  x = keras.layers.ReLU()(common.batch_norm(cfg)(x))
  for paper_channels in _UP_CHANNELS:
    x = keras.layers.Conv2DTranspose(common.channels(cfg, paper_channels), 5, 2, padding="same",
                                     kernel_initializer=init.binkowski_deconv())(x)
    x = keras.layers.ReLU()(common.batch_norm(cfg)(x))
  x = keras.layers.Conv2DTranspose(cfg.channels, 5, 2, padding="same", kernel_initializer=init.binkowski_deconv())(x)
  return keras.Model(z, common.output_activation(cfg, x), name="generator")


def critic(cfg: ModelConfig) -> keras.Model:
  """images [b, S, S, C] -> features [b, critic_dim]; 5 SN layers."""
  return conv_stack_critic(cfg, _CRITIC_CHANNELS)


def conv_stack_critic(cfg: ModelConfig, paper_channels) -> keras.Model:
  """A stack of 5x5/2 convs with LeakyReLU 0.2, then dense -> critic_dim (Binkowski's D)."""
  sn = common.SNLayers(cfg, kernel_initializer=init.binkowski_conv)
  images = keras.Input((cfg.image_size, cfg.image_size, cfg.channels), name="images")
  activations = []
  x = images
  for width in paper_channels:
    x = common.LeakyReLU(0.2)(sn.conv(common.channels(cfg, width), 5, 2)(x))
    activations.append(x)
  features = sn.dense(cfg.critic_dim, kernel_initializer=init.binkowski_linear())(common.flatten(x))
  return common.make_critic(cfg, images, features, activations, sn)
