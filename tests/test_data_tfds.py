"""TFDS datasets through their real pipelines, offline with tfds.testing.mock_data (never a download)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from mmd_gan_tf.config import DataConfig
from mmd_gan_tf.data import make_dataset, preprocessing

CASES = [  # dataset, preprocessing, image_size, channels, image_range
    ("mnist", "default", 32, 1, "sigmoid"),
    ("mnist", "li", 32, 3, "tanh"),
    ("mnist", "pad", 28, 1, "tanh"),
    ("cifar10", "default", 32, 3, "tanh"),
    ("cifar10", "binkowski", 32, 3, "sigmoid"),
    ("stl10", "lanczos", 48, 3, "tanh"),
    ("stl10", "area", 48, 3, "sigmoid"),
    ("celeb_a", "wang", 64, 3, "tanh"),
    ("celeb_a", "binkowski", 64, 3, "sigmoid"),
    ("celeb_a", "li", 32, 3, "tanh"),
]


@pytest.mark.parametrize("dataset,preprocessing,size,channels,image_range", CASES)
def test_tfds_shape_dtype_range(dataset, preprocessing, size, channels, image_range):
  cfg = DataConfig(dataset=dataset, preprocessing=preprocessing, image_size=size, channels=channels,
                   image_range=image_range)
  with tfds.testing.mock_data(num_examples=6):
    batches = list(make_dataset(cfg, 4, 0, repeat=False).take(2))
  assert len(batches) == 1  # 6 examples, batch 4, drop_remainder
  images = batches[0].numpy()
  assert images.shape == (4, size, size, channels) and images.dtype == np.float32
  low = -1.0 if image_range == "tanh" else 0.0
  assert images.min() >= low and images.max() <= 1.0 and images.std() > 0.01
  # Stored as 8-bit levels after preprocessing.
  levels = (images - low) / (1.0 - low) * 255.0
  np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)


def _fixed_images(images, calls):
  """An as_dataset_fn for mock_data that serves `images` and records the requested splits."""
  def as_dataset(self, split, *args, **kwargs):
    del self, args, kwargs
    calls.append(split)
    return tf.data.Dataset.from_tensor_slices({"image": images, "label": np.zeros(len(images), np.int64)})
  return as_dataset


def test_mnist_pad_centres_the_digit_and_repeats_channels():
  digits = np.random.RandomState(0).randint(0, 256, [4, 28, 28, 1]).astype(np.uint8)
  cfg = DataConfig(dataset="mnist", image_size=32, channels=3, image_range="sigmoid")
  with tfds.testing.mock_data(as_dataset_fn=_fixed_images(digits, [])):
    images = next(iter(make_dataset(cfg, 4, 0, shuffle=False))).numpy()
  expected = np.zeros([4, 32, 32, 3], np.float32)
  expected[:, 2:30, 2:30, :] = digits / 255.0
  np.testing.assert_allclose(images, expected, atol=1e-6)


@pytest.mark.parametrize("dataset,preprocessing,split", [("cifar10", "default", "train"),
                                                         ("cifar10", "binkowski", "train+test"),
                                                         ("stl10", "default", "unlabelled")])
def test_preset_chooses_the_papers_split(dataset, preprocessing, split):
  calls = []
  shape = [96, 96, 3] if dataset == "stl10" else [32, 32, 3]
  images = np.zeros([4] + shape, np.uint8)
  cfg = DataConfig(dataset=dataset, preprocessing=preprocessing, image_size=32 if dataset == "cifar10" else 48)
  with tfds.testing.mock_data(as_dataset_fn=_fixed_images(images, calls)):
    make_dataset(cfg, 2, 0)
  assert calls == [split]


def test_celeb_a_wang_is_resize_then_centre_crop():
  # A vertical gradient survives the resize; the centre crop of 88 rows keeps rows 12..75.
  rows = np.linspace(0, 255, 218).astype(np.uint8)
  faces = np.tile(rows[None, :, None, None], [2, 1, 178, 3])
  cfg = DataConfig(dataset="celeb_a", preprocessing="wang", image_size=64, image_range="sigmoid")
  with tfds.testing.mock_data(as_dataset_fn=_fixed_images(faces, [])):
    images = next(iter(make_dataset(cfg, 2, 0, shuffle=False))).numpy()
  column = images[0, :, 32, 0]
  expected = (np.arange(12, 76) + 0.5) / 88 * 218 - 0.5  # source row at each output row centre
  np.testing.assert_allclose(column, expected / 217, atol=3 / 255)


def test_celeb_a_binkowski_is_random_but_seeded():
  faces = np.random.RandomState(0).randint(0, 256, [4, 218, 178, 3]).astype(np.uint8)
  cfg = DataConfig(dataset="celeb_a", preprocessing="binkowski", image_size=32, image_range="sigmoid")

  def first_batch(seed):
    with tfds.testing.mock_data(as_dataset_fn=_fixed_images(faces, [])):
      return next(iter(make_dataset(cfg, 4, seed, shuffle=False))).numpy()
  np.testing.assert_array_equal(first_batch(1), first_batch(1))
  assert np.abs(first_batch(1) - first_batch(2)).max() > 0.1


def test_missing_tfds_data_without_download_is_a_clear_error(tmp_path):
  cfg = DataConfig(dataset="cifar10", tfds_data_dir=str(tmp_path), tfds_download=False)
  with pytest.raises(ValueError, match="cifar10.*not prepared"):
    make_dataset(cfg, 4, 0)


def test_unknown_preset_names_the_value():
  with pytest.raises(ValueError, match="'nope'.*celeb_a"):
    make_dataset(DataConfig(dataset="celeb_a", preprocessing="nope"), 4, 0)


def test_centre_crop_matches_numpy():
  image = np.random.RandomState(0).rand(9, 12, 3).astype(np.float32)
  np.testing.assert_array_equal(preprocessing.centre_crop(tf.constant(image), 4, 5).numpy(), image[2:6, 3:8])
