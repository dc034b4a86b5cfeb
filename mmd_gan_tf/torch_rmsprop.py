"""RMSprop with PyTorch's epsilon placement, for Li et al. 2017's `mmd` preset.

PyTorch (which Li et al.'s code used): v <- rho v + (1 - rho) g^2;  w <- w - lr g / (sqrt(v) + eps).
Keras' RMSprop divides by sqrt(v + eps) instead. With weight clipping at 0.01 the critic's gradients
are tiny (v ~ 1e-12 and below), where the two differ by orders of magnitude: sqrt(v + 1e-8) >= 1e-4,
while sqrt(v) + 1e-8 can be 1e-6, so Keras' step would be up to 100x smaller than Li's.
"""

import keras
from keras import ops


class TorchRMSprop(keras.optimizers.RMSprop):
  """`keras.optimizers.RMSprop` (uncentered, no momentum) with the update lr g / (sqrt(v) + eps)."""

  def __init__(self, learning_rate=1e-3, rho=0.99, epsilon=1e-8, **kwargs):
    if kwargs.get("centered") or kwargs.get("momentum"):
      raise ValueError("TorchRMSprop supports neither centered nor momentum")
    super().__init__(learning_rate=learning_rate, rho=rho, epsilon=epsilon, **kwargs)

  def update_step(self, gradient, variable, learning_rate):
    lr = ops.cast(learning_rate, variable.dtype)
    gradient = ops.cast(gradient, variable.dtype)
    velocity = self._velocities[self._get_variable_index(variable)]
    self.assign(velocity, ops.add(ops.multiply(self.rho, velocity),
                                  ops.multiply(1 - self.rho, ops.square(gradient))))
    denominator = ops.add(ops.sqrt(velocity), self.epsilon)
    self.assign_sub(variable, ops.divide(ops.multiply(lr, gradient), denominator))
