"""Prints the README shape table: parameters and FLOPs per image of G and critic, per arch and size.

  python -m tools.model_table [--width=1.0] [--critic_dim=16] [--z_dim=128]

Parameters are trainable ones (no BN moving statistics, no power vectors). FLOPs are 2 x the
multiply-adds of the conv, transposed-conv and dense layers for one image, forward pass
(normalisation, activations, pooling and the power iteration are not counted; they are small).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from mmd_gan_tf import cli, models  # noqa: E402
from mmd_gan_tf.config import ModelConfig  # noqa: E402
from mmd_gan_tf.layers import spectral_norm as sn  # noqa: E402

FLAGS = flags.FLAGS
_CONV = (keras.layers.Conv2D, sn.SNConv2D)
_TRANSPOSE = (keras.layers.Conv2DTranspose, sn.SNConv2DTranspose)
_DENSE = (keras.layers.Dense, sn.SNDense)


def layer_flops(layer) -> int:
  """2 x multiply-adds of one image through `layer` (0 for layers without weights)."""
  if not isinstance(layer, _CONV + _TRANSPOSE + _DENSE):
    return 0
  kernel = layer.kernel.shape
  if isinstance(layer, _DENSE):
    return 2 * kernel[0] * kernel[1]
  if isinstance(layer, _TRANSPOSE):  # each input pixel scatters a kh x kw x cout patch
    height, width = layer.input.shape[1:3]
    return 2 * height * width * kernel[0] * kernel[1] * kernel[2] * kernel[3]
  height, width = layer.output.shape[1:3]
  return 2 * height * width * kernel[0] * kernel[1] * kernel[2] * kernel[3]


def functional_layers(model):
  """Leaf layers of a functional model, or of a `Critic`'s functional network."""
  return getattr(model, "network", model).layers


def model_stats(model):
  """(trainable parameters, FLOPs per image)."""
  params = sum(v.shape.num_elements() for v in model.trainable_variables)
  return params, sum(layer_flops(layer) for layer in functional_layers(model))


def _human(number: float) -> str:
  for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
    if number >= size:
      return f"{number / size:.2f}{unit}"
  return str(int(number))


def table(width: float, critic_dim: int, z_dim: int) -> str:
  """The markdown table for every (arch, image_size) of `models.ARCHS`."""
  lines = ["| arch | size | G params | G FLOPs/image | critic params | critic FLOPs/image | SN layers |",
           "|---|---|---|---|---|---|---|"]
  for arch, spec in models.ARCHS.items():
    for size in spec.sizes:
      cfg = ModelConfig(arch=arch, image_size=size, channels=3, width=width, critic_dim=critic_dim, z_dim=z_dim,
                        spectral_norm="matrix")
      generator, critic = models.build_generator(cfg), models.build_critic(cfg)
      g_params, g_flops = model_stats(generator)
      d_params, d_flops = model_stats(critic)
      lines.append(f"| {arch} | {size} | {_human(g_params)} | {_human(g_flops)} | {_human(d_params)} | "
                   f"{_human(d_flops)} | {len(sn.spectral_layers(critic))} |")
      keras.backend.clear_session()
  return "\n".join(lines)


def define_flags() -> None:
  flags.DEFINE_float("width", 1.0, "Channel multiplier (1.0 = the paper's widths).")
  flags.DEFINE_integer("critic_dim", 16, "Critic feature dimension.")
  flags.DEFINE_integer("z_dim", 128, "Latent dimension.")


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  print(table(FLAGS.width, FLAGS.critic_dim, FLAGS.z_dim))
  return 0


if __name__ == "__main__":
  define_flags()
  cli.run(main)
