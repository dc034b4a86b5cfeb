"""Pieces shared by every architecture: channel scaling, SN layer factory, the critic wrapper."""

import contextlib

import keras
import tensorflow as tf

from mmd_gan_tf.config import ModelConfig
from mmd_gan_tf.layers import spectral_norm as sn


def channels(cfg: ModelConfig, paper_channels: int) -> int:
  """The paper's channel count scaled by `cfg.width` (at least 1)."""
  return max(1, int(round(paper_channels * cfg.width)))


def fresh(initializer):
  """A new initializer instance from a factory; names and instances pass through unchanged."""
  if callable(initializer) and not isinstance(initializer, keras.initializers.Initializer):
    return initializer()
  return initializer


class SNLayers:
  """Makes a critic's layers with `cfg.spectral_norm` and sets C once all are known.

  C = cfg.sn_multiplier, else cfg.sn_total_gain**(1/L) in conv mode with L the number of SN layers
  (Wang: C^L = 64 for rep, 128 for his hinge baseline), else 1.
  Call `finalize()` after the network is wired; C is read by the layers at call time.
  """

  def __init__(self, cfg: ModelConfig, kernel_initializer="glorot_uniform", use_bias=True,
               bias_initializer="zeros"):
    """`kernel_initializer` / `bias_initializer`: a Keras initializer name or a zero-argument factory
    (`models.initializers`); a factory is called once per layer so that no two layers share draws."""
    self.cfg = cfg
    self.kernel_initializer = kernel_initializer
    self.bias_initializer = bias_initializer
    self.use_bias = use_bias
    self.layers = []

  def _make(self, cls, *args, **kwargs):
    kwargs.setdefault("kernel_initializer", fresh(self.kernel_initializer))
    kwargs.setdefault("bias_initializer", fresh(self.bias_initializer))
    kwargs.setdefault("use_bias", self.use_bias)
    layer = cls(*args, mode=self.cfg.spectral_norm, **kwargs)
    self.layers.append(layer)
    return layer

  def dense(self, units, **kwargs):
    return self._make(sn.SNDense, units, **kwargs)

  def conv(self, filters, kernel_size, strides=1, padding="same", **kwargs):
    return self._make(sn.SNConv2D, filters, kernel_size, strides=strides, padding=padding, **kwargs)

  def finalize(self) -> float:
    num_layers = len(self.layers) if self.cfg.spectral_norm != "none" else 0
    multiplier = sn.default_multiplier(self.cfg.spectral_norm, num_layers, self.cfg.sn_multiplier,
                                       self.cfg.sn_total_gain)
    for layer in self.layers:
      layer.multiplier = multiplier
    return multiplier


_FUSED_BATCH_NORM = [True]


def batch_norm(cfg: ModelConfig, **kwargs) -> keras.layers.BatchNormalization:
  """The fused `BatchNorm` for training; Keras' own class inside `keras_batch_norm()` (exports)."""
  cls = BatchNorm if _FUSED_BATCH_NORM[0] else keras.layers.BatchNormalization
  return cls(momentum=cfg.bn_momentum, epsilon=cfg.bn_epsilon, **kwargs)


@contextlib.contextmanager
def keras_batch_norm():
  """Networks built inside use Keras' own BatchNormalization (the same variables, in the same order): an
  exported `generator.keras` then loads in plain Keras, without this package."""
  _FUSED_BATCH_NORM[0] = False
  try:
    yield
  finally:
    _FUSED_BATCH_NORM[0] = True


@keras.saving.register_keras_serializable(package="mmd_gan_tf")
class BatchNorm(keras.layers.BatchNormalization):
  """keras.layers.BatchNormalization of NHWC images through TensorFlow's fused kernel (the same variables and
  maths, one op each way instead of a dozen element-wise ones).

  Training: y = gamma (x - mean_B) / sqrt(var_B + eps) + beta with the batch's mean and biased variance over
  (N, H, W), and moving = momentum * moving + (1 - momentum) * batch statistic, as Keras does (the fused op
  returns the unbiased variance: it is scaled back by (n - 1) / n). Inference: the moving statistics.
  bfloat16 inputs stay bfloat16 (the op computes its statistics in float32), where Keras first copies
  them to float32: in the profile of Wang's bfloat16 step, batch normalization was 12% of the op time.
  Anything else (other ranks or axes, masks, renorm, epsilon under the fused op's 1.001e-5) is Keras' own.
  """

  def _fused(self, inputs, mask) -> bool:
    return (mask is None and not self.renorm and len(inputs.shape) == 4 and self.axis in (-1, 3)
            and inputs.dtype in (tf.float32, tf.bfloat16) and self.epsilon >= 1.001e-5)

  def call(self, inputs, training=None, mask=None):
    if not self._fused(inputs, mask):
      return super().call(inputs, training=training, mask=mask)
    channels = inputs.shape[-1]
    scale = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels])
    offset = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels])
    if not (training and self.trainable):
      outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
          inputs, scale, offset, mean=tf.cast(self.moving_mean, tf.float32),
          variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon, is_training=False)
      return tf.cast(outputs, self.compute_dtype)
    outputs, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
        inputs, scale, offset, epsilon=self.epsilon, is_training=True)
    count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), tf.float32)
    variance = unbiased_variance * (count - 1.0) / tf.maximum(count, 1.0)
    self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
    self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
    return tf.cast(outputs, self.compute_dtype)


def leaky_relu(x: tf.Tensor, alpha: float) -> tf.Tensor:
  """`tf.nn.leaky_relu(x, alpha)` whose gradient reads the output y instead of x (the same values: y > 0
  exactly where x > 0), so the op that feeds it has one consumer.

  With TensorFlow's own gradient, the bias add before the activation feeds both LeakyRelu and LeakyReluGrad,
  and Grappler's remapper fails on every training-step graph ("remapper failed: ... fanout ... LeakyReluGrad
  exist for missing node .../BiasAdd", an E-line per run) and gives up all of its fusions in that graph.
  Second derivatives (the gradient penalties) go through LeakyReluGrad's registered gradient as before; its
  gradient with respect to `features` is zero, so the output enters through `stop_gradient`: otherwise an
  outer tape differentiates the forward LeakyRelu op with TensorFlow's own gradient (all zeros) and brings
  the remapper failure back into the penalties' graphs.
  """
  @tf.custom_gradient
  def forward(inputs):
    outputs = tf.nn.leaky_relu(inputs, alpha)

    def backward(upstream):
      return tf.raw_ops.LeakyReluGrad(gradients=upstream, features=tf.stop_gradient(outputs), alpha=alpha)

    return outputs, backward

  return forward(x)


@keras.saving.register_keras_serializable(package="mmd_gan_tf")
class LeakyReLU(keras.layers.LeakyReLU):
  """keras.layers.LeakyReLU through `leaky_relu` (same outputs and gradients, no remapper failure)."""

  def call(self, inputs):
    return leaky_relu(inputs, float(self.negative_slope))


def output_activation(cfg: ModelConfig, x):
  """tanh -> [-1, 1] or sigmoid -> [0, 1], computed in float32."""
  return keras.layers.Activation(cfg.output_activation, dtype="float32", name="output")(x)


@keras.saving.register_keras_serializable(package="mmd_gan_tf")
class Critic(keras.Model):
  """The critic psi: images [b, S, S, C] -> features [b, critic_dim] float32.

  Wraps a functional `network` whose outputs are [features, *hidden activations]; exposes
  `features_and_activations` for penalties that need every layer (Binkowski's L2 penalty). Saves and loads
  as a `.keras` file (the network, its weights and the SN layers' power vectors).
  """

  def __init__(self, network: keras.Model, multiplier: float = 1.0, **kwargs):
    super().__init__(**kwargs)
    self.network = network
    self.sn_multiplier = float(multiplier)

  def call(self, images, training=False):
    return self.features_and_activations(images, training=training)[0]

  def get_config(self):
    return {**super().get_config(), "network": keras.saving.serialize_keras_object(self.network),
            "multiplier": self.sn_multiplier}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    network = keras.saving.deserialize_keras_object(config.pop("network"))
    return cls(network, **config)

  def features_and_activations(self, images, training=False):
    """Returns (features [b, critic_dim] float32, [every layer's output, features last] float32).

    Each call with training=True does one power iteration in every SN layer.
    """
    outputs = self.network(images, training=training)
    outputs = [tf.cast(x, tf.float32) for x in tf.nest.flatten(outputs)]
    return outputs[0], outputs[1:] + [outputs[0]]


def make_critic(cfg: ModelConfig, images, features, activations, factory: SNLayers, name="critic"):
  """Wires a functional critic network into a built `Critic`."""
  network = keras.Model(images, [features] + list(activations), name=f"{name}_network")
  multiplier = factory.finalize()
  critic = Critic(network, multiplier, name=name)
  critic(tf.zeros((1, cfg.image_size, cfg.image_size, cfg.channels)), training=False)
  return critic


def flatten(x):
  return keras.layers.Flatten()(x)
