"""Miyato et al. 2018's SN-ResNet generator and critic at 32 and 64 px.

32 px: G = dense z -> 4x4x256, three up-blocks of 256, BN, ReLU, conv 3x3 -> C, output activation;
       critic = optimised down-block 128, down-block 128, two blocks 128, ReLU, global sum pool,
       dense -> critic_dim.
64 px: G = dense z -> 4x4x1024, up-blocks 512, 256, 128, 64; critic = optimised down-block 64,
       down-blocks 128, 256, 512, 1024, ReLU, global sum pool, dense -> critic_dim.
Up-block (pre-activation): BN, ReLU, 2x nearest upsampling, conv 3x3, BN, ReLU, conv 3x3; shortcut
2x upsampling + conv 1x1. Down-block: ReLU, conv 3x3, ReLU, conv 3x3, 2x2 average pool; shortcut
conv 1x1 + average pool. SN (per `cfg.spectral_norm`) on every critic layer.

Initialisers: Keras' defaults (Glorot uniform kernels, zero biases, BN scale 1), not a reference code's.
Wang et al. 2019 report SN-ResNet results, but richardwth/MMD-GAN holds no ResNet network definition (its
`my_test_*.py` define only the SN-DCGANs); its `GeneralTools/layer_func.py` has the residual-block
machinery, which gives every kernel of a block, shortcut included, the He/Glorot rule of the block's
activation, but which activation his ResNet used is not published. For comparison, Miyato et al.'s own
code (pfnet-research/sngan_projection, `gen_models/resblocks.py`, `dis_models/resblocks.py`) uses
Glorot uniform with gain sqrt(2) on the residual 3x3 convs and gain 1 on the shortcuts, the first dense
layer and the last conv, i.e. our defaults except the residual convs' sqrt(2).
"""

import keras

from mmd_gan_tf.config import ModelConfig
from mmd_gan_tf.models import common

SIZES = (32, 64)
_GENERATOR = {32: (256, (256, 256, 256)), 64: (1024, (512, 256, 128, 64))}
# (channels, downsample) per critic block after the optimised first block.
_CRITIC = {32: (128, ((128, True), (128, False), (128, False))),
           64: (64, ((128, True), (256, True), (512, True), (1024, True)))}


def up_block(cfg: ModelConfig, x, filters: int, kernel_size: int = 3, conv_initializer="glorot_uniform",
             shortcut_initializer="glorot_uniform"):
  """Pre-activation residual up-block: [b, H, W, c] -> [b, 2H, 2W, filters].

  `conv_initializer` (both residual convs) and `shortcut_initializer` (the 1x1 conv): a Keras initializer
  name or a zero-argument factory (`models.initializers`), called once per layer.
  """
  h = keras.layers.ReLU()(common.batch_norm(cfg)(x))
  h = keras.layers.UpSampling2D(2, interpolation="nearest")(h)
  h = keras.layers.Conv2D(filters, kernel_size, padding="same", kernel_initializer=common.fresh(conv_initializer))(h)
  h = keras.layers.ReLU()(common.batch_norm(cfg)(h))
  h = keras.layers.Conv2D(filters, kernel_size, padding="same", kernel_initializer=common.fresh(conv_initializer))(h)
  shortcut = keras.layers.UpSampling2D(2, interpolation="nearest")(x)
  shortcut = keras.layers.Conv2D(filters, 1, kernel_initializer=common.fresh(shortcut_initializer))(shortcut)
  return keras.layers.Add()([h, shortcut])


def down_block(sn: common.SNLayers, x, filters: int, downsample: bool, first: bool = False):
  """Residual critic block: [b, H, W, c] -> [b, H', W', filters] (H' = H/2 when downsampling).

  The first (optimised) block applies no ReLU to the images and pools its shortcut before the 1x1 conv.
  """
  h = x if first else keras.layers.ReLU()(x)
  h = sn.conv(filters, 3)(h)
  h = sn.conv(filters, 3)(keras.layers.ReLU()(h))
  shortcut = x
  if first:
    shortcut = sn.conv(filters, 1)(keras.layers.AveragePooling2D(2)(shortcut))
  elif downsample or x.shape[-1] != filters:
    shortcut = sn.conv(filters, 1)(shortcut)
  if downsample:
    h = keras.layers.AveragePooling2D(2)(h)
    if not first:
      shortcut = keras.layers.AveragePooling2D(2)(shortcut)
  return keras.layers.Add()([h, shortcut])


def generator(cfg: ModelConfig) -> keras.Model:
  """z [b, z_dim] -> images [b, S, S, C]."""
  start_channels, up_channels = _GENERATOR[cfg.image_size]
  start_channels = common.channels(cfg, start_channels)
  z = keras.Input((cfg.z_dim,), name="z")
  x = keras.layers.Dense(4 * 4 * start_channels)(z)
  x = keras.layers.Reshape((4, 4, start_channels))(x)
  for paper_channels in up_channels:
    x = up_block(cfg, x, common.channels(cfg, paper_channels))
  x = keras.layers.ReLU()(common.batch_norm(cfg)(x))
  x = keras.layers.Conv2D(cfg.channels, 3, padding="same")(x)
  return keras.Model(z, common.output_activation(cfg, x), name="generator")


def critic(cfg: ModelConfig) -> keras.Model:
  """images [b, S, S, C] -> features [b, critic_dim]."""
  sn = common.SNLayers(cfg)
  first_channels, blocks = _CRITIC[cfg.image_size]
  images = keras.Input((cfg.image_size, cfg.image_size, cfg.channels), name="images")
  x = down_block(sn, images, common.channels(cfg, first_channels), True, first=True)
  activations = [x]
  for paper_channels, downsample in blocks:
    x = down_block(sn, x, common.channels(cfg, paper_channels), downsample)
    activations.append(x)
  pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
  # Global SUM pooling (Miyato): the average times the number of positions.
  pooled = keras.layers.Rescaling(float(x.shape[1] * x.shape[2]))(pooled)
  features = sn.dense(cfg.critic_dim)(pooled)
  return common.make_critic(cfg, images, features, activations, sn)
