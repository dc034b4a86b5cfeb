"""Spectrally normalised dense, conv and transposed-conv layers.

Modes:
  none:      the plain layer, W_eff = W.
  matrix:    Miyato et al. 2018: sigma = largest singular value of W reshaped to (kh*kw*cin, cout),
             one power iteration per training call, W_eff = W * C / sigma (C = 1 by default).
  conv:      Wang et al. 2019 ("PICO"): sigma = operator norm of the layer's actual linear map (its
             conv2d / conv2d_transpose at its stride, padding and input resolution; matmul for dense),
             estimated by power iteration with the vector in the smaller of input and output space:
             y = normalise(F v), v' = normalise(F^T y), sigma = |F v| with the old v. W_eff = W * C / sigma.
  conv_gain: as conv, times a trainable scalar gain g initialised to 1: W_eff = W * C * g / sigma.
  matrix_gain: as matrix, times a trainable scalar gain g initialised to 1 (Arbel et al. 2018's
             `with_learnable_sn_scale`): W_eff = W * C * g / sigma.

In every mode the power vector is a constant for autodiff (stop-gradient) and gradients flow through
sigma, so W / sigma is a reparametrisation. The vector is a non-trainable `keras.Variable` with
synchronization ON_READ / aggregation MEAN: each replica updates its own copy from the same mirrored
weights, so the copies stay identical, and the update is legal in replica context. It is updated
only when the layer is called with `training=True` (one iteration per such call; see
`power_iteration_updates` to switch updates off for extra calls in the same step, and
`one_sigma_per_step` to give those calls the first call's sigma).
"""

import contextlib
import math
import threading
from typing import Optional

import keras
import tensorflow as tf

MODES = ("none", "matrix", "conv", "conv_gain", "matrix_gain")
MATRIX_MODES = ("matrix", "matrix_gain")
GAIN_MODES = ("conv_gain", "matrix_gain")
CONV_MODES = ("conv", "conv_gain")
_EPSILON = 1e-12
_STATE = threading.local()


@contextlib.contextmanager
def power_iteration_updates(enabled: bool):
  """Switches power-vector updates on or off for layer calls traced inside the block.

  The switch is read when a call is traced, like Arbel's `update_collection="NO_OPS"`: use it for the
  second and later critic calls of one training step (e.g. on gradient-penalty interpolates) so that
  each step does exactly one power iteration.
  """
  previous = getattr(_STATE, "enabled", True)
  _STATE.enabled = bool(enabled)
  try:
    yield
  finally:
    _STATE.enabled = previous


def _updates_enabled() -> bool:
  return getattr(_STATE, "enabled", True)


@contextlib.contextmanager
def one_sigma_per_step():
  """Within the block, every call of a layer uses the sigma of the block's first call of that layer.

  The reference codes take a step's second critic evaluations (Arbel's SMMD Jacobian, Binkowski's gradient
  penalty) through the same graph as the main pass, so they see the main pass's sigma. Here a second call is
  a new call of the layer, made after the main pass stored its new power vector; without this block it would
  run one more power step from that vector and get another sigma (Arbel's lambda E||J||^2 at a run's first
  step: 2.27e-3 against his 7.35e-3). Inside the block, each layer's first call records the power vector it
  starts from and every later call starts from the same vector, so it computes the same sigma (with the
  same gradient w.r.t. W). Enter it once per training step, around the main pass and the losses.
  """
  previous = getattr(_STATE, "starts", None)
  _STATE.starts = {}
  try:
    yield
  finally:
    _STATE.starts = previous


def _start_vector(layer, current: tf.Tensor) -> tf.Tensor:
  """The power vector a call starts from: `current`, or inside `one_sigma_per_step` the first call's."""
  starts = getattr(_STATE, "starts", None)
  if starts is None:
    return current
  return starts.setdefault(id(layer), current)


def l2_normalize(x: tf.Tensor) -> tf.Tensor:
  """x / max(|x|, eps) over all elements of x (any shape)."""
  return x / tf.maximum(tf.norm(x), _EPSILON)


def matrix_power_step(kernel_2d: tf.Tensor, u: tf.Tensor):
  """One Miyato power iteration on a matrix.

  Args:
    kernel_2d: [K, N] weight matrix W (y = x W).
    u: [1, N] persistent unit vector (output space).

  Returns:
    (sigma, u_new): sigma = v W u_new^T, a scalar that carries the gradient w.r.t. W, with
    v = normalise(u W^T) [1, K] and u_new = normalise(v W) [1, N] both held constant
    (Miyato et al. 2018, Algorithm 1).
  """
  u = tf.stop_gradient(u)
  v = tf.stop_gradient(l2_normalize(tf.matmul(u, kernel_2d, transpose_b=True)))
  u_new = tf.stop_gradient(l2_normalize(tf.matmul(v, kernel_2d)))
  sigma = tf.reduce_sum(tf.matmul(v, kernel_2d) * u_new)
  return sigma, u_new


def operator_power_step(forward, adjoint, v: tf.Tensor):
  """One power iteration on a linear operator F given F and its adjoint F^T (Wang et al. 2019).

  Args:
    forward: v -> F v (the operator; linear in v and in the weights).
    adjoint: y -> F^T y.
    v: persistent unit vector in F's input space (any shape F accepts).

  Returns:
    (sigma, v_new): sigma = |F v| with the old v held constant (gradient flows to the weights);
    v_new = normalise(F^T normalise(F v)).
  """
  v = tf.stop_gradient(v)
  forward_v = forward(v)
  sigma = tf.norm(forward_v)
  v_new = tf.stop_gradient(l2_normalize(adjoint(l2_normalize(forward_v))))
  return sigma, v_new


def _check_mode(mode: str) -> str:
  if mode not in MODES:
    raise ValueError(f"spectral_norm mode must be one of {MODES}, got {mode!r}")
  return mode


def initial_power_vector(shape, dtype=None):
  """The power vector's start: N(0, 1) truncated at 2 std, *not* normalised (norm ~ 0.88 sqrt(n)).

  As Wang et al.'s `in_rand` (and Miyato's `u`). In conv modes sigma = |F v| uses the stored vector, so
  the first call overestimates sigma by about 0.88 sqrt(n): the critic starts with tiny effective weights
  (its output is about its biases) and the first update is close to a null step, instead of a full step
  taken with sigma underestimated (a unit random vector sees the Frobenius average, not the top
  singular value). From the first update on the vector is unit-norm. In matrix mode the start's norm
  does not matter (the vector is normalised before use).
  """
  return tf.random.truncated_normal(shape, dtype=dtype or "float32")


class _SpectralNormBase(keras.layers.Layer):
  """Shared state and the effective-weight computation of the three SN layers.

  Subclasses define `_kernel_shape(input_shape)`, `_output_spatial(input_shape)`, `_forward(x, w)`
  (the layer's linear map, no bias) and `_adjoint(y, w)`.
  """

  def __init__(self, mode="matrix", multiplier=1.0, use_bias=True,
               kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
    super().__init__(**kwargs)
    self.mode = _check_mode(mode)
    self.multiplier = float(multiplier)
    self.use_bias = bool(use_bias)
    self.kernel_initializer = keras.initializers.get(kernel_initializer)
    self.bias_initializer = keras.initializers.get(bias_initializer)

  def build(self, input_shape):
    self.kernel = self.add_weight(name="kernel", shape=self._kernel_shape(input_shape),
                                  initializer=self.kernel_initializer, autocast=False)
    self.bias = None
    if self.use_bias:
      self.bias = self.add_weight(name="bias", shape=(self._units,), initializer=self.bias_initializer,
                                  autocast=False)
    self.gain = None
    if self.mode in GAIN_MODES:
      self.gain = self.add_weight(name="sn_gain", shape=(), initializer="ones", autocast=False)
    self.power_vector = None
    if self.mode != "none":
      self.power_vector = keras.Variable(
          initial_power_vector, shape=self._power_vector_shape(input_shape), dtype=self.variable_dtype,
          trainable=False, autocast=False, synchronization="on_read", aggregation="mean",
          name="sn_power_vector")

  # --- geometry -------------------------------------------------------------------------------
  def _power_vector_shape(self, input_shape):
    if self.mode in MATRIX_MODES:
      return (1, self._kernel_shape(input_shape)[-1])
    in_shape, out_shape = self._operator_shapes(input_shape)
    self._vector_in_input_space = math.prod(in_shape) <= math.prod(out_shape)
    return in_shape if self._vector_in_input_space else out_shape

  def _operator_shapes(self, input_shape):
    """Shapes of one example in the operator's input and output spaces, batch dim 1."""
    spatial_in = tuple(input_shape[1:-1])
    if any(d is None for d in spatial_in):
      raise ValueError(f"{self.name}: conv-mode spectral norm needs a static input resolution, got "
                       f"input shape {tuple(input_shape)}")
    spatial_out = self._output_spatial(spatial_in)
    return (1,) + spatial_in + (input_shape[-1],), (1,) + spatial_out + (self._units,)

  # --- sigma and the effective kernel ---------------------------------------------------------
  def power_step(self, vector: Optional[tf.Tensor] = None):
    """(sigma, new power vector) for the current kernel, one power iteration from `vector` (default: the
    stored power vector); sigma carries the gradient w.r.t. W."""
    kernel = tf.convert_to_tensor(self.kernel.value)
    if vector is None:
      vector = tf.convert_to_tensor(self.power_vector.value)
    if self.mode in MATRIX_MODES:
      return matrix_power_step(tf.reshape(kernel, (-1, kernel.shape[-1])), vector)
    forward = lambda x: self._forward(x, kernel)
    adjoint = lambda y: self._adjoint(y, kernel)
    if self._vector_in_input_space:
      return operator_power_step(forward, adjoint, vector)
    return operator_power_step(adjoint, forward, vector)

  def effective_kernel(self, training=False):
    """W_eff = W * C (* g) / sigma in the variable dtype; updates the power vector when training."""
    kernel = tf.convert_to_tensor(self.kernel.value)
    if self.mode == "none":
      return kernel
    sigma, vector = self.power_step(_start_vector(self, tf.convert_to_tensor(self.power_vector.value)))
    if training and _updates_enabled():
      self.power_vector.assign(vector)
    scale = self.multiplier / sigma
    if self.gain is not None:
      scale = scale * tf.convert_to_tensor(self.gain.value)
    return kernel * scale

  def call(self, inputs, training=None):
    kernel = tf.cast(self.effective_kernel(training=bool(training)), self.compute_dtype)
    outputs = self._forward(inputs, kernel)
    if self.bias is not None:
      outputs = tf.nn.bias_add(outputs, tf.cast(self.bias.value, self.compute_dtype))
    return outputs

  def get_config(self):
    config = super().get_config()
    config.update(mode=self.mode, multiplier=self.multiplier, use_bias=self.use_bias,
                  kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                  bias_initializer=keras.initializers.serialize(self.bias_initializer))
    return config


@keras.saving.register_keras_serializable(package="mmd_gan_tf")
class SNDense(_SpectralNormBase):
  """Dense layer y = x W_eff + b on inputs [b, in] -> [b, units]; conv mode is the matmul operator."""

  def __init__(self, units, **kwargs):
    super().__init__(**kwargs)
    self._units = int(units)

  def _kernel_shape(self, input_shape):
    return (input_shape[-1], self._units)

  def _operator_shapes(self, input_shape):
    return (1, input_shape[-1]), (1, self._units)

  def _forward(self, x, kernel):
    return tf.matmul(x, kernel)

  def _adjoint(self, y, kernel):
    return tf.matmul(y, kernel, transpose_b=True)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self._units,)

  def get_config(self):
    return {**super().get_config(), "units": self._units}


def _pair(value):
  return (value, value) if isinstance(value, int) else tuple(value)


def _check_padding(padding):
  if not isinstance(padding, str) or padding.upper() not in ("SAME", "VALID"):
    raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
  return padding.upper()


class _SNConvBase(_SpectralNormBase):

  def __init__(self, filters, kernel_size, strides=1, padding="same", **kwargs):
    super().__init__(**kwargs)
    self._units = int(filters)
    self.kernel_size = _pair(kernel_size)
    self.strides = _pair(strides)
    self.padding = _check_padding(padding)

  def compute_output_shape(self, input_shape):
    spatial = tuple(input_shape[1:3])
    if any(d is None for d in spatial):
      return (input_shape[0], None, None, self._units)
    return (input_shape[0],) + self._output_spatial(spatial) + (self._units,)

  def get_config(self):
    return {**super().get_config(), "filters": self._units, "kernel_size": self.kernel_size,
            "strides": self.strides, "padding": self.padding.lower()}


@keras.saving.register_keras_serializable(package="mmd_gan_tf")
class SNConv2D(_SNConvBase):
  """2-D convolution [b, H, W, cin] -> [b, Ho, Wo, filters] with a spectrally normalised kernel.

  Kernel [kh, kw, cin, filters]; conv mode's operator is this conv at this stride and padding on the
  input resolution seen at build time; its adjoint is conv2d_transpose.
  """

  def _kernel_shape(self, input_shape):
    return self.kernel_size + (input_shape[-1], self._units)

  def _output_spatial(self, spatial_in):
    return tuple(_conv_output_size(n, k, s, self.padding)
                 for n, k, s in zip(spatial_in, self.kernel_size, self.strides))

  def _forward(self, x, kernel):
    return tf.nn.conv2d(x, kernel, strides=self.strides, padding=self.padding)

  def _adjoint(self, y, kernel):
    in_shape, _ = self._operator_shapes(self.input_spec_shape)
    return tf.nn.conv2d_transpose(y, kernel, output_shape=in_shape, strides=self.strides,
                                  padding=self.padding)

  def build(self, input_shape):
    self.input_spec_shape = tuple(input_shape)
    super().build(input_shape)


@keras.saving.register_keras_serializable(package="mmd_gan_tf")
class SNConv2DTranspose(_SNConvBase):
  """Transposed convolution [b, H, W, cin] -> [b, Ho, Wo, filters] with a normalised kernel.

  Kernel [kh, kw, filters, cin] (tf.nn.conv2d_transpose layout). Output size: H * s (SAME) or
  (H - 1) * s + max(k, s) (VALID). Conv mode's operator is this conv2d_transpose; its adjoint is conv2d.
  """

  def _kernel_shape(self, input_shape):
    return self.kernel_size + (self._units, input_shape[-1])

  def _output_spatial(self, spatial_in):
    return tuple(_conv_transpose_output_size(n, k, s, self.padding)
                 for n, k, s in zip(spatial_in, self.kernel_size, self.strides))

  def _forward(self, x, kernel):
    spatial = self._output_spatial(tuple(x.shape[1:3]))
    output_shape = tf.stack([tf.shape(x)[0], spatial[0], spatial[1], self._units])
    outputs = tf.nn.conv2d_transpose(x, kernel, output_shape=output_shape, strides=self.strides,
                                     padding=self.padding)
    return tf.ensure_shape(outputs, (x.shape[0],) + spatial + (self._units,))

  def _adjoint(self, y, kernel):
    return tf.nn.conv2d(y, kernel, strides=self.strides, padding=self.padding)


def _conv_output_size(size, kernel, stride, padding):
  if padding == "SAME":
    return -(-size // stride)
  return (size - kernel) // stride + 1


def _conv_transpose_output_size(size, kernel, stride, padding):
  if padding == "SAME":
    return size * stride
  return (size - 1) * stride + max(kernel, stride)


def spectral_layers(model: keras.layers.Layer):
  """All SN layers (mode != none) inside `model`, in creation order."""
  return [layer for layer in _walk(model)
          if isinstance(layer, _SpectralNormBase) and layer.mode != "none"]


def _walk(layer):
  yield layer
  for sub in getattr(layer, "_flatten_layers", lambda **_: [])(include_self=False, recursive=True):
    yield sub


def default_multiplier(mode: str, num_layers: int, multiplier=None, total_gain: float = 64.0) -> float:
  """C in W * C / sigma: the given multiplier, else total_gain**(1/L) in conv mode (Wang: 64), else 1."""
  if multiplier is not None:
    if multiplier <= 0:
      raise ValueError(f"sn_multiplier must be positive, got {multiplier}")
    return float(multiplier)
  if mode == "conv" and num_layers > 0:
    return float(total_gain) ** (1.0 / num_layers)
  return 1.0
