"""The built-in `shapes` dataset: determinism, ranges, channels, sharding."""

import numpy as np
import pytest
import tensorflow as tf

from helpers import colour_data_config as DataConfig  # colour images unless a test says otherwise
from mmd_gan_tf.data import make_dataset, validate_data_config
from mmd_gan_tf.data import shapes


def _take(cfg, batch_size=8, seed=0, batches=2, **kwargs):
  dataset = make_dataset(cfg, batch_size, seed, **kwargs)
  return np.concatenate([b.numpy() for b in dataset.take(batches)])


def test_deterministic_by_seed():
  cfg = DataConfig()
  np.testing.assert_array_equal(_take(cfg, seed=3), _take(cfg, seed=3))


def test_different_seeds_differ():
  cfg = DataConfig()
  first, second = _take(cfg, seed=0), _take(cfg, seed=1)
  assert np.abs(first - second).mean() > 0.1


def test_examples_within_a_batch_differ():
  images = _take(DataConfig(), batch_size=16, batches=1)
  flat = images.reshape(len(images), -1)
  distances = np.abs(flat[:, None] - flat[None]).mean(-1)
  assert distances[~np.eye(len(images), dtype=bool)].min() > 0.01


def test_stream_independent_of_batch_size():
  # Same examples; the vectorised rendering may round differently (~1e-6) for other batch shapes.
  cfg = DataConfig()
  np.testing.assert_allclose(_take(cfg, batch_size=4, batches=4), _take(cfg, batch_size=8, batches=2), atol=1e-5)


def test_splits_differ():
  train = _take(DataConfig(split="train"))
  test = _take(DataConfig(split="test"))
  assert np.abs(train - test).mean() > 0.1


@pytest.mark.parametrize("image_range,low,high", [("tanh", -1.0, 1.0), ("sigmoid", 0.0, 1.0)])
def test_shape_dtype_range(image_range, low, high):
  cfg = DataConfig(image_range=image_range)
  dataset = make_dataset(cfg, 8, 0)
  assert dataset.element_spec.shape.as_list() == [8, 32, 32, 3]
  assert dataset.element_spec.dtype == tf.float32
  images = _take(cfg)
  assert images.dtype == np.float32
  assert images.min() >= low and images.max() <= high
  # The images use the range, not a sliver of it.
  assert images.min() < low + 0.25 * (high - low) and images.max() > high - 0.25 * (high - low)


def test_each_image_has_a_shape_on_its_background():
  images = _take(DataConfig(image_range="sigmoid"), batch_size=32, batches=1)
  corner = images[:, :1, :1, :]  # the background colour
  differs = np.abs(images - corner).max(-1) > 0.2
  fraction = differs.reshape(len(images), -1).mean(-1)
  assert (fraction > 0.01).all() and (fraction < 0.95).all()


@pytest.mark.parametrize("image_size", [16, 64])
def test_channels_1_and_other_sizes(image_size):
  cfg = DataConfig(channels=1, image_size=image_size)
  images = _take(cfg, batches=1)
  assert images.shape == (8, image_size, image_size, 1)
  assert images.min() >= -1.0 and images.max() <= 1.0
  assert images.std() > 0.1


def test_grayscale_is_luminance_of_rgb():
  rgb = _take(DataConfig(image_range="sigmoid"), batches=1)
  gray = _take(DataConfig(image_range="sigmoid", channels=1), batches=1)
  luminance = rgb @ np.array([0.2989, 0.5870, 0.1140], np.float32)
  np.testing.assert_allclose(gray[..., 0], luminance, atol=2e-3)


def test_finite_epoch_without_repeat():
  cfg = DataConfig()
  assert make_dataset(cfg, 10, 0, repeat=False).cardinality().numpy() == shapes.EPOCH_SIZE // 10
  assert make_dataset(cfg, 10, 0).cardinality().numpy() == tf.data.INFINITE_CARDINALITY
  small = shapes.shapes_dataset(8, 3, 10, 0, repeat=False, epoch_size=35)
  assert sum(1 for _ in small) == 3


def test_replicas_get_distinct_examples(two_replica_strategy):
  cfg = DataConfig(image_range="sigmoid")
  global_batch = 8

  def dataset_fn(ctx):
    return make_dataset(cfg, ctx.get_per_replica_batch_size(global_batch), 0, input_context=ctx)

  distributed = two_replica_strategy.distribute_datasets_from_function(dataset_fn)
  per_replica = next(iter(distributed))
  first, second = [t.numpy() for t in two_replica_strategy.experimental_local_results(per_replica)]
  assert first.shape == second.shape == (4, 32, 32, 3)
  # One worker = one input pipeline; its replicas take consecutive batches: examples 0..3 and 4..7.
  single = _take(cfg, batch_size=4, batches=2)
  np.testing.assert_array_equal(first, single[:4])
  np.testing.assert_array_equal(second, single[4:])


def test_input_pipelines_read_disjoint_shards():
  cfg = DataConfig(image_range="sigmoid")
  contexts = [tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=p, num_replicas_in_sync=2)
              for p in range(2)]
  first, second = [_take(cfg, batch_size=4, batches=1, input_context=ctx) for ctx in contexts]
  # Pipeline p of 2 takes examples p, p + 2, ...: together they are examples 0..7 of the single stream.
  single = _take(cfg, batch_size=8, batches=1)
  np.testing.assert_allclose(first, single[0::2], atol=1e-5)
  np.testing.assert_allclose(second, single[1::2], atol=1e-5)
  assert np.abs(first - second).mean() > 0.05


def test_render_primitives_match_geometry():
  # One white disc of known centre and radius on black: area and centroid agree with the geometry.
  params = np.zeros([1, 28], np.float32)
  params[0, 3] = 0.0  # one shape
  shape = [0.0, 0.5, 0.5, 0.5, 0.0, 0.5, 0.5, 0.5]  # disc, centre (0.5, 0.5), radius 0.21
  params[0, 4:12] = shape
  image = shapes.render(tf.constant(params), 64, 3).numpy()[0, ..., 0]
  radius = 0.12 + 0.18 * 0.5
  area = image.mean()  # colour 0.5 on background 0: coverage * 0.5
  np.testing.assert_allclose(area / 0.5, np.pi * radius ** 2, rtol=0.02)
  ys, xs = np.mgrid[0:64, 0:64] + 0.5
  np.testing.assert_allclose([(image * xs).sum() / image.sum(), (image * ys).sum() / image.sum()], [32, 32],
                             atol=0.05)


def test_validate_rejects_bad_values():
  with pytest.raises(ValueError, match="nope"):
    validate_data_config(DataConfig(dataset="nope"))
  with pytest.raises(ValueError, match="relu"):
    validate_data_config(DataConfig(image_range="relu"))
  with pytest.raises(ValueError, match="channels"):
    validate_data_config(DataConfig(channels=2))
  with pytest.raises(ValueError, match=r"image_size=2: is outside \[4, 1024\]"):
    validate_data_config(DataConfig(image_size=2))
  with pytest.raises(ValueError, match="bogus"):
    validate_data_config(DataConfig(split="bogus"))
  with pytest.raises(ValueError, match="batch_size"):
    make_dataset(DataConfig(), 0, 0)


def test_simple_style_is_one_large_bright_shape_on_black():
  images = _take(DataConfig(image_range="sigmoid", shapes_style="simple"), batch_size=32, batches=1)
  np.testing.assert_array_equal(images[:, :2, :2, :], 0.0)  # black corners
  lit = images.max(-1) > 0.3
  fraction = lit.reshape(len(images), -1).mean(-1)
  assert (fraction > 0.08).all() and (fraction < 0.6).all()  # one large shape, never the whole image
  # Exactly one connected bright region per image: the rows and columns it covers are contiguous.
  for mask in lit:
    for axis in (0, 1):
      covered = np.flatnonzero(mask.any(axis=axis))
      assert covered[-1] - covered[0] + 1 == len(covered)
  with pytest.raises(ValueError, match="shapes_style"):
    validate_data_config(DataConfig(shapes_style="fancy"))


def test_digits_style_is_one_white_digit_on_black():
  images = _take(DataConfig(image_range="sigmoid", shapes_style="digits", channels=3), batch_size=32, batches=1)
  assert images.shape == (32, 32, 32, 3) and images.min() >= 0.0 and images.max() <= 1.0
  np.testing.assert_array_equal(images[..., 0], images[..., 2])  # grey: white strokes on black
  np.testing.assert_array_equal(images[:, :2, :2, :], 0.0)
  assert (images.reshape(32, -1).max(-1) == 1.0).all()  # every example has solid stroke pixels
  lit = (images[..., 0] > 0.5).reshape(32, -1).mean(-1)
  assert (lit > 0.04).all() and (lit < 0.4).all()
  one_channel = _take(DataConfig(image_range="tanh", shapes_style="digits", channels=1), batch_size=32, batches=1)
  assert one_channel.shape == (32, 32, 32, 1) and one_channel.min() == -1.0


def _segment_distance_oracle(px, py, segments):
  """float64 brute force: distance from each point to the nearest segment (x0, y0, x1, y1)."""
  best = np.full(px.shape, np.inf)
  for x0, y0, x1, y1 in segments.astype(np.float64):
    ex, ey = x1 - x0, y1 - y0
    h = np.clip(((px - x0) * ex + (py - y0) * ey) / max(ex * ex + ey * ey, 1e-12), 0.0, 1.0)
    best = np.minimum(best, np.hypot(px - x0 - h * ex, py - y0 - h * ey))
  return best


def test_digit_stroke_distance_matches_a_float64_oracle():
  from mmd_gan_tf.data import digits  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  px, py = rng.uniform(-0.6, 0.6, [2, 1, 9, 9, 1])
  for digit in (0, 1, 4, 8):
    segments = digits.SEGMENTS[digit]
    segments = segments[segments[:, 0] < 100]  # drop the padding
    got = digits._segment_distance(tf.constant(px, tf.float32), tf.constant(py, tf.float32),  # pylint: disable=protected-access
                                   tf.constant(segments[None, None, None], tf.float32)).numpy()
    np.testing.assert_allclose(got[0], _segment_distance_oracle(px[0, :, :, 0], py[0, :, :, 0], segments),
                               atol=2e-6)


def test_all_ten_digits_are_drawn_and_differ():
  from mmd_gan_tf.data import digits  # pylint: disable=g-import-not-at-top
  params = tf.stack([shapes.example_params(i, 0) for i in range(300)])
  classes = np.minimum((params[:, 0].numpy() * 10).astype(int), 9)
  images = digits.render_digits(params, 32).numpy()
  assert sorted(set(classes)) == list(range(10))
  means = np.stack([images[classes == c].mean(0) for c in range(10)])
  ink = means.reshape(10, -1).sum(-1)
  assert ink.argmin() == 1 and ink[8] > 1.3 * ink[1]  # a 1 has the least ink, an 8 much more
  apart = np.abs(means[:, None] - means[None]).mean((-1, -2))
  assert apart[~np.eye(10, dtype=bool)].min() > 0.02  # every pair of class means differs
