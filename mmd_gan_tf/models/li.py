"""Li et al. 2017's DCGAN encoder / decoder pair for the `mmd` loss, at 32 and 64 px.

Encoder (the critic): conv 4x4/2 64, LeakyReLU 0.2; conv 4x4/2 doubling channels with BN and
   LeakyReLU 0.2 down to 4x4 (128, 256 at 32 px; 128, 256, 512 at 64 px); conv 4x4 VALID ->
   1x1 x critic_dim. Decoder: tconv 4x4 VALID codes -> 4x4 x (256 | 512), BN, ReLU; tconv 4x4/2
   halving channels with BN, ReLU; tconv 4x4/2 -> C; output activation. The generator is a decoder
   from z (Li uses critic_dim = z_dim). No biases, weights N(0, 0.02), batch-norm scales N(1, 0.02)
   (Li's `weights_init`).
"""

import keras

from mmd_gan_tf.config import ModelConfig
from mmd_gan_tf.models import common
from mmd_gan_tf.models import initializers as init

SIZES = (32, 64)


def _init():
  return init.li_conv()


def _batch_norm(cfg: ModelConfig):
  return common.batch_norm(cfg, gamma_initializer=init.li_bn_gamma())


def _pyramid(image_size: int):
  """Encoder channels per resolution halving: 32 px -> (64, 128, 256); 64 px -> (64, ..., 512)."""
  count = {32: 3, 64: 4}[image_size]
  return tuple(64 * 2 ** i for i in range(count))


def _decoder_network(cfg: ModelConfig, code_dim: int, name: str) -> keras.Model:
  codes = keras.Input((code_dim,), name="codes")
  up_channels = _pyramid(cfg.image_size)[::-1]
  x = keras.layers.Reshape((1, 1, code_dim))(codes)
  x = keras.layers.Conv2DTranspose(common.channels(cfg, up_channels[0]), 4, 1, padding="valid",
                                   use_bias=False, kernel_initializer=_init())(x)
  x = keras.layers.ReLU()(_batch_norm(cfg)(x))
  for paper_channels in up_channels[1:]:
    x = keras.layers.Conv2DTranspose(common.channels(cfg, paper_channels), 4, 2, padding="same",
                                     use_bias=False, kernel_initializer=_init())(x)
    x = keras.layers.ReLU()(_batch_norm(cfg)(x))
  x = keras.layers.Conv2DTranspose(cfg.channels, 4, 2, padding="same", use_bias=False,
                                   kernel_initializer=_init())(x)
  return keras.Model(codes, common.output_activation(cfg, x), name=name)


def generator(cfg: ModelConfig) -> keras.Model:
  """z [b, z_dim] -> images [b, S, S, C]."""
  return _decoder_network(cfg, cfg.z_dim, "generator")


def decoder(cfg: ModelConfig) -> keras.Model:
  """Critic codes [b, critic_dim] -> reconstructed images [b, S, S, C]."""
  return _decoder_network(cfg, cfg.critic_dim, "decoder")


def critic(cfg: ModelConfig) -> keras.Model:
  """The encoder: images [b, S, S, C] -> codes [b, critic_dim]."""
  sn = common.SNLayers(cfg, kernel_initializer=_init, use_bias=False)
  images = keras.Input((cfg.image_size, cfg.image_size, cfg.channels), name="images")
  activations = []
  x = images
  for index, paper_channels in enumerate(_pyramid(cfg.image_size)):
    x = sn.conv(common.channels(cfg, paper_channels), 4, 2)(x)
    if index > 0:
      x = _batch_norm(cfg)(x)
    x = common.LeakyReLU(0.2)(x)
    activations.append(x)
  x = sn.conv(cfg.critic_dim, 4, 1, padding="valid")(x)
  features = common.flatten(x)
  return common.make_critic(cfg, images, features, activations, sn)
