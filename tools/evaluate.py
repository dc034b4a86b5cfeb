"""KID / FID / IS of generated images against real images, with the protocol recorded.

  python tools/evaluate.py --real=cifar10:test --fake=runs/x/export --num=10000 --metrics=kid,fid \
      --out=result.json

SRC (for --real and --fake) is one of
  * a SavedModel generator directory (its `sample(num_samples, seed)` endpoint; `generate(z)` otherwise),
  * an image folder (png / jpg / webp / bmp, read in sorted order),
  * an .npz file (`file.npz:key` picks the array; without a key, the only 3-d or 4-d array),
  * `dataset:split` (e.g. `cifar10:test`), read with `mmd_gan_tf.data.make_dataset`, no shuffling.
The first --num images of each source are used (a generator draws --num). Features of non-generator
sources are cached on disk (see `mmd_gan_tf.metrics.feature_cache`).
"""

import argparse
import dataclasses
import hashlib
import json
import os
import pathlib
import sys
import time
from typing import Callable, Dict, Iterator, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from mmd_gan_tf.metrics import feature_cache  # noqa: E402
from mmd_gan_tf.metrics import features as features_lib  # noqa: E402
from mmd_gan_tf.metrics import fid as fid_lib  # noqa: E402
from mmd_gan_tf.metrics import inception  # noqa: E402
from mmd_gan_tf.metrics import inception_score  # noqa: E402
from mmd_gan_tf.metrics import inception_weights  # noqa: E402
from mmd_gan_tf.metrics import kid as kid_lib  # noqa: E402

METRICS = ("kid", "fid", "is")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclasses.dataclass
class Source:
  """Images of one SRC: `batches()` yields arrays [b, H, W, C] (uint8, or float in `image_range`)."""
  spec: str
  kind: str
  count: int
  batches: Callable[[], Iterator[np.ndarray]]
  image_range: str = "pixels"
  identity: Optional[Dict] = None   # cache identity; None = do not cache (generators)


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--real", required=True, help="SRC of the real images")
  parser.add_argument("--fake", required=True, help="SRC of the generated images")
  parser.add_argument("--num", type=int, default=10000, help="images per source")
  parser.add_argument("--metrics", default="kid,fid", help="comma list of kid, fid, is")
  parser.add_argument("--out", default=None, help="JSON result file")
  parser.add_argument("--inception_weights", default=None,
                      help=".npz / .pb / .tgz; default: download once into the cache")
  parser.add_argument("--kid_subsets", type=int, default=100)
  parser.add_argument("--kid_subset_size", type=int, default=1000)
  parser.add_argument("--fid_min_samples", type=int, default=fid_lib.DEFAULT_MIN_SAMPLES)
  parser.add_argument("--is_splits", type=int, default=10)
  parser.add_argument("--seed", type=int, default=0, help="seeds generator samples and KID subsets")
  parser.add_argument("--batch_size", type=int, default=100)
  parser.add_argument("--image_range", default="tanh", choices=("tanh", "sigmoid", "pixels"),
                      help="range of float images from a generator or .npz (uint8 needs none)")
  parser.add_argument("--z_distribution", default="normal", choices=("normal", "uniform"),
                      help="z of a generator that only has generate(z)")
  parser.add_argument("--image_size", type=int, default=32, help="for dataset:split sources")
  parser.add_argument("--cache_dir", default=None)
  parser.add_argument("--no_cache", action="store_true")
  parser.add_argument("--no_progress", action="store_true")
  args = parser.parse_args(argv)
  metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
  bad = [m for m in metrics if m not in METRICS]
  if bad or not metrics:
    parser.error(f"--metrics={args.metrics}: choose from {','.join(METRICS)}")
  if args.num < 1:
    parser.error(f"--num={args.num} must be >= 1")
  args.metrics = metrics
  return args


def _array_batches(array: np.ndarray, batch_size: int):
  return lambda: (array[i:i + batch_size] for i in range(0, len(array), batch_size))


def _with_channels(array: np.ndarray) -> np.ndarray:
  return array[..., None] if array.ndim == 3 else array


def _sha256(path) -> str:
  return inception_weights.file_sha256(path)


def npz_source(spec: str, num: int, args) -> Source:
  path, _, key = spec.partition(".npz:")
  path = path + ".npz" if not path.endswith(".npz") else path
  with np.load(path) as data:
    keys = [k for k in data.files if data[k].ndim in (3, 4)] if not key else [key]
    if len(keys) != 1 or keys[0] not in data.files:
      raise ValueError(f"{spec}: name the image array as file.npz:KEY; image arrays: "
                       f"{[k for k in data.files if data[k].ndim in (3, 4)]}")
    array = _with_channels(data[keys[0]])
  _check_count(spec, len(array), num)
  array = array[:num]
  image_range = "pixels" if array.dtype == np.uint8 else args.image_range
  identity = {"kind": "npz", "sha256": _sha256(path), "key": keys[0], "num": num,
              "image_range": image_range}
  return Source(spec, "npz", num, _array_batches(array, args.batch_size), image_range, identity)


def folder_source(spec: str, num: int, args) -> Source:
  from PIL import Image  # pylint: disable=import-outside-toplevel
  files = sorted(p for p in pathlib.Path(spec).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
  _check_count(spec, len(files), num)
  files = files[:num]

  def batches():
    batch = []
    for file in files:
      with Image.open(file) as image:
        array = np.asarray(image.convert("RGB"), np.uint8)
      if batch and (len(batch) == args.batch_size or batch[0].shape != array.shape):
        yield np.stack(batch)
        batch = []
      batch.append(array)
    if batch:
      yield np.stack(batch)

  listing = hashlib.sha256("\n".join(f"{f.relative_to(spec)} {f.stat().st_size} {f.stat().st_mtime_ns}"
                                     for f in files).encode()).hexdigest()
  identity = {"kind": "folder", "path": str(pathlib.Path(spec).resolve()), "listing_sha256": listing,
              "num": num}
  return Source(spec, "folder", num, batches, "pixels", identity)


def dataset_source(spec: str, num: int, args) -> Source:
  from mmd_gan_tf.config import DataConfig  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf.data import make_dataset  # pylint: disable=import-outside-toplevel
  name, split = spec.split(":", 1)
  cfg = DataConfig(dataset=name, split=split, image_size=args.image_size,
                   channels=1 if name == "mnist" else 3, image_range="sigmoid")
  batch_size = min(args.batch_size, num)

  def batches():
    seen = 0
    for batch in make_dataset(cfg, batch_size, seed=args.seed, repeat=False, shuffle=False):
      batch = np.round(batch.numpy() * 255.0).astype(np.uint8)[:num - seen]
      seen += len(batch)
      yield batch
      if seen >= num:
        return
    _check_count(spec, seen, num)

  identity = {"kind": "dataset", "dataset": name, "split": split, "image_size": args.image_size,
              "preprocessing": cfg.preprocessing, "num": num}
  return Source(spec, "dataset", num, batches, "pixels", identity)


def generator_source(spec: str, num: int, args) -> Source:
  loaded = tf.saved_model.load(spec)
  signatures = loaded.signatures

  def sample(count, index):
    seed = args.seed * 1_000_003 + index
    if "sample" in signatures:
      return signatures["sample"](num_samples=tf.constant(count, tf.int32),
                                  seed=tf.constant(seed, tf.int64))
    if "generate" not in signatures:
      raise ValueError(f"{spec}: a SavedModel generator needs a 'sample' or 'generate' signature, "
                       f"has {list(signatures)}")
    z_spec = list(signatures["generate"].structured_input_signature[1].values())[0]
    rng = np.random.default_rng(seed)
    shape = (count, z_spec.shape[-1])
    z = rng.standard_normal(shape) if args.z_distribution == "normal" else rng.uniform(-1, 1, shape)
    return signatures["generate"](tf.constant(z, z_spec.dtype))

  def images_of(outputs):
    if "images_uint8" in outputs:
      return outputs["images_uint8"].numpy()
    return list(outputs.values())[0].numpy() if "images" not in outputs else outputs["images"].numpy()

  def batches():
    for index, start in enumerate(range(0, num, args.batch_size)):
      yield images_of(sample(min(args.batch_size, num - start), index))

  first = images_of(sample(1, 0))
  image_range = "pixels" if first.dtype == np.uint8 else args.image_range
  return Source(spec, "saved_model", num, batches, image_range, None)


def _check_count(spec, available, num):
  if available < num:
    raise ValueError(f"{spec}: {available} images available, --num={num} requested")


def make_source(spec: str, num: int, args) -> Source:
  """Dispatches SRC to the right reader (module docstring)."""
  path = pathlib.Path(spec.split(".npz:")[0] + (".npz" if ".npz:" in spec else ""))
  if path.is_dir() and (path / "saved_model.pb").exists():
    return generator_source(spec, num, args)
  if path.is_dir():
    return folder_source(spec, num, args)
  if path.suffix == ".npz":
    if not path.exists():
      raise FileNotFoundError(f"{spec}: no such .npz file")
    return npz_source(spec, num, args)
  if ":" in spec and not path.exists():
    return dataset_source(spec, num, args)
  raise ValueError(f"{spec}: not a SavedModel dir, image folder, .npz or dataset:split")


def source_features(source: Source, model, weights, args, need_logits: bool):
  """(features, logits or None, cached) of a source."""

  def compute():
    return features_lib.extract_features(
        model, source.batches(), image_range=source.image_range, with_logits=need_logits,
        progress=None if args.no_progress else source.spec, total=source.count)

  if source.identity is None or args.no_cache:
    return (*compute(), False)
  fields = {**source.identity, "weights_sha256": weights.sha256}
  return feature_cache.cached_features(fields, compute, args.cache_dir, need_logits)


def evaluate(args, weights=None, model=None) -> Dict:
  """Runs the evaluation described by parsed `args`; returns the JSON-able result."""
  start = time.perf_counter()
  weights = weights or inception_weights.load_inception_weights(args.inception_weights, args.cache_dir)
  if "is" in args.metrics and weights.logits is None:
    raise ValueError("--metrics=is needs weights with the softmax layer (Google's .tgz / .pb); the "
                     "FID .npz has none")
  model = model or inception.build_fid_inception(weights)
  real, fake = make_source(args.real, args.num, args), make_source(args.fake, args.num, args)
  real_features, _, real_cached = source_features(real, model, weights, args, need_logits=False)
  fake_features, fake_logits, fake_cached = source_features(fake, model, weights, args,
                                                            need_logits="is" in args.metrics)
  metrics = {}
  if "kid" in args.metrics:
    result = kid_lib.kid(real_features, fake_features, args.kid_subsets, args.kid_subset_size,
                         args.seed)
    metrics["kid"] = {"mean": result.mean, "std": result.std, "stderr": result.stderr,
                      "mean_x1e3": result.mean * 1e3, "std_x1e3": result.std * 1e3}
  if "fid" in args.metrics:
    metrics["fid"] = float(fid_lib.fid(real_features, fake_features, args.fid_min_samples))
  if "is" in args.metrics:
    score = inception_score.inception_score_from_logits(fake_logits, args.is_splits)
    metrics["is"] = {"mean": score.mean, "std": score.std, "splits": args.is_splits}
  protocol = {
      "network": "FID Inception-v3 2015-12-05, pool_3 (2048-d)",
      "weights": weights.source, "weights_sha256": weights.sha256,
      "resize": feature_cache.RESIZE_PROTOCOL, "input": "float pixels [0,255], (x - 128) / 128",
      "real": {"source": args.real, "kind": real.kind, "count": len(real_features),
               "features_cached": bool(real_cached)},
      "fake": {"source": args.fake, "kind": fake.kind, "count": len(fake_features),
               "features_cached": bool(fake_cached)},
      "kid_kernel": "(a.b / d + 1)^3, unbiased MMD^2, float64",
      "kid_subsets": args.kid_subsets, "kid_subset_size": args.kid_subset_size,
      "kid_std": "std over subsets (ddof 0); stderr = std (ddof 1) / sqrt(subsets)",
      "fid_min_samples": args.fid_min_samples, "seed": args.seed,
      "tensorflow": tf.__version__,
  }
  return {"metrics": metrics, "protocol": protocol, "seconds": time.perf_counter() - start}


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  # Evaluation runs in full float32: no TF32 matmuls/convolutions on Ampere+ GPUs.
  tf.config.experimental.enable_tensor_float_32_execution(False)
  result = evaluate(args)
  text = json.dumps(result, indent=2, sort_keys=True)
  print(text)
  if args.out:
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(text + "\n")
  return result


if __name__ == "__main__":
  main()
