"""Benchmark and sanity check of the metrics on real data (CIFAR-10 and MNIST .npz files).

Measures Inception feature extraction (images/s), KID time for N x N features (100 subsets of 1000)
and FID time, and reports KID / FID of CIFAR train vs CIFAR test (small) and MNIST vs CIFAR test (large).

  python tools/bench_metrics.py --inception_weights=/path/to/fid_inception_v3_2015_12_05.npz \
      --cifar=/path/to/cifar10_20k.npz --mnist=/path/to/mnist.npz --num=10000 \
      --out=bench_metrics.json
"""

import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from mmd_gan_tf import onednn  # noqa: E402

onednn.prefer()  # the CPU kernels main.py and tools/evaluate.py run (before TensorFlow's import)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from mmd_gan_tf import cli  # noqa: E402
from mmd_gan_tf.metrics import feature_cache, features, fid, inception, inception_weights, kid  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("inception_weights", None, ".npz / .pb / .tgz; default: download once into the cache.")
  flags.DEFINE_string("cifar", None, ".npz with x_train, x_test uint8 [N,32,32,3].")
  flags.DEFINE_string("mnist", None, ".npz with x_test uint8 [N,28,28].")
  flags.DEFINE_integer("num", 10000, "Images per set.")
  flags.DEFINE_integer("batch_size", 100, "Images per Inception forward pass.")
  flags.DEFINE_integer("kid_subsets", 100, "KID subsets.")
  flags.DEFINE_integer("kid_subset_size", 1000, "KID features per set and subset.")
  flags.DEFINE_string("cache_dir", None, "Feature cache (default: ~/.cache/mmd_gan_tf).")
  flags.DEFINE_integer("kid_timing_num", 10000,
                       "Also time KID on synthetic features of this many rows per set (0: skip).")
  flags.DEFINE_string("out", None, "JSON result file.")
  flags.mark_flags_as_required(["cifar", "mnist"])


def _features(model, extractor, name, images, args, weights, timings):
  fields = {"source": name, "num": len(images), "weights_sha256": weights.sha256}
  start = time.perf_counter()
  feats, _, hit = feature_cache.cached_features(
      fields, lambda: features.extract_features(model, images, args.batch_size, progress=name,
                                                extractor=extractor), args.cache_dir)
  elapsed = time.perf_counter() - start
  if not hit:
    timings[name] = {"images": len(images), "seconds": elapsed, "images_per_s": len(images) / elapsed}
  print(f"{name}: {len(images)} images, {elapsed:.1f} s{' (cached)' if hit else ''}", flush=True)
  return feats


def _time_kid(args):
  """KID time on N x N synthetic features (the time does not depend on the values)."""
  rng = np.random.default_rng(0)
  real = rng.gamma(1.0, 0.3, size=(args.kid_timing_num, inception.FEATURE_DIM)).astype(np.float32)
  fake = rng.gamma(1.0, 0.3, size=(args.kid_timing_num, inception.FEATURE_DIM)).astype(np.float32)
  kid.kid(real[:20], fake[:20], 1, 10)  # trace once
  start = time.perf_counter()
  kid.kid(real, fake, args.kid_subsets, args.kid_subset_size, seed=0)
  seconds = time.perf_counter() - start
  print(f"KID {args.kid_timing_num} x {args.kid_timing_num}: {seconds:.1f} s", flush=True)
  return {"num": args.kid_timing_num, "subsets": args.kid_subsets, "subset_size": args.kid_subset_size,
          "seconds": seconds}


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  args = FLAGS
  weights = inception_weights.load_inception_weights(args.inception_weights)
  model = inception.build_fid_inception(weights)
  extractor = features.make_extractor(model)
  extractor(tf.zeros([2, 32, 32, 3]))  # trace once, outside the timings
  cifar, mnist = np.load(args.cifar), np.load(args.mnist)
  n = args.num
  timings = {}
  train = _features(model, extractor, "cifar10_20k:x_train", cifar["x_train"][:n], args, weights, timings)
  test = _features(model, extractor, "cifar10_20k:x_test", cifar["x_test"][:n], args, weights, timings)
  mnist_images = mnist["x_test"][:n][..., None]
  digits = _features(model, extractor, "mnist:x_test", mnist_images, args, weights, timings)
  results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs",
             "tensorflow": tf.__version__, "num": n, "feature_extraction": timings,
             "kid_subsets": args.kid_subsets, "kid_subset_size": args.kid_subset_size}
  for name, real, fake in (("cifar_train_vs_test", train, test), ("mnist_vs_cifar_test", test, digits)):
    start = time.perf_counter()
    result = kid.kid(real, fake, args.kid_subsets, min(args.kid_subset_size, n), seed=0)
    kid_seconds = time.perf_counter() - start
    start = time.perf_counter()
    fid_value = float(fid.fid(real, fake, min_samples=0))
    fid_seconds = time.perf_counter() - start
    results[name] = {"kid": result.mean, "kid_std": result.std, "kid_stderr": result.stderr,
                     "kid_x1e3": result.mean * 1e3, "kid_seconds": kid_seconds, "fid": fid_value,
                     "fid_seconds": fid_seconds}
    print(name, json.dumps(results[name]), flush=True)
  if args.kid_timing_num:
    results["kid_timing"] = _time_kid(args)
  text = json.dumps(results, indent=2)
  print(text)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text + "\n")
  return 0


if __name__ == "__main__":
  define_flags()
  cli.run(main)
