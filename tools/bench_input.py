r"""Input-pipeline throughput (images/s) of the shapes, folder, LSUN LMDB and TFRecord sources.

By default it builds its own LSUN-like data in a temporary directory: --num_images shapes images of
--source_size (short side) x 4/3, encoded half JPEG (quality 90) and half WebP (quality 80), as a folder and
as an LMDB in LSUN's layout, and a TFRecord copy prepared at --image_size. Point --folder_dir, --lsun_dir or
--tfrecord_dir at real data to measure that instead.

  python tools/bench_input.py --image_size=64 --batch_size=64 --seconds=10
"""

import io
import os
import tempfile
import time

import lmdb
import numpy as np
import tensorflow as tf
from absl import flags
from PIL import Image

from mmd_gan_tf import cli
from mmd_gan_tf.config import DataConfig
from mmd_gan_tf.data import make_dataset, shapes
from mmd_gan_tf.data.prepare import prepare

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_list("sources", ["shapes", "folder", "lsun", "tfrecord"], "Sources to measure (shapes is built in).")
  flags.DEFINE_integer("image_size", 64, "Output image size S.")
  flags.DEFINE_integer("batch_size", 64, "Batch size.")
  flags.DEFINE_float("seconds", 10.0, "Measuring time per source (after warm-up).")
  flags.DEFINE_integer("num_images", 2000, "Synthetic images to build.")
  flags.DEFINE_integer("source_size", 256, "Short side of the synthetic source images (LSUN: 256).")
  flags.DEFINE_string("work_dir", None, "Where to build synthetic data (default: a temporary directory).")
  flags.DEFINE_string("folder_dir", None, "Measure this image folder instead of synthetic data.")
  flags.DEFINE_string("lsun_dir", None, "Measure this LSUN LMDB (or its parent) instead of synthetic data.")
  flags.DEFINE_string("tfrecord_dir", None, "Measure this prepared directory instead of synthetic data.")


def build_synthetic(root: str, num_images: int, short_side: int, image_size: int):
  """Writes a folder, an LMDB (bedroom_train_lmdb) and a TFRecord copy under `root`; returns their dirs."""
  folder_dir, lsun_dir, tfrecord_dir = (os.path.join(root, n) for n in ("folder", "lsun", "tfrecord"))
  os.makedirs(folder_dir, exist_ok=True)
  os.makedirs(lsun_dir, exist_ok=True)
  width = short_side * 4 // 3
  env = lmdb.open(os.path.join(lsun_dir, "bedroom_train_lmdb"), map_size=1 << 34)
  batch = 64
  with env.begin(write=True) as txn:
    for start in range(0, num_images, batch):
      params = tf.stack([shapes.example_params(i, 0) for i in range(start, min(start + batch, num_images))])
      pixels = shapes.render(params, width).numpy()[:, :short_side]  # landscape, like LSUN
      noisy = np.clip(pixels * 255 + np.random.RandomState(start).normal(0, 8, pixels.shape), 0, 255)
      for offset, image in enumerate(noisy.astype(np.uint8)):
        index, buffer = start + offset, io.BytesIO()
        fmt, options = ("JPEG", dict(quality=90)) if index % 2 else ("WEBP", dict(quality=80))
        Image.fromarray(image).save(buffer, fmt, **options)
        data = buffer.getvalue()
        with open(os.path.join(folder_dir, f"{index:06d}.{fmt.lower()}"), "wb") as f:
          f.write(data)
        txn.put(f"{index * 2654435761 % (1 << 64):040x}".encode(), data)
  env.close()
  prepare(DataConfig(dataset="lsun", data_dir=lsun_dir, image_size=image_size, channels=3), tfrecord_dir,
          progress=False)
  return folder_dir, lsun_dir, tfrecord_dir


def measure(cfg: DataConfig, batch_size: int, seconds: float) -> float:
  """Images per second of make_dataset(cfg) after a warm-up of 5 batches."""
  iterator = iter(make_dataset(cfg, batch_size, seed=0))
  for _ in range(5):
    next(iterator)
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    next(iterator)
    count += batch_size
  return count / (time.perf_counter() - start)


def main(argv):
  del argv
  dirs = {"folder": FLAGS.folder_dir, "lsun": FLAGS.lsun_dir, "tfrecord": FLAGS.tfrecord_dir}
  if not all(dirs[s] for s in FLAGS.sources if s in dirs):
    root = FLAGS.work_dir or tempfile.mkdtemp(prefix="bench_input_")
    start = time.perf_counter()
    built = build_synthetic(root, FLAGS.num_images, FLAGS.source_size, FLAGS.image_size)
    print(f"built {FLAGS.num_images} synthetic images in {root} ({time.perf_counter() - start:.0f} s)")
    dirs = {s: dirs[s] or b for s, b in zip(("folder", "lsun", "tfrecord"), built)}
  print(f"cpus={os.cpu_count()} image_size={FLAGS.image_size} batch_size={FLAGS.batch_size}")
  print("| source | images/s | ms per batch |\n|---|---|---|")
  for source in FLAGS.sources:
    cfg = DataConfig(dataset=source, data_dir=dirs.get(source), image_size=FLAGS.image_size, channels=3)
    rate = measure(cfg, FLAGS.batch_size, FLAGS.seconds)
    print(f"| {source} | {rate:.0f} | {1000 * FLAGS.batch_size / rate:.1f} |", flush=True)


if __name__ == "__main__":
  define_flags()
  cli.run(main)
