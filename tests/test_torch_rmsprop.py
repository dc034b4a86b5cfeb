"""TorchRMSprop: PyTorch's RMSprop step (eps outside the square root), against a numpy oracle."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_gan_tf import optimizers
from mmd_gan_tf.config import OptimConfig
from mmd_gan_tf.torch_rmsprop import TorchRMSprop


def _torch_rmsprop(w, grads, lr, rho, eps):
  """torch.optim.RMSprop (alpha = rho, no momentum, not centered), float64."""
  v = np.zeros_like(w)
  for g in grads:
    v = rho * v + (1 - rho) * g**2
    w = w - lr * g / (np.sqrt(v) + eps)
  return w


@pytest.mark.parametrize("scale", [1e-7, 1e-3, 1.0])
def test_steps_match_pytorchs_formula(scale):
  rng = np.random.default_rng(0)
  w0 = rng.normal(size=(5, 3)) * 0.01
  grads = [rng.normal(size=(5, 3)) * scale for _ in range(6)]
  variable = keras.Variable(w0.astype(np.float64))
  optimizer = TorchRMSprop(5e-5, rho=0.99, epsilon=1e-8)
  for g in grads:
    optimizer.apply_gradients([(tf.constant(g), variable)])
  np.testing.assert_allclose(variable.numpy(), _torch_rmsprop(w0, grads, 5e-5, 0.99, 1e-8), rtol=1e-6, atol=1e-15)  # lr is float32


def test_keras_rmsprop_takes_far_smaller_steps_on_tiny_gradients():
  """Why Li's preset needs it: with gradients ~1e-7, Keras' sqrt(v + eps) >= 1e-4 shrinks the step."""
  g = np.full((4,), 1e-7)
  steps = {}
  for name, optimizer in (("torch", TorchRMSprop(1e-3)), ("keras", keras.optimizers.RMSprop(1e-3, rho=0.99))):
    variable = keras.Variable(np.zeros(4))
    optimizer.apply_gradients([(tf.constant(g), variable)])
    steps[name] = abs(float(variable.numpy()[0]))
  assert steps["torch"] > 50 * steps["keras"]


def test_the_rmsprop_config_builds_the_torch_variant():
  assert isinstance(optimizers.make_optimizer(OptimConfig(optimizer="rmsprop"), 5e-5), TorchRMSprop)
  with pytest.raises(ValueError, match="centered"):
    TorchRMSprop(1e-3, centered=True)
