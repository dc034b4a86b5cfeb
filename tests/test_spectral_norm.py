"""Spectral normalisation against float64 numpy oracles (SPEC section 5).

The conv-operator oracle is the dense matrix of the layer's linear map on an 8x8 input, built here
by explicit loops over output positions and kernel taps with TensorFlow's SAME/VALID padding rule.
"""

import numpy as np
import pytest
import tensorflow as tf

from mmd_gan_tf.layers import spectral_norm as sn

HW = 8
CIN, COUT = 2, 3


# ---------------------------------------------------------------------------------------------
# numpy oracles
# ---------------------------------------------------------------------------------------------
def conv_out_size(size, kernel, stride, padding):
  return -(-size // stride) if padding == "SAME" else (size - kernel) // stride + 1


def conv_matrix(kernel, in_hw, stride, padding):
  """Dense float64 matrix M [Ho*Wo*cout, H*W*cin] of tf.nn.conv2d (NHWC, C-order flattening)."""
  kernel = np.asarray(kernel, np.float64)
  kh, kw, cin, cout = kernel.shape
  (h, w), (sh, sw) = in_hw, (stride, stride)
  ho, wo = conv_out_size(h, kh, sh, padding), conv_out_size(w, kw, sw, padding)
  pad_top = max((ho - 1) * sh + kh - h, 0) // 2 if padding == "SAME" else 0
  pad_left = max((wo - 1) * sw + kw - w, 0) // 2 if padding == "SAME" else 0
  matrix = np.zeros((ho * wo * cout, h * w * cin))
  for oi in range(ho):
    for oj in range(wo):
      row = (oi * wo + oj) * cout
      for di in range(kh):
        for dj in range(kw):
          ii, jj = oi * sh + di - pad_top, oj * sw + dj - pad_left
          if 0 <= ii < h and 0 <= jj < w:
            col = (ii * w + jj) * cin
            matrix[row:row + cout, col:col + cin] += kernel[di, dj].T
  return matrix, (ho, wo)


def layer_matrix(layer):
  """The dense matrix of an SN layer's (unnormalised) linear map, float64, on an 8x8 input."""
  kernel = layer.kernel.numpy()
  if isinstance(layer, sn.SNConv2DTranspose):
    out_hw = layer.compute_output_shape((1, HW, HW, CIN))[1:3]
    matrix, in_hw = conv_matrix(kernel, out_hw, layer.strides[0], layer.padding)
    assert in_hw == (HW, HW)
    return matrix.T
  if isinstance(layer, sn.SNConv2D):
    return conv_matrix(kernel, (HW, HW), layer.strides[0], layer.padding)[0]
  return kernel.T.astype(np.float64)


def top_singular_value(matrix):
  return np.linalg.svd(matrix, compute_uv=False)[0]


def normalise(x):
  return x / np.linalg.norm(x)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
CONV_CASES = [(cls, k, s, p) for cls in (sn.SNConv2D, sn.SNConv2DTranspose)
              for k, s in ((3, 1), (4, 2)) for p in ("same", "valid")]


def make_layer(cls, mode, kernel_size=3, strides=1, padding="same", seed=0, **kwargs):
  tf.keras.utils.set_random_seed(seed)
  if cls is sn.SNDense:
    layer = sn.SNDense(COUT, mode=mode, **kwargs)
    layer.build((None, 5))
  else:
    layer = cls(COUT, kernel_size, strides=strides, padding=padding, mode=mode, **kwargs)
    layer.build((None, HW, HW, CIN))
  # A random normal kernel so the test does not depend on the initializer.
  rng = np.random.default_rng(seed)
  layer.kernel.assign(rng.normal(size=layer.kernel.shape).astype(np.float32))
  return layer


def example_input(layer, batch=2, seed=1):
  shape = (batch, 5) if isinstance(layer, sn.SNDense) else (batch, HW, HW, CIN)
  return tf.constant(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


# ---------------------------------------------------------------------------------------------
# the oracle itself matches the layers' geometry
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,kernel_size,strides,padding", CONV_CASES)
def test_dense_matrix_oracle_matches_layer_map(cls, kernel_size, strides, padding):
  layer = make_layer(cls, "none", kernel_size, strides, padding)
  layer.bias.assign(np.zeros(layer.bias.shape, np.float32))
  x = example_input(layer, batch=1)
  expected = layer_matrix(layer) @ x.numpy().reshape(-1).astype(np.float64)
  np.testing.assert_allclose(layer(x).numpy().reshape(-1), expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# conv mode: convergence to the operator norm, one step against numpy
# ---------------------------------------------------------------------------------------------
def conv_sigmas(layer, iterations):
  """sigma after 1..iterations training calls (each call does one power iteration)."""
  x = example_input(layer, batch=1)

  @tf.function
  def sigma_then_step():
    sigma = layer.power_step()[0]
    with tf.control_dependencies([sigma]):
      layer(x, training=True)
    return sigma

  return np.array([float(sigma_then_step()) for _ in range(iterations)])


@pytest.mark.parametrize("cls,kernel_size,strides,padding", CONV_CASES)
def test_conv_sigma_converges_to_operator_norm(cls, kernel_size, strides, padding):
  tf.random.set_seed(0)  # the power vector's random start
  layer = make_layer(cls, "conv", kernel_size, strides, padding)
  true_sigma = top_singular_value(layer_matrix(layer))
  sigmas = conv_sigmas(layer, 300)
  # The first sigma uses the unnormalised start vector (Wang's `in_rand`, norm ~ 0.88 sqrt(n)): it
  # overestimates. From the first update on the vector is a unit vector.
  assert sigmas[0] > true_sigma
  sigmas = sigmas[1:]
  errors = np.abs(sigmas - true_sigma) / true_sigma
  # |F v_k| is non-decreasing under power iteration and bounded by the top singular value.
  assert np.all(np.diff(sigmas) >= -1e-5 * true_sigma)
  assert np.all(sigmas <= true_sigma * (1 + 1e-5))
  # 300 iterations reach 0.15% or better on these layers (how fast depends on the spectral gap).
  assert errors[-1] < 3e-3
  assert errors[-1] < 0.1 * errors[0]
  # The operator norm is not the norm of the reshaped kernel matrix.
  reshaped = layer.kernel.numpy().astype(np.float64).reshape(-1, layer.kernel.shape[-1])
  assert abs(true_sigma - top_singular_value(reshaped)) > 0.05 * true_sigma


@pytest.mark.parametrize("cls,kernel_size,strides,padding", CONV_CASES[:4] + [(sn.SNDense, 1, 1, "same")])
def test_conv_mode_differs_from_matrix_mode(cls, kernel_size, strides, padding):
  conv = make_layer(cls, "conv", kernel_size, strides, padding)
  matrix = make_layer(cls, "matrix", kernel_size, strides, padding)
  conv_sigma, matrix_sigma = conv_sigmas(conv, 150)[-1], conv_sigmas(matrix, 150)[-1]
  if cls is sn.SNDense:  # the same operator: both find the same singular value
    np.testing.assert_allclose(conv_sigma, matrix_sigma, rtol=1e-4)
  else:
    assert conv_sigma > 1.05 * matrix_sigma


@pytest.mark.parametrize("cls,kernel_size,strides,padding",
                         [CONV_CASES[0], CONV_CASES[2], CONV_CASES[5], (sn.SNDense, 1, 1, "same")])
def test_conv_mode_one_training_step_matches_numpy(cls, kernel_size, strides, padding):
  layer = make_layer(cls, "conv", kernel_size, strides, padding, multiplier=1.7)
  matrix = layer_matrix(layer)
  vector = layer.power_vector.numpy().astype(np.float64).reshape(-1)
  operator = matrix if layer._vector_in_input_space else matrix.T
  assert vector.size == min(matrix.shape)  # the vector lives in the smaller space
  sigma = np.linalg.norm(operator @ vector)  # |F v| with the old v
  new_vector = normalise(operator.T @ normalise(operator @ vector))
  x = example_input(layer)
  outputs = layer(x, training=True).numpy().reshape(x.shape[0], -1)
  bias = np.tile(layer.bias.numpy(), outputs.shape[1] // COUT)
  expected = x.numpy().reshape(x.shape[0], -1) @ (matrix * 1.7 / sigma).T + bias
  np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(layer.power_vector.numpy().reshape(-1), new_vector, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# matrix mode against numpy SVD
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [sn.SNDense, sn.SNConv2D, sn.SNConv2DTranspose])
def test_matrix_mode_matches_numpy_svd(cls):
  layer = make_layer(cls, "matrix", 3, 1, "same", seed=3)
  kernel = layer.kernel.numpy().astype(np.float64)
  true_sigma = top_singular_value(kernel.reshape(-1, kernel.shape[-1]))
  sigmas = conv_sigmas(layer, 60)
  errors = np.abs(sigmas - true_sigma) / true_sigma
  assert errors[-1] < 1e-4
  assert errors[-1] < 0.1 * errors[0]
  x = example_input(layer)
  with sn.power_iteration_updates(False):
    outputs = layer(x, training=True).numpy()
  reference = make_layer(cls, "none", 3, 1, "same", seed=3)
  reference.kernel.assign(kernel / sigmas[-1])
  reference.bias.assign(layer.bias.numpy())
  np.testing.assert_allclose(outputs, reference(x).numpy(), rtol=1e-4, atol=1e-5)


def test_matrix_power_step_against_numpy():
  rng = np.random.default_rng(4)
  kernel, u = rng.normal(size=(7, 4)), normalise(rng.normal(size=(1, 4)))
  v = normalise(u @ kernel.T)
  u_new = normalise(v @ kernel)
  sigma, u_tf = sn.matrix_power_step(tf.constant(kernel), tf.constant(u))
  np.testing.assert_allclose(u_tf.numpy(), u_new, rtol=1e-12)
  np.testing.assert_allclose(sigma.numpy(), (v @ kernel @ u_new.T).item(), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# effective weight W * C / sigma with the gradient through sigma (finite differences, float64)
# ---------------------------------------------------------------------------------------------
def numpy_conv_mode_loss(kernel, vector, x, weights, multiplier, gain=1.0):
  """sum(weights * (x @ W_eff)) for a dense layer, W_eff = W C g / |v W| (vector in input space)."""
  sigma = np.linalg.norm(vector @ kernel)
  return np.sum(weights * (x @ (kernel * multiplier * gain / sigma)))


@pytest.mark.parametrize("mode", ["conv", "conv_gain"])
def test_gradient_through_sigma_matches_finite_differences(mode):
  tf.keras.utils.set_random_seed(5)
  layer = sn.SNDense(4, mode=mode, multiplier=1.3, use_bias=False, dtype="float64")
  layer.build((None, 3))
  rng = np.random.default_rng(5)
  x, weights = rng.normal(size=(6, 3)), rng.normal(size=(6, 4))
  if mode == "conv_gain":
    layer.gain.assign(0.7)
  gain = 0.7 if mode == "conv_gain" else 1.0
  vector = layer.power_vector.numpy()
  assert layer._vector_in_input_space
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(weights * layer(tf.constant(x), training=False))
  grad_kernel = tape.gradient(loss, layer.kernel).numpy()
  kernel = layer.kernel.numpy()
  np.testing.assert_allclose(loss.numpy(), numpy_conv_mode_loss(kernel, vector, x, weights, 1.3, gain),
                             rtol=1e-12)
  fd = np.zeros_like(kernel)
  for index in np.ndindex(kernel.shape):
    step = np.zeros_like(kernel)
    step[index] = 1e-6
    fd[index] = (numpy_conv_mode_loss(kernel + step, vector, x, weights, 1.3, gain)
                 - numpy_conv_mode_loss(kernel - step, vector, x, weights, 1.3, gain)) / 2e-6
  np.testing.assert_allclose(grad_kernel, fd, rtol=1e-6, atol=1e-8)
  # Without the gradient through sigma the answer would be different.
  assert np.abs(fd - weights.T.dot(x).T * 1.3 * gain / np.linalg.norm(vector @ kernel)).max() > 1e-3


def test_gain_is_trainable_and_scales_output():
  layer = make_layer(sn.SNConv2D, "conv_gain", 3, 1, "same")
  assert any(v is layer.gain for v in layer.trainable_variables)
  assert any(v is layer.power_vector for v in layer.non_trainable_variables)
  x = example_input(layer)
  before = layer(x, training=False).numpy() - layer.bias.numpy()
  layer.gain.assign(2.5)
  after = layer(x, training=False).numpy() - layer.bias.numpy()
  np.testing.assert_allclose(after, 2.5 * before, rtol=1e-5, atol=1e-5)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(x, training=False) ** 2)
  assert float(tf.abs(tape.gradient(loss, layer.gain))) > 0


# ---------------------------------------------------------------------------------------------
# when the vector is updated
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["matrix", "conv"])
def test_power_vector_updates_only_in_training(mode):
  layer = make_layer(sn.SNConv2D, mode, 4, 2, "same")
  x = example_input(layer)
  initial = layer.power_vector.numpy().copy()
  layer(x, training=False)
  layer(x)
  np.testing.assert_array_equal(layer.power_vector.numpy(), initial)
  with sn.power_iteration_updates(False):
    layer(x, training=True)
  np.testing.assert_array_equal(layer.power_vector.numpy(), initial)
  layer(x, training=True)
  assert np.abs(layer.power_vector.numpy() - initial).max() > 1e-4


def test_none_mode_is_the_plain_layer():
  layer = make_layer(sn.SNConv2D, "none", 3, 1, "same")
  assert layer.power_vector is None and layer.gain is None
  x = example_input(layer)
  expected = tf.nn.conv2d(x, layer.kernel.value, 1, "SAME") + layer.bias.value
  np.testing.assert_allclose(layer(x, training=True).numpy(), expected.numpy(), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# replicas
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def strategy(two_replica_strategy):
  """The 2-replica strategy's devices, reducing without collective ops.

  Several default MirroredStrategy objects in one process reuse collective instance keys and abort
  with "Shape mismatch in the collective instance 100" once two tests all-reduce different shapes
  (tensorflow#62790); ReductionToOneDevice has no such keys.
  """
  return tf.distribute.MirroredStrategy(two_replica_strategy.extended.worker_devices,
                                        cross_device_ops=tf.distribute.ReductionToOneDevice())


@pytest.mark.parametrize("mode", ["matrix", "conv", "conv_gain"])
def test_power_vectors_identical_across_replicas(strategy, mode):
  with strategy.scope():
    conv = sn.SNConv2D(COUT, 4, strides=2, mode=mode)
    dense = sn.SNDense(2, mode=mode)
    conv.build((None, HW, HW, CIN))
    dense.build((None, 4 * 4 * COUT))
    optimizer = tf.keras.optimizers.SGD(0.5)
    variables = conv.trainable_variables + dense.trainable_variables
    optimizer.build(variables)  # before the step is traced, as the trainer does (else it is traced twice)
  vectors = [conv.power_vector, dense.power_vector]
  initial = [v.numpy().copy() for v in vectors]
  for vector in vectors:
    locals_ = [np.asarray(x) for x in strategy.experimental_local_results(vector.value)]
    assert len(locals_) == 2
    np.testing.assert_array_equal(locals_[0], locals_[1])
  inputs = strategy.experimental_distribute_values_from_function(
      lambda ctx: tf.random.stateless_normal((2, HW, HW, CIN), (ctx.replica_id_in_sync_group, 7)))

  @tf.function
  def step(images):
    def replica_step(images):
      with tf.GradientTape() as tape:
        features = dense(tf.reshape(conv(images, training=True), (2, -1)), training=True)
        loss = tf.reduce_sum(features ** 2)
      optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    strategy.run(replica_step, args=(images,))

  for _ in range(3):
    step(inputs)
  for vector, start in zip(vectors, initial):
    locals_ = [np.asarray(x) for x in strategy.experimental_local_results(vector.value)]
    np.testing.assert_array_equal(locals_[0], locals_[1])
    assert np.abs(locals_[0] - start).max() > 1e-4


# ---------------------------------------------------------------------------------------------
# errors and the multiplier
# ---------------------------------------------------------------------------------------------
def test_bad_arguments_raise_value_error():
  with pytest.raises(ValueError, match="spectral"):
    sn.SNDense(3, mode="power")
  with pytest.raises(ValueError, match="'full'"):
    sn.SNConv2D(3, 3, padding="full")
  layer = sn.SNConv2D(3, 3, mode="conv")
  with pytest.raises(ValueError, match="static input resolution"):
    layer.build((None, None, None, 2))
  with pytest.raises(ValueError, match="-1"):
    sn.default_multiplier("conv", 8, -1.0)


def test_default_multiplier():
  np.testing.assert_allclose(sn.default_multiplier("conv", 8), 64 ** (1 / 8))
  np.testing.assert_allclose(sn.default_multiplier("conv", 10), 1.5157, atol=1e-4)
  assert sn.default_multiplier("matrix", 8) == 1.0
  assert sn.default_multiplier("conv_gain", 8) == 1.0
  assert sn.default_multiplier("matrix", 8, 1 / 0.55) == pytest.approx(1 / 0.55)


@pytest.mark.parametrize("mode", ["matrix", "conv"])
def test_mixed_precision_keeps_power_iteration_in_float32(mode):
  tf.keras.utils.set_random_seed(0)
  layer = sn.SNConv2D(COUT, 3, mode=mode, dtype="mixed_float16")
  layer.build((None, HW, HW, CIN))
  x = tf.random.normal((2, HW, HW, CIN))
  effective = layer.effective_kernel(training=False)  # with the vector before the update
  outputs = layer(x, training=True)
  assert outputs.dtype == tf.float16
  assert layer.kernel.dtype == "float32" and layer.power_vector.dtype == "float32"
  reference = make_layer(sn.SNConv2D, "none", 3, 1, "same")
  reference.kernel.assign(effective)
  reference.bias.assign(layer.bias.value)
  np.testing.assert_allclose(outputs.numpy(), reference(x).numpy(), rtol=2e-2, atol=2e-2)
