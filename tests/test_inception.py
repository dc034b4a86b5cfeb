"""The FID Inception-v3: geometry, TF1 resize, reference features, strategy, weights loading."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import asset_path
from mmd_gan_tf.metrics import features
from mmd_gan_tf.metrics import inception
from mmd_gan_tf.metrics import inception_weights

WEIGHTS = "inception/fid_inception_v3_2015_12_05.npz"
WEIGHTS_SHA256 = "9d6b62bbaa4ca7bc080f487d23f4f8b982f86c2574e00956b431740ff628dea3"


@pytest.fixture(scope="module")
def weights():
  return inception_weights.load_inception_weights(str(asset_path(WEIGHTS)))


@pytest.fixture(scope="module")
def model(weights):
  return inception.build_fid_inception(weights)


@pytest.fixture(scope="module")
def extractor(model):
  return features.make_extractor(model)


@pytest.fixture(scope="module")
def reference():
  with np.load(asset_path("inception/reference_features.npz")) as data:
    return {key: data[key] for key in data.files}


def _relative_l2(actual, expected):
  return np.linalg.norm(actual - expected) / np.linalg.norm(expected)


def test_layer_geometry_matches_layers_json():
  with open(asset_path("inception/fid_inception_v3_2015_12_05.layers.json")) as f:
    layers = json.load(f)
  assert list(layers) == list(inception.LAYERS)
  for scope, spec in inception.LAYERS.items():
    assert list(spec.kernel_hwio) == layers[scope]["kernel_hwio"], scope
    assert spec.stride == layers[scope]["stride"], scope
    assert list(spec.padding_hw) == layers[scope]["padding_hw"], scope


def _tf1_resize_oracle(image, size):
  """float64 TF1 bilinear resize (align_corners=False, half_pixel_centers=False): src = dst * in / out."""
  height, width = image.shape[:2]
  def axis(n_in):
    src = np.arange(size) * (n_in / size)
    low = np.floor(src).astype(int)
    return low, np.minimum(low + 1, n_in - 1), src - low
  y0, y1, fy = axis(height)
  x0, x1, fx = axis(width)
  top = image[y0][:, x0] * (1 - fx)[None, :, None] + image[y0][:, x1] * fx[None, :, None]
  bottom = image[y1][:, x0] * (1 - fx)[None, :, None] + image[y1][:, x1] * fx[None, :, None]
  return top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]


def test_resize_is_tf1_bilinear_and_not_tf_image_resize():
  image = np.random.default_rng(0).uniform(0, 255, size=(1, 7, 5, 3))
  resized = inception.resize_tf1_bilinear(tf.constant(image, tf.float32), size=13).numpy()[0]
  np.testing.assert_allclose(resized, _tf1_resize_oracle(image[0], 13), rtol=1e-5, atol=1e-3)
  modern = tf.image.resize(tf.constant(image, tf.float32), [13, 13]).numpy()[0]
  assert np.abs(modern - resized).max() > 1.0


def test_model_structure(model, weights):
  assert len(model.conv_layers) == 94
  layer = model.conv_layers[0]
  np.testing.assert_array_equal(layer.kernel.numpy(), weights.convs["conv"]["kernel"])
  assert not model.trainable_weights
  assert weights.sha256 == WEIGHTS_SHA256
  assert not model.has_logits  # the FID .npz has no classifier
  with pytest.raises(ValueError, match="softmax"):
    model.logits(tf.zeros([1, 2048]))


@pytest.mark.parametrize("name", ["cifar_test_first16", "random160"])
def test_reproduces_reference_features(extractor, reference, name):
  pixels = tf.constant(reference[f"{name}_uint8"], tf.float32)
  actual = extractor(pixels).numpy()
  assert actual.shape == (len(pixels), 2048) and actual.dtype == np.float32
  assert _relative_l2(actual, reference[f"{name}_features"]) < 1e-4


def test_tf_image_resize_would_not_reproduce_them(extractor, reference):
  pixels = tf.constant(reference["cifar_test_first16_uint8"], tf.float32)
  # Pre-resized to 299, the network's own 299 -> 299 TF1 resize is the identity.
  actual = extractor(tf.image.resize(pixels, [299, 299], method="bilinear")).numpy()
  assert _relative_l2(actual, reference["cifar_test_first16_features"]) > 0.05


def test_runs_under_mirrored_strategy(weights, reference, two_replica_strategy):
  with two_replica_strategy.scope():
    replicated = inception.build_fid_inception(weights)
  pixels = tf.constant(reference["random160_uint8"][:2], tf.float32)  # one image per replica
  dataset = two_replica_strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensor_slices(pixels).batch(2))

  @tf.function
  def step(batch):
    return two_replica_strategy.run(replicated, args=(batch,))

  per_replica = step(next(iter(dataset)))
  actual = np.concatenate([t.numpy() for t in two_replica_strategy.experimental_local_results(
      per_replica)])
  assert _relative_l2(actual, reference["random160_features"][:2]) < 1e-4


def test_float32_under_mixed_precision_policy():
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy("mixed_float16")
  try:
    net = inception.FidInceptionV3()
  finally:
    keras.config.set_dtype_policy(previous)
  assert all(layer.compute_dtype == "float32" for layer in net.conv_layers)
  assert net.conv_layers[0].kernel.dtype == "float32"


def test_to_inception_pixels():
  tanh = tf.constant([[[[-1.0], [0.0]], [[1.0], [1.5]]]])
  pixels = inception.to_inception_pixels(tanh, "tanh").numpy()
  assert pixels.shape == (1, 2, 2, 3)
  np.testing.assert_array_equal(pixels[0, :, :, 0], [[0, 128], [255, 255]])  # round(127.5) = 128
  np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])
  sigmoid = inception.to_inception_pixels(tf.constant([[[[0.5, 0.0, 1.0]]]]), "sigmoid", quantize=False)
  np.testing.assert_allclose(sigmoid.numpy(), [[[[127.5, 0.0, 255.0]]]])
  uint8 = inception.to_inception_pixels(tf.constant([[[[7, 8, 9]]]], tf.uint8), "ignored")
  np.testing.assert_array_equal(uint8.numpy(), [[[[7.0, 8.0, 9.0]]]])
  with pytest.raises(ValueError, match="image_range"):
    inception.to_inception_pixels(tanh, "minus_one_to_one")
  with pytest.raises(ValueError, match="channels"):
    inception.to_inception_pixels(tf.zeros([1, 2, 2, 2]), "tanh")


def test_extract_features_batches_and_ranges(model, extractor, reference):
  images = reference["random160_uint8"][:3]
  whole, _ = features.extract_features(model, images, batch_size=3, extractor=extractor)
  batched, _ = features.extract_features(model, images, batch_size=2, extractor=extractor)
  np.testing.assert_allclose(batched, whole, rtol=1e-4, atol=1e-5)
  as_tanh = images.astype(np.float32) / 127.5 - 1.0
  from_tanh, _ = features.extract_features(model, [as_tanh], image_range="tanh", extractor=extractor)
  np.testing.assert_allclose(from_tanh, whole, rtol=1e-4, atol=1e-5)


def _small_arrays(weights):
  return inception_weights.arrays_from_weights(weights)


def test_loader_rejects_bad_weights(weights, tmp_path):
  arrays = dict(_small_arrays(weights))
  arrays["mixed_4/tower/conv_1/kernel"] = np.zeros((7, 1, 128, 128), np.float32)  # transposed
  with pytest.raises(ValueError, match="mixed_4/tower/conv_1/kernel"):
    inception_weights.weights_from_arrays(arrays, "x", "test")
  del arrays["mixed_10/tower_2/conv/beta"]
  arrays["mixed_4/tower/conv_1/kernel"] = weights.convs["mixed_4/tower/conv_1"]["kernel"]
  with pytest.raises(ValueError, match="mixed_10/tower_2/conv/beta"):
    inception_weights.weights_from_arrays(arrays, "x", "test")
  with pytest.raises(FileNotFoundError):
    inception_weights.load_inception_weights(str(tmp_path / "missing.npz"))
  (tmp_path / "weights.h5").write_bytes(b"x")
  with pytest.raises(ValueError, match="expected a .npz, .pb or .tgz"):
    inception_weights.load_inception_weights(str(tmp_path / "weights.h5"))


def test_cached_conversion_is_used_without_download(weights, tmp_path):
  inception_weights.save_npz(weights, tmp_path / inception_weights.CONVERTED_NAME)
  cached = inception_weights.load_inception_weights(None, cache_dir=tmp_path, download=False)
  np.testing.assert_array_equal(cached.convs["mixed_10/conv"]["kernel"],
                                weights.convs["mixed_10/conv"]["kernel"])


def test_offline_error_says_how_to_supply_the_file(tmp_path, monkeypatch):
  with pytest.raises(RuntimeError, match="--inception_weights="):
    inception_weights.load_inception_weights(None, cache_dir=tmp_path, download=False)
  # A local port nobody listens on: the "download" fails at once, no network is touched.
  monkeypatch.setattr(inception_weights, "INCEPTION_URL", "http://127.0.0.1:9/inception.tgz")
  with pytest.raises(RuntimeError, match="inception-2015-12-05.tgz"):
    inception_weights.load_inception_weights(None, cache_dir=tmp_path)
  assert not (tmp_path / inception_weights.CONVERTED_NAME).exists()
