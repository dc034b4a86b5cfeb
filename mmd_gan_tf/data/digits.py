"""Stroke-drawn digits 0-9 for the built-in `shapes` source (`--shapes_style=digits`).

Each digit is a fixed set of polylines (straight strokes and elliptical arcs) in a glyph box of width 0.6
and height 1 (y down). An example draws one digit through a random affine map (height, width, slant,
rotation, position) and a smooth sinusoidal warp, with a random stroke width, in white on black, so that
the images look like handwritten MNIST digits without downloading anything. The pixel value is the
anti-aliased coverage of the union of strokes: with d the distance from a pixel centre to the nearest
stroke segment and w the half stroke width (both in image widths),

    value = clip(0.5 - (d - w) * S / 1.5, 0, 1),

a 1.5 pixel edge ramp on an S x S image.

Cost: per example one [S, S, K] distance evaluation over the K <= 48 segments of its digit.
"""

import math

import numpy as np
import tensorflow as tf

NUM_CLASSES = 10
_FAR = 1e3  # padding segments sit here: never the nearest stroke


def _arc(cx, cy, rx, ry, start_deg, end_deg, points=12):
  """Points of an elliptical arc; angles in degrees, y down (90 degrees is the bottom of the ellipse)."""
  angles = np.radians(np.linspace(start_deg, end_deg, points))
  return list(zip(cx + rx * np.cos(angles), cy + ry * np.sin(angles)))


# Polylines per digit in the 0.6 x 1 glyph box.
_GLYPHS = {
    0: [_arc(0.3, 0.5, 0.26, 0.44, 0, 360, 20)],
    1: [[(0.14, 0.22), (0.34, 0.05), (0.34, 0.95)]],
    2: [_arc(0.3, 0.29, 0.25, 0.23, 195, 400, 12) + [(0.04, 0.95), (0.58, 0.95)]],
    3: [_arc(0.3, 0.28, 0.23, 0.22, 200, 450, 12) + _arc(0.3, 0.72, 0.26, 0.23, 270, 520, 12)[1:]],
    4: [[(0.44, 0.95), (0.44, 0.05), (0.03, 0.68), (0.6, 0.68)]],
    5: [[(0.55, 0.05), (0.14, 0.05), (0.15, 0.44)] + _arc(0.3, 0.67, 0.26, 0.28, 235, 500, 12)],
    6: [_arc(0.55, 0.62, 0.5, 0.57, 250, 180, 8), _arc(0.3, 0.72, 0.25, 0.23, 0, 360, 16)],
    7: [[(0.03, 0.05), (0.58, 0.05), (0.24, 0.95)]],
    8: [_arc(0.3, 0.27, 0.2, 0.22, 0, 360, 16), _arc(0.3, 0.72, 0.25, 0.23, 0, 360, 16)],
    9: [_arc(0.3, 0.3, 0.25, 0.25, 0, 360, 16), [(0.55, 0.3), (0.5, 0.95)]],
}


def _segment_table() -> np.ndarray:
  """float32 [10, K, 4] stroke segments (x0, y0, x1, y1) per digit, glyph box centred on the origin."""
  per_digit = []
  for digit in range(NUM_CLASSES):
    segments = []
    for line in _GLYPHS[digit]:
      for (x0, y0), (x1, y1) in zip(line[:-1], line[1:]):
        segments.append((x0 - 0.3, y0 - 0.5, x1 - 0.3, y1 - 0.5))
    per_digit.append(segments)
  most = max(len(s) for s in per_digit)
  table = np.full([NUM_CLASSES, most, 4], _FAR, np.float32)
  for digit, segments in enumerate(per_digit):
    table[digit, :len(segments)] = segments
  return table


SEGMENTS = _segment_table()


def _segment_distance(px, py, segments):
  """Distance from pixel centres to the nearest segment.

  Args:
    px, py: float32 [1, S, S, 1] pixel-centre coordinates.
    segments: float32 [B, 1, 1, K, 4] segment end points in the same coordinates.

  Returns:
    float32 [B, S, S].
  """
  x0, y0, x1, y1 = (segments[..., j] for j in range(4))
  ex, ey = x1 - x0, y1 - y0
  length2 = tf.maximum(ex * ex + ey * ey, 1e-12)
  h = tf.clip_by_value(((px - x0) * ex + (py - y0) * ey) / length2, 0.0, 1.0)
  dx, dy = px - x0 - h * ex, py - y0 - h * ey
  return tf.sqrt(tf.reduce_min(dx * dx + dy * dy, axis=-1))


@tf.autograph.experimental.do_not_convert
def render_digits(params: tf.Tensor, image_size: int) -> tf.Tensor:
  """Paints one digit per example.

  Args:
    params: float32 [B, P] uniforms in [0, 1), P >= 12 (class, height, width, slant, rotation, stroke
      width, centre x, centre y, warp amplitude x / y, warp phase x / y).
    image_size: S.

  Returns:
    float32 [B, S, S] in [0, 1].
  """
  def column(j):
    return params[:, j, None]  # [B, 1]
  digit = tf.cast(tf.minimum(params[:, 0] * NUM_CLASSES, NUM_CLASSES - 1), tf.int32)
  segments = tf.gather(tf.constant(SEGMENTS), digit)  # [B, K, 4]
  height = 0.62 + 0.16 * column(1)  # of the image height
  width = height * (0.8 + 0.4 * column(2))
  slant = 0.3 * (column(3) - 0.5)
  angle = math.radians(16.0) * (column(4) - 0.5)
  half_stroke = 0.035 + 0.03 * column(5)
  centre_x, centre_y = 0.5 + 0.08 * (column(6) - 0.5), 0.5 + 0.08 * (column(7) - 0.5)

  def place(x, y):
    padding = x >= _FAR / 2
    # Smooth warp (handwriting wobble), then width/height, slant, rotation and position.
    x = x + 0.04 * (column(8) - 0.5) * tf.sin(2.0 * math.pi * (y + column(10)))
    y = y + 0.04 * (column(9) - 0.5) * tf.sin(2.0 * math.pi * (x + column(11)))
    x, y = width * (x + slant * y), height * y
    cos, sin = tf.cos(angle), tf.sin(angle)
    x, y = cos * x - sin * y + centre_x, sin * x + cos * y + centre_y
    return tf.where(padding, _FAR, x), tf.where(padding, _FAR, y)

  x0, y0 = place(segments[..., 0], segments[..., 1])
  x1, y1 = place(segments[..., 2], segments[..., 3])
  placed = tf.stack([x0, y0, x1, y1], axis=-1)[:, None, None]  # [B, 1, 1, K, 4]
  centres = (tf.range(image_size, dtype=tf.float32) + 0.5) / image_size
  py, px = tf.meshgrid(centres, centres, indexing="ij")
  distance = _segment_distance(px[None, :, :, None], py[None, :, :, None], placed)
  ramp = image_size / 1.5
  return tf.clip_by_value(0.5 - (distance - half_stroke[:, :, None]) * ramp, 0.0, 1.0)
