"""The optimizers a run may name in `OptimConfig.optimizer`: `OPTIMIZERS[name](cfg, learning_rate)`.

Gradient clipping is not an optimizer setting here: the step clips the global gradient (steps.py).
"""

from typing import Callable, Dict

import keras

from mmd_gan_tf.config import OptimConfig
from mmd_gan_tf.torch_rmsprop import TorchRMSprop

OptimizerFn = Callable[[OptimConfig, float], keras.optimizers.Optimizer]


def adam(cfg: OptimConfig, learning_rate: float) -> keras.optimizers.Optimizer:
  """Adam with the config's beta1, beta2 and epsilon."""
  return keras.optimizers.Adam(learning_rate, beta_1=cfg.beta1, beta_2=cfg.beta2, epsilon=cfg.epsilon)


def rmsprop(cfg: OptimConfig, learning_rate: float) -> keras.optimizers.Optimizer:
  """RMSprop with PyTorch's epsilon placement, as Li et al.'s code (torch_rmsprop.py)."""
  return TorchRMSprop(learning_rate, rho=cfg.rho, epsilon=cfg.epsilon)


def sgd(cfg: OptimConfig, learning_rate: float) -> keras.optimizers.Optimizer:
  """Plain SGD (the gradient flow's generator)."""
  del cfg
  return keras.optimizers.SGD(learning_rate)


OPTIMIZERS: Dict[str, OptimizerFn] = {"adam": adam, "rmsprop": rmsprop, "sgd": sgd}


def make_optimizer(cfg: OptimConfig, learning_rate: float) -> keras.optimizers.Optimizer:
  """OPTIMIZERS[cfg.optimizer] at `learning_rate`, with a clear error for an unknown name."""
  if cfg.optimizer not in OPTIMIZERS:
    raise ValueError(f"--optimizer={cfg.optimizer!r} must be one of {sorted(OPTIMIZERS)}")
  return OPTIMIZERS[cfg.optimizer](cfg, learning_rate)
