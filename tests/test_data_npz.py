"""`--dataset=npz`: image arrays in .npz files (shapes, ranges, presets, keys, dtypes, counts, sharding)."""

import re

import numpy as np
import pytest
import tensorflow as tf

from helpers import asset_path
from mmd_gan_tf.config import DataConfig
from mmd_gan_tf.data import make_dataset, npz, validate_data_config


def _write(tmp_path, name="images.npz", **arrays):
  path = tmp_path / name
  np.savez(path, **arrays)
  return str(path)


def _images(n, height=32, width=32, channels=3, seed=0):
  shape = (n, height, width) if channels is None else (n, height, width, channels)
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _config(spec, **kwargs):
  return DataConfig(**{"dataset": "npz", "data_dir": spec, "image_size": 32, "channels": 3, **kwargs})


def _first(cfg, batch_size=4, **kwargs):
  return next(iter(make_dataset(cfg, batch_size, seed=0, **kwargs))).numpy()


def test_square_images_come_back_exactly_in_both_ranges(tmp_path):
  images = _images(8)
  spec = _write(tmp_path, x_train=images)
  for image_range, to_pixels in (("tanh", lambda b: (b + 1) * 127.5), ("sigmoid", lambda b: b * 255)):
    batch = _first(_config(spec, image_range=image_range), batch_size=8, shuffle=False, repeat=False)
    assert batch.shape == (8, 32, 32, 3) and batch.dtype == np.float32
    np.testing.assert_allclose(to_pixels(batch), images, atol=1e-3)


def test_key_defaults_to_the_split_and_is_chosen_explicitly(tmp_path):
  train, test = _images(4, seed=1), _images(4, seed=2)
  spec = _write(tmp_path, x_train=train, x_test=test, y_train=np.arange(4))
  to_pixels = lambda b: np.round((b + 1) * 127.5)
  np.testing.assert_array_equal(to_pixels(_first(_config(spec), shuffle=False)), train)
  np.testing.assert_array_equal(to_pixels(_first(_config(spec, split="test"), shuffle=False)), test)
  np.testing.assert_array_equal(to_pixels(_first(_config(spec + ":x_test"), shuffle=False)), test)


def test_grayscale_arrays_and_the_mnist_pad_preset(tmp_path):
  digits = _images(6, 28, 28, channels=None)
  spec = _write(tmp_path, x_train=digits)
  batch = _first(_config(spec, channels=1, preprocessing="pad"), batch_size=6, shuffle=False)
  assert batch.shape == (6, 32, 32, 1)
  np.testing.assert_array_equal(batch[:, :2], -1.0)  # the 2 px black border
  np.testing.assert_allclose((batch[:, 2:30, 2:30, 0] + 1) * 127.5, digits, atol=1e-3)
  rgb = _first(_config(spec, channels=3, preprocessing="resize"), batch_size=6, shuffle=False)
  assert rgb.shape == (6, 32, 32, 3)
  np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_other_sizes_are_resized_by_the_presets(tmp_path):
  spec = _write(tmp_path, x_train=_images(4, 64, 48))
  for preset in ("default", "center", "random", "resize", "area"):
    batch = _first(_config(spec, preprocessing=preset))
    assert batch.shape == (4, 32, 32, 3) and -1.0 <= batch.min() and batch.max() <= 1.0, preset


@pytest.mark.parametrize("make_spec, message", [
    (lambda tmp: str(tmp / "missing.npz"), "does not exist"),
    (lambda tmp: str(tmp / "x.npy"), "must name a .npz file"),
    (lambda tmp: _write(tmp, x_train=_images(4)) + ":nope", "no array 'nope'"),
    (lambda tmp: _write(tmp, a=_images(4), b=_images(4)), r"split=train: .* has no array x_train; its image "
     r"arrays: \[.a., .b.\] \(give a split they name, or name the array as --data_dir=.*:KEY\)"),
    (lambda tmp: _write(tmp, v=np.zeros((2, 2, 8, 8, 3), np.uint8)),
     r"no array of images \(\[N, H, W\] or \[N, H, W, C\]\) in .*; arrays: v \[2, 2, 8, 8, 3\]"),
    (lambda tmp: _write(tmp, x_train=_images(4).astype(np.float32)), "dtype float32"),
    (lambda tmp: _write(tmp, x_train=_images(4, channels=4)), r"shape \(4, 32, 32, 4\)"),
    (lambda tmp: _write(tmp, x_train=np.zeros((0, 32, 32, 3), np.uint8)), "has no images"),
    (lambda tmp: _write(tmp, x_train=np.array([_images(1), "text"], dtype=object)),
     "holds object arrays, which cannot be read as images"),
])
def test_bad_files_are_one_clear_error(tmp_path, make_spec, message):
  (tmp_path / "x.npy").write_bytes(b"")
  spec = make_spec(tmp_path)
  with pytest.raises(ValueError, match=message):
    validate_data_config(_config(spec))
  npz.load_images.cache_clear()


def test_a_corrupt_file_is_named(tmp_path):
  path = tmp_path / "corrupt.npz"
  path.write_bytes(b"PK\x03\x04 not really a zip")
  with pytest.raises(ValueError, match="not a readable .npz"):
    validate_data_config(_config(str(path)))


def test_too_few_images_for_a_batch(tmp_path):
  spec = _write(tmp_path, x_train=_images(3))
  with pytest.raises(ValueError, match="3 images .* fewer than one batch of 4"):
    make_dataset(_config(spec), 4, seed=0)


def test_input_pipelines_read_disjoint_shards(tmp_path):
  images = np.stack([np.full((32, 32, 3), i, np.uint8) for i in range(8)])
  spec = _write(tmp_path, x_train=images)
  seen = []
  for pipeline in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline,
                                         num_replicas_in_sync=2)
    batches = make_dataset(_config(spec, image_range="sigmoid"), 2, seed=0, input_context=context,
                           repeat=False)
    seen.append({int(round(v)) for b in batches for v in (b.numpy()[:, 0, 0, 0] * 255)})
  assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(8))


def test_the_shared_mnist_and_cifar_arrays_train_directly():
  mnist = asset_path("data/mnist.npz")
  batch = _first(_config(str(mnist), channels=1, preprocessing="pad", split="test"))
  assert batch.shape == (4, 32, 32, 1) and batch.min() == -1.0
  cifar = asset_path("data/cifar10_20k.npz")
  assert _first(_config(str(cifar) + ":x_test")).shape == (4, 32, 32, 3)


@pytest.mark.parametrize("content, why", [(b"", "empty file"), (b"a text file\n", "not a zip archive of arrays")])
def test_an_empty_or_text_npz_is_one_line_naming_it(tmp_path, content, why):
  path = tmp_path / "data.npz"
  path.write_bytes(content)
  with pytest.raises(ValueError, match=re.escape(f"{path}' is not a readable .npz file ({why})")):
    npz.load_images(str(path))


def test_images_under_half_the_size_are_upscaled_with_one_warning(tmp_path, caplog):
  spec = _write(tmp_path, x_train=_images(8, height=4, width=4))
  with caplog.at_level("WARNING"):
    validate_data_config(_config(spec))
    validate_data_config(_config(spec))
  lines = [r.getMessage() for r in caplog.records if "upscaled more than 2x" in r.getMessage()]
  assert len(lines) == 1 and "4 x 4 px" in lines[0] and "--image_size=32" in lines[0]


def test_one_colour_image_without_its_batch_axis_is_named_not_read_as_thin_grayscale_images(tmp_path):
  spec = _write(tmp_path, x_train=_images(1)[0])  # [32, 32, 3]
  with pytest.raises(ValueError, match=r"shape \(32, 32, 3\), which reads as 32 grayscale images 3 px wide; one "
                                       r"colour image is \[1, 32, 32, 3\]"):
    validate_data_config(_config(spec))


def test_held_out_images_are_checked_when_the_config_is_built_naming_the_eval_flags(tmp_path):
  """--eval_data_dir / --eval_split: a bad one is named at once, not as 'data_dir' at the first evaluation."""
  from flags import build as config_builder  # pylint: disable=import-outside-toplevel
  train = _write(tmp_path, x_train=_images(8), x_test=_images(8, seed=1))
  notes = tmp_path / "notes.txt"
  notes.write_text("mine")
  common = dict(dataset="npz", data_dir=train, workdir=str(tmp_path / "run"), eval_every=10,
                batch_size=8)
  with pytest.raises(ValueError, match=rf"^--eval_data_dir={re.escape(str(notes))}: the held-out "
                     "images for KID cannot be read: "):
    config_builder.build_config(dict(common, eval_data_dir=str(notes)))
  with pytest.raises(ValueError, match=r"^--eval_split=validation: the held-out images for KID cannot be read: "
                     r".*x_train.*x_test"):
    config_builder.build_config(dict(common, eval_split="validation"))
  config_builder.build_config(dict(common, eval_split="test"))  # x_test is there


def test_too_few_held_out_images_name_the_count_flag(tmp_path):
  from mmd_gan_tf.data import TooFewImages, first_images  # pylint: disable=import-outside-toplevel
  cfg = _config(_write(tmp_path, x_test=_images(6)), split="test")
  with pytest.raises(TooFewImages, match=r"npz:test of .*images.npz has 4 images \(in whole batches of 4\), 8 "
                     "requested"):
    list(first_images(cfg, 8, 4))


def test_a_split_that_the_source_never_reads_is_refused(tmp_path):
  """--eval_split with a named npz array or a folder computed KID on the training images (exit 0)."""
  from flags import build as config_builder  # pylint: disable=import-outside-toplevel
  train = _write(tmp_path, x_train=_images(8), x_test=_images(8, seed=1))
  common = dict(dataset="npz", workdir=str(tmp_path / "run"), eval_every=10,
                batch_size=8)
  with pytest.raises(ValueError, match=r"--eval_split=test has no effect: --data_dir=.*:x_train names its array"):
    config_builder.build_config(dict(common, data_dir=train + ":x_train", eval_split="test"))
  with pytest.raises(ValueError, match=r"--split=test has no effect: --data_dir=.*:x_train names its array"):
    config_builder.build_config(dict(common, data_dir=train + ":x_train", split="test"))
  images = tmp_path / "images"
  images.mkdir()
  with pytest.raises(ValueError, match=r"--eval_split=test has no effect: --dataset=folder has no splits"):
    config_builder.build_config(dict(common, dataset="folder", data_dir=str(images), eval_split="test"))
  config_builder.build_config(dict(common, data_dir=train, eval_split="test"))  # x_test
  config_builder.build_config(dict(common, data_dir=train + ":x_train", eval_data_dir=train + ":x_test"))


def test_a_dataset_smaller_than_one_batch_is_refused_when_the_config_is_built(tmp_path):
  """A dry run accepted 8 images for a batch of 16; the run refused them when it started."""
  from flags import build as config_builder  # pylint: disable=import-outside-toplevel
  common = dict(dataset="npz", data_dir=_write(tmp_path, x_train=_images(8)), workdir=str(tmp_path / "run"),
                inception_weights="none")
  with pytest.raises(ValueError, match=r"^--batch_size=16: data_dir .* has 8 images \(8 per input pipeline\), "
                     "fewer than one batch of 16; lower --batch_size or give more images$"):
    config_builder.build_config(dict(common, batch_size=16))
  config_builder.build_config(dict(common, batch_size=8))
  config_builder.build_config(dict(common, batch_size=16, cpu_devices=2))  # 8 per replica
