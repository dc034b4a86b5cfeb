"""Weight initialisers of the reference codes, one factory per (code, layer role).

Every factory returns a fresh Keras initializer: an unseeded Keras 3 initializer instance draws the same
values at every call, so one instance must never be shared between layers.

TF 1.x's `variance_scaling_initializer(distribution="normal")` (Wang et al.'s TF 1.8 code) draws from a
normal truncated at two standard deviations *without* correcting the variance, so the realised standard
deviation is `TRUNCATED_STD * sqrt(scale / fan_in)`. Keras' `VarianceScaling("truncated_normal")` corrects
for the truncation; passing `scale * TRUNCATED_STD**2` reproduces TF 1.x. Fans follow TF's convention:
a kernel [kh, kw, a, b] has fan_in = kh * kw * a, so for a transposed conv (kernel [kh, kw, out, in]) the
"fan_in" counts the *output* channels, as in the reference code.
"""

import keras

# Standard deviation of N(0, 1) truncated to [-2, 2].
TRUNCATED_STD = 0.87962566103423978
LEAKY_RELU_SLOPE_WANG = 0.1


def tf1_he_normal(scale: float) -> keras.initializers.Initializer:
  """TF 1.x variance_scaling(scale, fan_in, 'normal'): truncated at 2 std, realised std 0.88 sqrt(scale/n)."""
  return keras.initializers.VarianceScaling(scale * TRUNCATED_STD ** 2, "fan_in", "truncated_normal")


def expected_std_tf1_he(scale: float, fan_in: int) -> float:
  """The realised std of `tf1_he_normal(scale)` on a kernel with this fan_in (for tests and docs)."""
  return TRUNCATED_STD * (scale / fan_in) ** 0.5


# --- Wang et al. 2019 (richardwth/MMD-GAN, GeneralTools/layer_func.py) -------------------------------
def wang_leaky_relu() -> keras.initializers.Initializer:
  """Critic convs followed by LeakyReLU(0.1): He fan_in with scale 2 / (1 + 0.1^2)."""
  return tf1_he_normal(2.0 / (1.0 + LEAKY_RELU_SLOPE_WANG ** 2))


def wang_relu() -> keras.initializers.Initializer:
  """Generator layers followed by (BN and) ReLU: He fan_in with scale 2."""
  return tf1_he_normal(2.0)


def wang_linear() -> keras.initializers.Initializer:
  """Linear and tanh layers: Glorot uniform (TF's variance_scaling(1, fan_avg, uniform))."""
  return keras.initializers.GlorotUniform()


def wang_bias() -> keras.initializers.Initializer:
  """Biases: truncated normal with std 1e-5 (layers followed by batch norm have no bias)."""
  return keras.initializers.TruncatedNormal(stddev=1e-5)


# --- Binkowski et al. 2018 (mbinkowski/MMD-GAN, gan/core/ops.py) ----------------------------------
def binkowski_conv() -> keras.initializers.Initializer:
  """conv2d: truncated normal, std parameter 0.02 (realised 0.0176); biases zero."""
  return keras.initializers.TruncatedNormal(stddev=0.02)


def binkowski_deconv() -> keras.initializers.Initializer:
  """deconv2d: plain normal, std 0.02; biases zero."""
  return keras.initializers.RandomNormal(stddev=0.02)


def binkowski_linear() -> keras.initializers.Initializer:
  """linear: plain normal, std 0.01; biases zero."""
  return keras.initializers.RandomNormal(stddev=0.01)


# --- Binkowski et al. 2018's ResNet generator (mbinkowski/MMD-GAN, gan/core/resnet/) ----------------
# His residual blocks come from Gulrajani et al.'s WGAN-GP code: uniform weights with a std set by the
# average fan, (fan_in + fan_out) / 2 with fans counted as kh * kw * channels; biases zero.
def binkowski_resnet_conv() -> keras.initializers.Initializer:
  """Residual-branch 3x3 convs (`he_init=True`): uniform with std sqrt(4 / (fan_in + fan_out))."""
  return keras.initializers.VarianceScaling(2.0, "fan_avg", "uniform")


def binkowski_resnet_shortcut() -> keras.initializers.Initializer:
  """1x1 shortcut convs (`he_init=False`): Glorot uniform, std sqrt(2 / (fan_in + fan_out))."""
  return keras.initializers.GlorotUniform()


# --- Li et al. 2017 (OctoberChang/MMD-GAN, weights_init) -------------------------------------------
def li_conv() -> keras.initializers.Initializer:
  """Conv and ConvTranspose weights: N(0, 0.02)."""
  return keras.initializers.RandomNormal(stddev=0.02)


def li_bn_gamma() -> keras.initializers.Initializer:
  """BatchNorm scale: N(1, 0.02) (its shift starts at 0)."""
  return keras.initializers.RandomNormal(mean=1.0, stddev=0.02)
