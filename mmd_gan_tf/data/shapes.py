"""The built-in `shapes` dataset: procedurally drawn images, rendered in tf.data (nothing to download).

Three styles: `digits`, one stroke-drawn digit 0-9 in white on black, like MNIST (`digits.py`); `simple`,
one large bright disc, square or triangle on black; `mixed`, 1-3 shapes (disc, square, equilateral
triangle; random centre, size, rotation and colour) painted in order over a plain random background
colour. Edges are anti-aliased. Example `i` of a stream is
a pure function of `(seed, split, i)`: its parameters come from stateless random ops keyed by
`fold_in([seed, split_id], i)`, so the stream is the same whatever the batch size, the parallelism or the
number of input pipelines (pipeline `p` of `n` takes examples `p, p + n, p + 2n, ...`).

Cost: the per-example map draws one vector of 28 uniforms; rendering is vectorised over the batch
(a few signed-distance evaluations per pixel), so a 64 x 32 x 32 batch costs well under a millisecond.
"""

import math
from typing import Optional

import tensorflow as tf

from mmd_gan_tf.config import ConfigError
from mmd_gan_tf.data import digits

MAX_SHAPES = 3
SHAPE_KINDS = ("disc", "square", "triangle")
EPOCH_SIZE = 50_000  # examples in one pass when repeat=False (the stream is otherwise endless)
_PARAMS_PER_SHAPE = 8  # kind, centre x, centre y, size, angle, colour r, g, b
_NUM_PARAMS = 3 + 1 + MAX_SHAPES * _PARAMS_PER_SHAPE  # background rgb, shape count, shapes
_SPLIT_IDS = {"train": 0, "test": 1, "validation": 2}


def split_id(split: str) -> int:
  """Integer that keys the random stream of a split (train, test, validation)."""
  if split not in _SPLIT_IDS:
    raise ConfigError("data.split", split, f"shapes has no such split; expected one of {sorted(_SPLIT_IDS)}")
  return _SPLIT_IDS[split]


def example_params(index: tf.Tensor, seed: int, split: str = "train") -> tf.Tensor:
  """The random parameters of one example: float32 [28] uniforms in [0, 1), keyed by (seed, split, index)."""
  base = tf.constant([seed, split_id(split)], tf.int64)
  key = tf.random.experimental.stateless_fold_in(base, tf.cast(index, tf.int64))
  return tf.random.stateless_uniform([_NUM_PARAMS], seed=key, dtype=tf.float32)


def _polygon_distance(dx, dy, sides: int, apothem, angle):
  """Signed distance (approximate outside corners) to a regular polygon; shapes broadcast, [B, S, S]."""
  distance = None
  for k in range(sides):
    theta = angle + 2.0 * math.pi * k / sides
    half_plane = dx * tf.cos(theta) + dy * tf.sin(theta) - apothem
    distance = half_plane if distance is None else tf.maximum(distance, half_plane)
  return distance


def _shape_coverage(params, xs, ys, image_size: int, simple: bool = False):
  """Anti-aliased coverage in [0, 1] of one shape per example.

  Args:
    params: float32 [B, 8] uniforms (kind, cx, cy, size, angle, r, g, b) of the shape.
    xs, ys: float32 [1, S, S] pixel-centre coordinates in [0, 1].
    image_size: S.

  Returns:
    float32 [B, S, S].
  """
  def column(j):
    return params[:, j, None, None]  # [B, 1, 1]
  kind = tf.cast(tf.minimum(column(0) * len(SHAPE_KINDS), len(SHAPE_KINDS) - 1), tf.int32)
  if simple:  # one large shape near the centre
    radius, dx, dy = 0.28 + 0.12 * column(3), xs - (0.4 + 0.2 * column(1)), ys - (0.4 + 0.2 * column(2))
  else:
    radius = 0.12 + 0.18 * column(3)  # circumradius as a fraction of the image width
    dx = xs - (0.2 + 0.6 * column(1))
    dy = ys - (0.2 + 0.6 * column(2))
  angle = 2.0 * math.pi * column(4)
  disc = tf.sqrt(dx * dx + dy * dy) - radius
  square = _polygon_distance(dx, dy, 4, radius * math.cos(math.pi / 4), angle)
  triangle = _polygon_distance(dx, dy, 3, radius * math.cos(math.pi / 3), angle)
  distance = tf.where(kind == 0, disc, tf.where(kind == 1, square, triangle))
  # One pixel of soft edge: coverage goes 1 -> 0 as the distance crosses the boundary.
  return tf.clip_by_value(0.5 - distance * image_size, 0.0, 1.0)


# mixed: 1-3 shapes of any size and colour on a random plain background colour.
# simple: one large bright shape near the centre on black.
# digits: one stroke-drawn digit 0-9 in white on black, like MNIST (`digits.py`).
STYLES = ("mixed", "simple", "digits")


# Plain tensor code (the Python branches are on static arguments): traced as written, not by autograph, which
# mis-converts the nested helper functions.
@tf.autograph.experimental.do_not_convert
def render(params: tf.Tensor, image_size: int, channels: int = 3, style: str = "mixed") -> tf.Tensor:
  """Paints a batch of examples from their parameters.

  Args:
    params: float32 [B, 28] from `example_params`.
    image_size: S, the output height and width.
    channels: 3 (RGB) or 1 (luminance of the RGB rendering).
    style: "mixed" (1-3 shapes on a random plain colour; each shape differs from it by 0.25..0.75 per
      channel) or "simple" (one shape of circumradius 0.28..0.4 of the width, centre within 0.4..0.6,
      each channel 0.35..1, on black) or "digits" (one handwritten-like digit 0-9, white on black;
      see `digits.render_digits`).

  Returns:
    float32 [B, S, S, channels] in [0, 1].
  """
  centres = (tf.range(image_size, dtype=tf.float32) + 0.5) / image_size
  ys, xs = tf.meshgrid(centres, centres, indexing="ij")
  xs, ys = xs[None], ys[None]
  if style not in STYLES:
    raise ValueError(f"shapes: style must be one of {STYLES}, got {style!r}")
  if style == "digits":
    image = digits.render_digits(params, image_size)[..., None]
    return tf.tile(image, [1, 1, 1, channels])
  simple = style == "simple"
  background = tf.zeros_like(params[:, 0:3]) if simple else params[:, 0:3]
  image = tf.tile(background[:, None, None, :], [1, image_size, image_size, 1])
  count = tf.ones_like(params[:, 3]) if simple else 1.0 + tf.floor(params[:, 3] * MAX_SHAPES)  # 1..3
  for m in range(MAX_SHAPES):
    shape = params[:, 4 + m * _PARAMS_PER_SHAPE: 4 + (m + 1) * _PARAMS_PER_SHAPE]
    # Each channel differs from the background by 0.25..0.75 (mod 1), so every shape is visible.
    colour = (0.35 + 0.65 * shape[:, 5:8] if simple
              else tf.math.floormod(background + 0.25 + 0.5 * shape[:, 5:8], 1.0))
    active = tf.cast(count > m, tf.float32)[:, None, None, None]
    alpha = _shape_coverage(shape, xs, ys, image_size, simple)[..., None] * active
    image = image * (1.0 - alpha) + colour[:, None, None, :] * alpha
  if channels == 1:
    image = tf.image.rgb_to_grayscale(image)
  return tf.clip_by_value(image, 0.0, 1.0)


def shapes_dataset(image_size: int, channels: int, batch_size: int, seed: int, split: str = "train",
                   pipeline_id: int = 0, num_pipelines: int = 1, repeat: bool = True,
                   epoch_size: Optional[int] = None, style: str = "mixed") -> tf.data.Dataset:
  """Batches of shapes images in [0, 1] for one input pipeline.

  Args:
    image_size: S.
    channels: 1 or 3.
    batch_size: examples per batch of this pipeline (drop_remainder=True).
    seed: stream seed.
    split: train / test / validation (disjoint streams).
    pipeline_id, num_pipelines: this pipeline takes the examples with index = pipeline_id (mod num_pipelines).
    repeat: True: an endless stream of new examples; False: one epoch of `epoch_size` examples (before sharding).
    epoch_size: defaults to EPOCH_SIZE.
    style: "mixed", "simple" or "digits" (see `render`).

  Returns:
    tf.data.Dataset of float32 [batch_size, S, S, channels] in [0, 1].
  """
  split_id(split)  # validates the split name eagerly
  stop = None if repeat else (epoch_size or EPOCH_SIZE)
  if stop is None:
    indices = tf.data.Dataset.counter(start=pipeline_id, step=num_pipelines, dtype=tf.int64)
  else:
    indices = tf.data.Dataset.range(pipeline_id, stop, num_pipelines)
  dataset = indices.map(lambda i: example_params(i, seed, split), num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
  dataset = dataset.batch(batch_size, drop_remainder=True)
  return dataset.map(lambda p: render(p, image_size, channels, style), num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)
