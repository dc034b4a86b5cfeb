"""Generators and critics of the papers, selected by `ModelConfig.arch`.

Contract:
  build_generator(cfg) -> keras.Model: G(z [b, z_dim], training) -> images [b, S, S, C] float32,
    in [-1, 1] (tanh) or [0, 1] (sigmoid).
  build_critic(cfg) -> Critic: D(images, training) -> features [b, critic_dim] float32, and
    D.features_and_activations(images, training) -> (features, [per-layer activations, features last]).
  build_decoder(cfg) -> keras.Model or None: Li's decoder codes [b, critic_dim] -> images (arch li only).
All builders return built models (their variables exist).
"""

import dataclasses
from typing import Callable, Optional, Tuple

import keras

from mmd_gan_tf import images
from mmd_gan_tf import noise
from mmd_gan_tf.config import ConfigError, ModelConfig
from mmd_gan_tf.layers.spectral_norm import MODES as SPECTRAL_NORM_MODES
from mmd_gan_tf.models import dcgan, dcgan5, li, resnet, resnet_big, sngan


@dataclasses.dataclass(frozen=True)
class ArchSpec:
  """One architecture family: the image sizes it makes and its network builders."""
  sizes: Tuple[int, ...]
  generator: Callable[[ModelConfig], keras.Model]
  critic: Callable[[ModelConfig], keras.Model]
  decoder: Optional[Callable[[ModelConfig], keras.Model]] = None
  description: str = ""
  # How the reference code runs the critic on a step's real and fake images: "joint" (one pass on their
  # concatenation, as Wang's code does; batch statistics, where a critic has batch norm, are joint) or
  # "separate" (one pass each, as Li's netD(x), netD(y): each batch normalised with its own statistics).
  critic_pass: str = "joint"


ARCHS = {
    "dcgan": ArchSpec(dcgan.SIZES, dcgan.generator, dcgan.critic,
                      description="Wang et al. 2019 SN-DCGAN"),
    "dcgan5": ArchSpec(dcgan5.SIZES, dcgan5.generator, dcgan5.critic,
                       description="Binkowski et al. 2018 5x5 DCGAN"),
    "resnet": ArchSpec(resnet.SIZES, resnet.generator, resnet.critic,
                       description="Miyato et al. 2018 SN-ResNet"),
    "resnet_big": ArchSpec(resnet_big.SIZES, resnet_big.generator, resnet_big.critic,
                           description="Binkowski et al. 2018 ResNet G + 5x5 DCGAN critic"),
    "sngan": ArchSpec(sngan.SIZES, sngan.generator, sngan.critic,
                      description="Arbel et al. 2018 DCGAN (SMMD, 32 px)"),
    "li": ArchSpec(li.SIZES, li.generator, li.critic, li.decoder,
                   description="Li et al. 2017 DCGAN encoder / decoder", critic_pass="separate"),
}

OUTPUT_ACTIVATIONS = images.IMAGE_RANGES  # an output activation produces the range of the same name


def validate_model_config(cfg: ModelConfig) -> None:
  """Raises ValueError naming the bad value if `cfg` describes no buildable network."""
  if cfg.arch not in ARCHS:
    raise ValueError(f"unknown arch {cfg.arch!r}; choose one of {sorted(ARCHS)}")
  sizes = ARCHS[cfg.arch].sizes
  if cfg.image_size not in sizes:
    raise ConfigError("model.image_size", cfg.image_size, f"arch {cfg.arch!r} cannot make this size; "
                      f"it supports {list(sizes)}")
  if cfg.spectral_norm not in SPECTRAL_NORM_MODES:
    raise ValueError(f"unknown spectral_norm {cfg.spectral_norm!r}; choose one of "
                     f"{list(SPECTRAL_NORM_MODES)}")
  noise.validate_z_distribution(cfg)
  if cfg.output_activation not in OUTPUT_ACTIVATIONS:
    raise ValueError(f"unknown output_activation {cfg.output_activation!r}; choose one of "
                     f"{list(OUTPUT_ACTIVATIONS)}")
  for name in ("z_dim", "critic_dim", "channels"):
    if int(getattr(cfg, name)) < 1:
      raise ConfigError(f"model.{name}", getattr(cfg, name), "must be >= 1")
  if not cfg.width > 0:
    raise ConfigError("model.width", cfg.width, "must be > 0")
  if cfg.sn_multiplier is not None and not cfg.sn_multiplier > 0:
    raise ConfigError("model.sn_multiplier", cfg.sn_multiplier, "must be > 0 (or left out for the preset's)")
  if not cfg.sn_total_gain > 0:
    raise ConfigError("model.sn_total_gain", cfg.sn_total_gain, "must be > 0")
  if not 0.0 <= cfg.bn_momentum < 1.0:
    raise ConfigError("model.bn_momentum", cfg.bn_momentum, "must be in [0, 1)")
  if not cfg.bn_epsilon > 0:
    raise ConfigError("model.bn_epsilon", cfg.bn_epsilon, "must be > 0")


def build_generator(cfg: ModelConfig) -> keras.Model:
  """The generator of `cfg.arch` at `cfg.image_size`, built."""
  validate_model_config(cfg)
  return ARCHS[cfg.arch].generator(cfg)


def build_critic(cfg: ModelConfig) -> keras.Model:
  """The critic of `cfg.arch` at `cfg.image_size`, built (a `common.Critic`)."""
  validate_model_config(cfg)
  return ARCHS[cfg.arch].critic(cfg)


def build_decoder(cfg: ModelConfig) -> Optional[keras.Model]:
  """Li's decoder (codes [b, critic_dim] -> images) for arch li; None for every other arch."""
  validate_model_config(cfg)
  decoder = ARCHS[cfg.arch].decoder
  return decoder(cfg) if decoder is not None else None
