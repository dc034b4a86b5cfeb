"""Image ranges and conversions (mmd_gan_tf/images.py) against float64 numpy."""

import numpy as np
import pytest
import tensorflow as tf

from mmd_gan_tf import images

_VALUES = np.linspace(-1.3, 1.3, 53)  # beyond both ranges' ends: clipping is part of the contract


@pytest.mark.parametrize("image_range, low, high", [("tanh", -1.0, 1.0), ("sigmoid", 0.0, 1.0),
                                                   ("pixels", 0.0, 255.0)])
def test_to_pixels_is_the_affine_map_onto_0_255_clipped(image_range, low, high):
  x = _VALUES * (high - low) + low
  expected = np.clip((x - low) / (high - low) * 255.0, 0.0, 255.0)
  got = images.to_pixels(tf.constant(x, tf.float32), image_range).numpy()
  np.testing.assert_allclose(got, expected, atol=1e-4)
  quantized = images.to_pixels(tf.constant(x, tf.float32), image_range, quantize=True).numpy()
  np.testing.assert_allclose(quantized, np.round(expected), atol=1.0)  # float32 rounding at .5 ties
  assert np.all(quantized == np.round(quantized))


@pytest.mark.parametrize("image_range", images.IMAGE_RANGES)
def test_from_unit_and_to_uint8_round_trip(image_range):
  unit = np.linspace(0.0, 1.0, 256)
  x = images.from_unit(tf.constant(unit, tf.float32), image_range)
  expected = unit * 2 - 1 if image_range == "tanh" else unit
  np.testing.assert_allclose(x.numpy(), expected, atol=1e-6)
  np.testing.assert_array_equal(images.to_uint8(x, image_range).numpy(), np.round(unit * 255).astype(np.uint8))


def test_bad_ranges_name_the_value():
  with pytest.raises(ValueError, match="'minus_one' is not one of"):
    images.to_uint8(tf.zeros([2]), "minus_one")
  with pytest.raises(ValueError, match="'pixels' is not one of"):
    images.from_unit(tf.zeros([2]), "pixels")  # a metrics range, not a data range


def test_image_grid_tiles_row_major():
  tiles = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((5, 2, 3, 1), np.uint8)
  grid = images.image_grid(tiles)
  assert grid.shape == (2 * 2, 3 * 3, 1)  # 5 images -> 3 columns, 2 rows
  assert grid[0, 0, 0] == 0 and grid[0, 3, 0] == 1 and grid[0, 6, 0] == 2 and grid[2, 0, 0] == 3
  assert grid[2, 3, 0] == 4 and grid[2, 6, 0] == 0  # the unused cell stays black
