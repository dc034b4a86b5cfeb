"""KID / FID / IS of generated images against real images, with the protocol recorded.

  python tools/evaluate.py --real=cifar10:test --fake=runs/x/export --num=10000 --metrics=kid,fid \
      --out=result.json

SRC (for --real and --fake) is one of
  * a SavedModel generator directory (its `sample(num_samples, seed)` endpoint; `generate(z)` otherwise),
  * an image folder (png / jpg / webp / bmp, read in sorted order),
  * an .npz file (`file.npz:key` picks the array; without a key, the only 3-d or 4-d array),
  * `dataset:split` (e.g. `cifar10:test`), read with `mmd_gan_tf.data.make_dataset`, no shuffling (a TFDS
    dataset from --tfds_data_dir, as main.py reads it).
The first --num images of each source are used (a generator draws --num). Features of non-generator
sources are cached on disk (see `mmd_gan_tf.metrics.feature_cache`).
"""

import dataclasses
import hashlib
import json
import os
import pathlib
import stat
import sys
import time
import types
from typing import Callable, Dict, Iterator, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mmd_gan_tf import startup  # noqa: E402  (no TensorFlow: before it)

# A stop during the imports (5-15 s) is one line: Ctrl-C exits 130, SIGTERM / SIGHUP 75 (run it again).
with startup.quiet_stops(__name__ == "__main__"):
  import numpy as np  # noqa: E402
  from absl import app  # noqa: E402
  from absl import flags  # noqa: E402
  from absl import logging  # noqa: E402

  from mmd_gan_tf import console  # noqa: E402

  tf = console.import_tensorflow_quietly()  # without the no-GPU lines of TensorFlow's CUDA build

  from mmd_gan_tf import checkpointing  # noqa: E402
  from mmd_gan_tf import cli  # noqa: E402
  from mmd_gan_tf import files  # noqa: E402
  from mmd_gan_tf import images as images_lib  # noqa: E402
  from mmd_gan_tf import noise  # noqa: E402
  from mmd_gan_tf.metrics import feature_cache  # noqa: E402
  from mmd_gan_tf.metrics import features as features_lib  # noqa: E402
  from mmd_gan_tf.metrics import fid as fid_lib  # noqa: E402
  from mmd_gan_tf.metrics import inception  # noqa: E402
  from mmd_gan_tf.metrics import inception_weights  # noqa: E402
  from mmd_gan_tf.metrics import registry  # noqa: E402

METRIC_CHOICES = tuple(registry.METRICS)  # --metrics choices: the registry's names, nothing else
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
FLAGS = flags.FLAGS


@dataclasses.dataclass
class Source:
  """Images of one SRC: `batches()` yields arrays [b, H, W, C] (uint8, or float in `image_range`)."""
  spec: str
  kind: str
  count: int
  batches: Callable[[], Iterator[np.ndarray]]
  image_range: str = "pixels"
  identity: Optional[Dict] = None   # cache identity; None = do not cache (generators)
  reads: tuple = ()                  # the flags of this tool it reads besides --num and --batch_size


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
  """The tool's flags (on a fresh FlagValues in `parse_args`, so tests can parse without app.run)."""
  define = dict(flag_values=flag_values)
  flags.DEFINE_string("real", None, "SRC of the real images (module docstring).", **define)
  flags.DEFINE_string("fake", None, "SRC of the generated images (module docstring).", **define)
  flags.DEFINE_integer("num", 10000, "Images per source.", **define)
  flags.DEFINE_list("metrics", ["kid", "fid"], f"Comma list of {', '.join(METRIC_CHOICES)}.", **define)
  flags.DEFINE_string("out", None, "JSON result file.", **define)
  flags.DEFINE_string("inception_weights", None, ".npz / .pb / .tgz; default: download once into the cache.",
                      **define)
  flags.DEFINE_integer("kid_subsets", 100, "KID subsets.", **define)
  flags.DEFINE_integer("kid_subset_size", 1000, "KID features per set and subset (<= --num).", **define)
  flags.DEFINE_integer("fid_min_samples", fid_lib.DEFAULT_MIN_SAMPLES, "FID refuses fewer images.", **define)
  flags.DEFINE_integer("is_splits", 10, "Inception Score splits.", **define)
  flags.DEFINE_integer("seed", 0, "Seeds generator samples and KID subsets.", **define)
  flags.DEFINE_integer("batch_size", 100, "Images per Inception forward pass.", **define)
  flags.DEFINE_enum("image_range", "tanh", list(images_lib.ALL_RANGES),
                    "Range of float images from a generator or .npz (uint8 needs none).", **define)
  flags.DEFINE_enum("z_distribution", "normal", list(noise.Z_DISTRIBUTIONS),
                    "z of a generator that only has generate(z).", **define)
  flags.DEFINE_integer("image_size", 32, "For dataset:split sources.", **define)
  flags.DEFINE_string("tfds_data_dir", None, "For dataset:split sources of TFDS: where `tfds build` put them "
                      "(main.py's --tfds_data_dir; default: TFDS's, ~/tensorflow_datasets).", **define)
  flags.DEFINE_string("cache_dir", None, "Feature and weights cache (default: ~/.cache/mmd_gan_tf).", **define)
  flags.DEFINE_bool("no_cache", False, "Do not read or write cached features.", **define)
  flags.DEFINE_bool("no_progress", False, "No progress bars.", **define)
  flags.mark_flags_as_required(["real", "fake"], flag_values=flag_values)
  flags.register_validator("metrics", lambda names: bool(names) and set(names) <= set(METRIC_CHOICES),
                           f"choose one or more of {','.join(METRIC_CHOICES)}", flag_values=flag_values)
  flags.register_validator("num", lambda num: num >= 1, "--num must be >= 1", flag_values=flag_values)


def args_from(flag_values: flags.FlagValues) -> types.SimpleNamespace:
  """The parsed flags as a plain namespace (what the functions below read)."""
  return types.SimpleNamespace(**{name: flag_values[name].value for name in flag_values},
                               given=frozenset(name for name in flag_values if flag_values[name].present))


def parse_args(argv) -> types.SimpleNamespace:
  """Parses `argv` (flags only, no program name) on fresh FlagValues.

  Raises:
    flags.Error: a flag that does not parse or fails its check (e.g. an unknown metric).
  """
  flag_values = flags.FlagValues()
  define_flags(flag_values)
  flag_values(["evaluate", *argv])
  return args_from(flag_values)


def _array_batches(array: np.ndarray, batch_size: int):
  return lambda: (array[i:i + batch_size] for i in range(0, len(array), batch_size))


def _with_channels(array: np.ndarray) -> np.ndarray:
  return array[..., None] if array.ndim == 3 else array


def _sha256(path) -> str:
  return inception_weights.file_sha256(path)


def npz_source(spec: str, num: int, args) -> Source:
  path, _, key = spec.partition(".npz:")
  path = path + ".npz" if not path.endswith(".npz") else path
  from mmd_gan_tf.data import npz  # pylint: disable=import-outside-toplevel
  with npz.open_npz(path, f"{spec}: ") as data:
    keys = [k for k in data.files if data[k].ndim in (3, 4)] if not key else [key]
    if len(keys) != 1 or keys[0] not in data.files:
      raise ValueError(f"{spec}: name the image array as file.npz:KEY; image arrays: "
                       f"{[k for k in data.files if data[k].ndim in (3, 4)]}")
    array = _with_channels(data[keys[0]])
  _check_count(spec, len(array), num)
  array = array[:num]
  if np.issubdtype(array.dtype, np.integer) and array.dtype != np.uint8:
    # Pixels stored as a wider integer type (int64 from a numpy pipeline): read as floats in [-1, 1] they
    # scored KID x 10^3 567 against the same images as uint8.
    if array.size and (int(array.min()) < 0 or int(array.max()) > 255):
      raise ValueError(f"{spec}: integer images ({array.dtype}) outside 0-255 (from {int(array.min())} to "
                       f"{int(array.max())}); store uint8 pixels or floats in --image_range")
    array = array.astype(np.uint8)
  elif np.issubdtype(array.dtype, np.bool_) or not np.issubdtype(array.dtype, np.number):
    raise ValueError(f"{spec}: images of dtype {array.dtype}; store uint8 pixels or floats in --image_range")
  image_range = "pixels" if array.dtype == np.uint8 else args.image_range
  if array.dtype != np.uint8 and array.size and not np.isfinite(array).all():
    bad = int(np.sum(~np.isfinite(array.reshape(len(array), -1)).all(axis=1)))
    raise ValueError(f"{spec}: {bad} of its {len(array)} images hold NaN or infinite values; a score of them "
                     "would mean nothing")
  if image_range == "tanh" and array.size and float(array.min()) >= 0.0:
    logging.warning("%s: float images with no negative value read as --image_range=tanh ([-1, 1]); if they "
                    "are in [0, 1], give --image_range=sigmoid", spec)
  identity = {"kind": "npz", "sha256": _sha256(path), "key": keys[0], "num": num,
              "image_range": image_range}
  return Source(spec, "npz", num, _array_batches(array, args.batch_size), image_range, identity,
                reads=("image_range",) if image_range != "pixels" else ())


def _is_special(path: pathlib.Path) -> bool:
  """A FIFO, socket or device (following links; a dangling link is not: reading it names it)."""
  try:
    mode = path.stat().st_mode
  except OSError:
    return False
  return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def folder_source(spec: str, num: int, args) -> Source:
  from PIL import Image  # pylint: disable=import-outside-toplevel
  every = sorted(p for p in pathlib.Path(spec).rglob("*") if not p.name.startswith("."))
  special = [p for p in every if _is_special(p)]  # a FIFO named x.png: reading it would wait forever
  files = [p for p in every if p.suffix.lower() in IMAGE_SUFFIXES and p not in special]
  others = [p for p in every if p.suffix.lower() not in IMAGE_SUFFIXES and p.is_file()]
  if special:
    logging.warning("%s: %d entries are not regular files (FIFOs, sockets, devices) and are not read: %s%s", spec,
                    len(special), ", ".join(str(p.relative_to(spec)) for p in special[:5]),
                    ", ..." if len(special) > 5 else "")
  if others:  # e.g. .tif or .gif images: said, not silently left out
    logging.warning("%s: %d file(s) without an image suffix this tool reads (%s) are not scored: %s%s", spec,
                    len(others), ", ".join(IMAGE_SUFFIXES), ", ".join(str(p.relative_to(spec)) for p in others[:5]),
                    ", ..." if len(others) > 5 else "")
  if not files:
    raise ValueError(f"{spec}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
  _check_count(spec, len(files), num)
  files = files[:num]

  def read(file):
    try:
      with Image.open(file) as image:
        if image.mode.startswith("I;16") or image.mode == "I":
          # 16-bit grey (PNG): PIL's convert("RGB") clips it to white; scale it to 8 bits as training's
          # decoder does (x / 257).
          grey = np.clip(np.round(np.asarray(image, np.float64) / 257.0), 0, 255).astype(np.uint8)
          return np.repeat(grey[..., None], 3, axis=-1)
        return np.asarray(image.convert("RGB"), np.uint8)
    except (OSError, ValueError) as error:  # truncated, not an image, a dangling link
      raise ValueError(f"{file}: not a readable image ({error}); the first --num images of a folder are "
                       "scored, so move it away") from None

  def batches():
    batch = []
    for file in files:
      array = read(file)
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
  from mmd_gan_tf.data import first_images, image_identity  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf.data.pipeline import DATASETS  # pylint: disable=import-outside-toplevel
  name, split = spec.split(":", 1)
  cfg = DataConfig(dataset=name, split=split, image_size=args.image_size,
                   channels=1 if name == "mnist" else 3, image_range="sigmoid", tfds_data_dir=args.tfds_data_dir)

  def batches():
    try:
      for batch in first_images(cfg, num, args.batch_size):
        yield np.round(batch.numpy() * 255.0).astype(np.uint8)
    except ValueError as error:  # too few images: say which source and which flag
      raise ValueError(f"{spec}: {error}: lower --num") from None

  identity = {"kind": "dataset", **image_identity(cfg), "num": num}
  tfds = name in DATASETS and "tfds_data_dir" in DATASETS[name].options
  reads = ("image_size", "tfds_data_dir") if tfds else ("image_size",)
  return Source(spec, "dataset", num, batches, "pixels", identity, reads=reads)


def generator_source(spec: str, num: int, args) -> Source:
  try:
    loaded = tf.saved_model.load(spec)
  except (tf.errors.OpError, OSError, ValueError, IndexError) as error:  # IndexError: truncated variables
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise ValueError(f"{spec} is not a readable SavedModel ({first_line})") from None
  signatures = loaded.signatures

  def sample(count, index):
    seed = noise.export_batch_seed(args.seed, index)
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
  reads = ("image_range",) * (image_range != "pixels") + ("z_distribution",) * ("sample" not in signatures)
  return Source(spec, "saved_model", num, batches, image_range, None, reads=reads)


def _check_count(spec, available, num):
  if available < num:
    raise ValueError(f"{spec}: {available} images available, --num={num} requested: lower --num")


def make_source(spec: str, num: int, args) -> Source:
  """Dispatches SRC to the right reader (module docstring)."""
  path = pathlib.Path(spec.split(".npz:")[0] + (".npz" if ".npz:" in spec else ""))
  if path.is_dir() and ((path / "checkpoints").is_dir() or (path / "config.json").is_file()):
    # A training run's directory: its images are one sample grid; the generator is its export.
    if not (path / "export" / "saved_model.pb").exists():
      raise ValueError(f"{spec} is a training run without an export: run python main.py --mode=export "
                       f"--workdir={spec} first, or give its export folder")
    logging.info("%s is a training run: evaluating its export, %s", spec, path / "export")
    return generator_source(str(path / "export"), num, args)
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


# The metric each of these flags sets: given without that metric, it would be ignored.
METRIC_FLAGS = {"kid_subsets": "kid", "kid_subset_size": "kid", "fid_min_samples": "fid", "is_splits": "is"}
# The flags that only some sources read, and which.
SOURCE_FLAGS = {"image_range": "float images (an .npz of floats, a generator without uint8 output)",
                "image_size": "a dataset:split source",
                "tfds_data_dir": "a dataset:split source of TFDS",
                "z_distribution": "a SavedModel with only a generate(z) signature"}


def check_flags_used(args, sources=None) -> None:
  """A flag given that this evaluation never reads: refused in one line (a metric's setting without the
  metric; with `sources`, a source's setting that neither source reads)."""
  given = getattr(args, "given", frozenset())
  for name, metric in METRIC_FLAGS.items():
    if name in given and metric not in args.metrics:
      raise ValueError(f"--{name}={getattr(args, name)} has no effect: --metrics={','.join(args.metrics)} has "
                       f"no {metric}")
  for name, readers in SOURCE_FLAGS.items() if sources is not None else ():
    if name in given and not any(name in source.reads for source in sources):
      raise ValueError(f"--{name}={getattr(args, name)} has no effect: only {readers} read it")


def check_counts(args) -> None:
  """Refuses, before any weights or Inception features, counts the requested metrics cannot use."""
  check_flags_used(args)
  if "kid" in args.metrics and args.kid_subset_size > args.num:
    raise ValueError(f"--kid_subset_size={args.kid_subset_size} exceeds --num={args.num} images per set: "
                     f"lower --kid_subset_size or raise --num")
  if "fid" in args.metrics and args.num < max(args.fid_min_samples, 2):
    raise ValueError(f"--num={args.num} is below --fid_min_samples={args.fid_min_samples} (FID is biased "
                     f"for few images): raise --num, or lower --fid_min_samples to compute it anyway")


def metric_settings(args) -> registry.MetricSettings:
  return registry.MetricSettings(kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size,
                                 fid_min_samples=args.fid_min_samples, is_splits=args.is_splits,
                                 seed=args.seed)


def json_entry(name: str, values: Dict) -> object:
  """A registry result as this tool's JSON: the bare value of a one-value metric (FID), else a dict
  with "mean" for the headline value and the detail names without the prefix ("kid_std" -> "std")."""
  if list(values) == [name]:
    return float(values[name])
  return {("mean" if key == name else key[len(name) + 1:]): value for key, value in values.items()}


def evaluate(args, weights=None, model=None) -> Dict:
  """Runs the evaluation described by parsed `args`; returns the JSON-able result."""
  start = time.perf_counter()
  check_counts(args)
  # Sources check their image counts (and .npz keys) before the weights load or download.
  real, fake = make_source(args.real, args.num, args), make_source(args.fake, args.num, args)
  check_flags_used(args, (real, fake))
  weights = weights or inception_weights.load_inception_weights(args.inception_weights, args.cache_dir)
  need_logits = bool(registry.NEEDS_LOGITS.intersection(args.metrics))
  if need_logits and weights.logits is None:
    raise ValueError("--metrics=is needs weights with the softmax layer (Google's .tgz / .pb); the "
                     "FID .npz has none")
  if "is" in args.metrics and not 1 <= args.is_splits <= args.num:
    raise ValueError(f"--is_splits={args.is_splits} must be in [1, --num={args.num}]")
  model = model or inception.build_fid_inception(weights)
  real_features, _, real_cached = source_features(real, model, weights, args, need_logits=False)
  fake_features, fake_logits, fake_cached = source_features(fake, model, weights, args, need_logits)
  settings = metric_settings(args)
  metrics = {name: json_entry(name, registry.METRICS[name](real_features, fake_features, fake_logits,
                                                            settings))
             for name in args.metrics}
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


def report(args) -> Dict:
  """Evaluates, prints the JSON result and writes it to --out; returns it."""
  # Evaluation runs in full float32: no TF32 matmuls/convolutions on Ampere+ GPUs.
  tf.config.experimental.enable_tensor_float_32_execution(False)
  check_numbers(args)
  if args.out:
    check_out(args.out, [args.real, args.fake, args.inception_weights])  # before the work, not after
  check_cache_dir(args.cache_dir, [args.real, args.fake])
  result = evaluate(args)
  text = json.dumps(result, indent=2, sort_keys=True)
  print(text)
  if args.out:
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    files.atomic_write_text(args.out, text + "\n")
  return result


def check_numbers(args) -> None:
  """ValueError naming the first count flag out of range, before any image is read (they failed after every
  feature was computed, without naming the flag)."""
  for name, least in (("num", 1), ("batch_size", 1), ("kid_subsets", 1), ("kid_subset_size", 2), ("is_splits", 1),
                      ("seed", 0), ("image_size", 4)):
    value = getattr(args, name, None)
    if value is not None and value < least:
      raise ValueError(f"--{name}={value} must be >= {least}")


def check_cache_dir(cache_dir: Optional[str], inputs=()) -> None:
  """ValueError (naming --cache_dir) when the feature cache could not be a folder, or would go inside a run
  (its own folders or beside them) or an export (that run's resume and export would then be refused), or
  inside one of the `inputs` (an image folder would gain a features/ folder of ours)."""
  if not cache_dir:
    return
  if os.path.exists(cache_dir) and not os.path.isdir(cache_dir):
    raise ValueError(f"--cache_dir={cache_dir} exists and is not a folder")
  features = os.path.join(cache_dir, "features")
  checkpointing.refuse_inside_runs("--cache_dir", features, cache_dir)
  run = checkpointing.enclosing_run(features)
  if run:
    raise ValueError(f"--cache_dir={cache_dir} is inside the run {run}: the feature cache stays out of runs; "
                     "give a folder of its own")
  real = os.path.realpath(features)
  for source in inputs:
    if source and os.path.isdir(source):
      folder = os.path.realpath(source)
      if real.startswith(folder.rstrip(os.sep) + os.sep):
        raise ValueError(f"--cache_dir={cache_dir} is inside the input folder {source}: the cache would add a "
                         "features/ folder to your images; give a folder of its own")


def check_out(out: str, inputs) -> None:
  """ValueError (naming --out) unless `out` can take the result: not a folder, not one of the `inputs`, and
  if it exists, a JSON result (an earlier one of this tool) that may be replaced, not some other file."""
  if os.path.isdir(out):
    raise ValueError(f"--out={out} is a folder; give a file name for the JSON result")
  real_out = os.path.realpath(out)
  for path in filter(None, inputs):
    if os.path.realpath(path) == real_out:
      raise ValueError(f"--out={out} is an input of this evaluation ({path}); give another file")
  for path in filter(None, inputs):
    folder = os.path.realpath(path)
    if os.path.isdir(folder) and real_out.startswith(folder.rstrip(os.sep) + os.sep):
      raise ValueError(f"--out={out} is inside an input of this evaluation ({path}); give a file elsewhere")
  checkpointing.refuse_inside_runs("--out", out)
  if os.path.exists(out):
    earlier = files.read_json(out)
    if not (isinstance(earlier, dict) and {"metrics", "protocol"} <= set(earlier)):
      raise ValueError(f"--out={out} exists and is not a JSON result of this tool; give a new file or move it")


EXIT_INTERRUPTED = 75  # as main.py: interrupted, the same command runs it again


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  args = args_from(FLAGS)

  try:
    with cli.signals_as_interrupt():  # SIGTERM and SIGHUP stop it as Ctrl-C does
      report(args)
  except KeyboardInterrupt:
    print(f"\ninterrupted: no result written{f' to --out={args.out}' if args.out else ''} (the features of a "
          "source already finished stay in the cache, when it is on); run the same command again", file=sys.stderr)
    return EXIT_INTERRUPTED
  return 0


if __name__ == "__main__":
  define_flags()
  cli.run(main)
