"""Binkowski et al. 2018's ResNet generator with a DCGAN critic, at 128 and 160 px.

G: dense z -> s x s x 1024 (s = 4 at 128 px, 5 at 160 px), four pre-activation up-blocks
   1024 -> 512 -> 256 -> 128 -> 64 (BN, 2x nearest upsampling, conv 3x3, 1x1 shortcut), then BN, ReLU,
   tconv 5x5/2 -> C and the output activation.
Critic: five 5x5/2 convs 64, 128, 256, 512, 1024 with LeakyReLU 0.2, dense -> critic_dim.

Initialisers as Binkowski's code (`g-resnet5`: `gan/core/architecture.py` ResNetGenerator and
DCGAN5Discriminator, `gan/core/ops.py`, `gan/core/resnet/block.py` and `ops/conv2d.py`): G's dense normal
0.01; residual 3x3 convs uniform with std sqrt(4 / (fan_in + fan_out)); 1x1 shortcuts Glorot uniform;
the last tconv normal 0.02; critic convs truncated normal 0.02, its dense normal 0.01; biases zero.
His first residual conv has no bias (batch norm follows); ours keeps a zero bias that batch norm cancels.
Arbel's `g-resnet5` (MichaelArbel/Scaled-MMD-GAN, his 160 px CelebA SMMD runs) differs and is not
followed here: no batch norm inside the blocks (his `ResidualBlock` defaults to `mode=''`) and Glorot
uniform on every block conv (`gan/core/resnet/ops/conv2d.py`); his dense, last tconv and critic match.
"""

import keras

from mmd_gan_tf.config import ModelConfig
from mmd_gan_tf.models import common, dcgan5, resnet
from mmd_gan_tf.models import initializers as init

SIZES = (128, 160)
_UP_CHANNELS = (512, 256, 128, 64)
_CRITIC_CHANNELS = (64, 128, 256, 512, 1024)


def generator(cfg: ModelConfig) -> keras.Model:
  """z [b, z_dim] -> images [b, S, S, C]."""
  start = cfg.image_size // 32
  start_channels = common.channels(cfg, 1024)
  z = keras.Input((cfg.z_dim,), name="z")
  x = keras.layers.Dense(start * start * start_channels, kernel_initializer=init.binkowski_linear())(z)
  x = keras.layers.Reshape((start, start, start_channels))(x)
  for paper_channels in _UP_CHANNELS:
    x = resnet.up_block(cfg, x, common.channels(cfg, paper_channels), conv_initializer=init.binkowski_resnet_conv,
                        shortcut_initializer=init.binkowski_resnet_shortcut)
  x = keras.layers.ReLU()(common.batch_norm(cfg)(x))
  x = keras.layers.Conv2DTranspose(cfg.channels, 5, 2, padding="same", kernel_initializer=init.binkowski_deconv())(x)
  return keras.Model(z, common.output_activation(cfg, x), name="generator")


def critic(cfg: ModelConfig) -> keras.Model:
  """images [b, S, S, C] -> features [b, critic_dim]; 6 SN layers."""
  return dcgan5.conv_stack_critic(cfg, _CRITIC_CHANNELS)
