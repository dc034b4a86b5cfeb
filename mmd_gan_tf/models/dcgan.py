"""Wang et al. 2019's SN-DCGAN at 32, 48 and 64 px.

G (32 px): dense z -> 4x4x512 (linear), tconv 4x4/2 256, 128, 64 (BN, ReLU), conv 3x3 -> C, tanh.
   48 px: 6x6x512 start with BN+ReLU after the dense. 64 px: 4x4x1024 start, tconvs 512, 256, 128, 64.
Critic: conv3 64, conv4/2 128, conv3 128, conv4/2 256, conv3 256, conv4/2 512, conv3 512
   (64 px: + conv4/2 1024, conv3 1024), dense -> critic_dim; LeakyReLU 0.1; SN on every layer.
Initialisers as Wang's code (`models.initializers`): He fan-in (TF 1.x truncated normal) with scale
2/1.01 before LeakyReLU(0.1) and 2 before ReLU, Glorot uniform for the linear and tanh layers, biases
N(0, 1e-5) truncated; layers followed by batch norm have no bias.
"""

import keras

from mmd_gan_tf.config import ModelConfig
from mmd_gan_tf.models import common
from mmd_gan_tf.models import initializers as init

SIZES = (32, 48, 64)
_START = {32: (4, 512, (256, 128, 64)), 48: (6, 512, (256, 128, 64)),
          64: (4, 1024, (512, 256, 128, 64))}
_CRITIC = {32: (64, 128, 256, 512), 48: (64, 128, 256, 512), 64: (64, 128, 256, 512, 1024)}


def generator(cfg: ModelConfig) -> keras.Model:
  """z [b, z_dim] -> images [b, S, S, C]."""
  start, start_channels, up_channels = _START[cfg.image_size]
  z = keras.Input((cfg.z_dim,), name="z")
  units = start * start * common.channels(cfg, start_channels)
  if cfg.image_size == 48:  # Wang's STL generator: dense -> BN -> ReLU
    x = keras.layers.Dense(units, use_bias=False, kernel_initializer=init.wang_relu())(z)
    x = keras.layers.ReLU()(common.batch_norm(cfg)(x))
  else:  # linear start
    x = keras.layers.Dense(units, kernel_initializer=init.wang_linear(), bias_initializer=init.wang_bias())(z)
  x = keras.layers.Reshape((start, start, common.channels(cfg, start_channels)))(x)
  for paper_channels in up_channels:
    x = keras.layers.Conv2DTranspose(common.channels(cfg, paper_channels), 4, 2, padding="same",
                                     use_bias=False, kernel_initializer=init.wang_relu())(x)
    x = keras.layers.ReLU()(common.batch_norm(cfg)(x))
  x = keras.layers.Conv2D(cfg.channels, 3, padding="same", kernel_initializer=init.wang_linear(),
                          bias_initializer=init.wang_bias())(x)
  return keras.Model(z, common.output_activation(cfg, x), name="generator")


def critic(cfg: ModelConfig) -> keras.Model:
  """images [b, S, S, C] -> features [b, critic_dim]; 8 SN layers (32, 48 px) or 10 (64 px)."""
  sn = common.SNLayers(cfg, kernel_initializer=init.wang_leaky_relu, bias_initializer=init.wang_bias)
  return pyramid_critic(cfg, _CRITIC[cfg.image_size], 0.1, sn, init.wang_linear())


def pyramid_critic(cfg: ModelConfig, widths, slope: float, sn: common.SNLayers, dense_initializer) -> keras.Model:
  """conv3 widths[0], then per further width a conv4/2 and a conv3, each with LeakyReLU(slope), then a dense
  layer -> critic_dim; the SN-DCGAN critic of Wang et al. (slope 0.1) and of Arbel et al.'s `sngan` (0.2)."""
  images = keras.Input((cfg.image_size, cfg.image_size, cfg.channels), name="images")
  activations = []
  x = images
  for index, paper_channels in enumerate(widths):
    if index > 0:  # the 4x4/2 conv that halves the resolution, then a 3x3 conv
      x = common.LeakyReLU(slope)(sn.conv(common.channels(cfg, paper_channels), 4, 2)(x))
      activations.append(x)
    x = common.LeakyReLU(slope)(sn.conv(common.channels(cfg, paper_channels), 3, 1)(x))
    activations.append(x)
  features = sn.dense(cfg.critic_dim, kernel_initializer=dense_initializer)(common.flatten(x))
  return common.make_critic(cfg, images, features, activations, sn)
