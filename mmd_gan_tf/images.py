"""Image value ranges and conversions, in one place: data, samples, exports and metrics use these.

A range names how float images are stored: "tanh" [-1, 1] (the generators' tanh output and the data
scaled to it), "sigmoid" [0, 1], and, for the metrics only, "pixels" [0, 255]. uint8 images are pixels.
"""

import math

import numpy as np
import tensorflow as tf

# The ranges of training data and generator outputs (`--image_range`); "pixels" is a metrics input range.
IMAGE_RANGES = ("tanh", "sigmoid")
_PIXEL_SCALE = {"tanh": (127.5, 127.5), "sigmoid": (255.0, 0.0), "pixels": (1.0, 0.0)}  # pixels = a*x + b
# Every range a float image may come in (the metrics also read pixels).
ALL_RANGES = tuple(_PIXEL_SCALE)


def check_range(image_range: str, allowed=IMAGE_RANGES) -> str:
  if image_range not in allowed:
    raise ValueError(f"image_range {image_range!r} is not one of {tuple(allowed)}")
  return image_range


def from_unit(images: tf.Tensor, image_range: str) -> tf.Tensor:
  """Float images in [0, 1] -> the range `image_range` (tanh: [-1, 1]; sigmoid: unchanged)."""
  check_range(image_range)
  return images * 2.0 - 1.0 if image_range == "tanh" else images


def to_pixels(images: tf.Tensor, image_range: str, quantize: bool = False) -> tf.Tensor:
  """Float images in `image_range` (tanh, sigmoid or pixels) -> float32 pixels in [0, 255], clipped.

  With `quantize`, rounded to whole values, as saving the images as 8-bit files would.
  """
  scale, offset = _PIXEL_SCALE[check_range(image_range, ALL_RANGES)]
  pixels = tf.clip_by_value(tf.cast(images, tf.float32) * scale + offset, 0.0, 255.0)
  return tf.round(pixels) if quantize else pixels


def to_uint8(images: tf.Tensor, image_range: str) -> tf.Tensor:
  """Float images in [-1, 1] ("tanh") or [0, 1] ("sigmoid") -> uint8 [0, 255]."""
  return tf.cast(to_pixels(images, check_range(image_range), quantize=True), tf.uint8)


def image_grid(images: np.ndarray) -> np.ndarray:
  """Tiles uint8 images [n, h, w, c] into one [rows*h, cols*w, c] image (cols = ceil(sqrt(n)))."""
  n, h, w, c = images.shape
  cols = int(math.ceil(math.sqrt(n)))
  rows = int(math.ceil(n / cols))
  grid = np.zeros((rows * h, cols * w, c), dtype=images.dtype)
  for i in range(n):
    r, q = divmod(i, cols)
    grid[r * h:(r + 1) * h, q * w:(q + 1) * w] = images[i]
  return grid
