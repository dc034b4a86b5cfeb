"""Writes a PNG grid of samples from an exported generator (SavedModel).

  python tools/sample.py --model=runs/shapes_rep/export --num=64 --out=grid.png [--seed=0]

Needs only TensorFlow: the SavedModel carries everything.
"""

import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags as absl_flags  # noqa: E402

absl_flags.DEFINE_string("model", None, "SavedModel directory written by main.py (…/export).")
absl_flags.DEFINE_integer("num", 64, "Number of samples.")
absl_flags.DEFINE_integer("seed", 0, "Sampling seed.")
absl_flags.DEFINE_string("out", "samples.png", "Output PNG.")
absl_flags.DEFINE_integer("batch_size", 256, "Images generated per call (bounds the memory).")
MAX_GRID = 4096  # a grid of more images would be a PNG of hundreds of megapixels
FLAGS = absl_flags.FLAGS


def grid(images: np.ndarray) -> np.ndarray:
  """uint8 [n, h, w, c] -> one [rows*h, cols*w, c] image."""
  n, h, w, c = images.shape
  cols = int(math.ceil(math.sqrt(n)))
  rows = int(math.ceil(n / cols))
  out = np.zeros((rows * h, cols * w, c), np.uint8)
  for i, image in enumerate(images):
    r, q = divmod(i, cols)
    out[r * h:(r + 1) * h, q * w:(q + 1) * w] = image
  return out


def main(argv) -> int:
  del argv
  if not FLAGS.model or not os.path.isdir(FLAGS.model):
    print(f"error: --model={FLAGS.model} is not a SavedModel directory", file=sys.stderr)
    return 2
  if not 0 < FLAGS.num <= MAX_GRID:
    print(f"error: --num={FLAGS.num} must be in [1, {MAX_GRID}] (one grid image)", file=sys.stderr)
    return 2
  if FLAGS.batch_size <= 0:
    print(f"error: --batch_size={FLAGS.batch_size} must be positive", file=sys.stderr)
    return 2
  if not os.path.exists(os.path.join(FLAGS.model, "saved_model.pb")):
    print(f"error: --model={FLAGS.model} has no saved_model.pb: not a SavedModel export", file=sys.stderr)
    return 2
  model = tf.saved_model.load(FLAGS.model)
  # Batches with seeds seed, seed + 1, ...: bounded memory for any --num.
  images = np.concatenate([
      model.sample(tf.constant(min(FLAGS.batch_size, FLAGS.num - start), tf.int32),
                   tf.constant(FLAGS.seed + index, tf.int64))["images_uint8"].numpy()
      for index, start in enumerate(range(0, FLAGS.num, FLAGS.batch_size))])
  out_dir = os.path.dirname(os.path.abspath(FLAGS.out))
  os.makedirs(out_dir, exist_ok=True)
  tf.io.write_file(FLAGS.out, tf.io.encode_png(grid(images)))
  print(f"wrote {FLAGS.num} samples to {FLAGS.out}")
  return 0


if __name__ == "__main__":
  app.run(main)
