"""`make_dataset` and `validate_data_config`: one entry point over every image source.

Every dataset ends the same way: float32 [batch, S, S, C] in [-1, 1] (image_range "tanh") or [0, 1]
("sigmoid"), drop_remainder=True, prefetched. `batch_size` is per input pipeline: under
`strategy.distribute_datasets_from_function` the trainer passes `ctx.get_per_replica_batch_size(global)`
and the `input_context`; with several input pipelines (workers, or PER_REPLICA input mode) each reads a
disjoint shard of the examples; the replicas of one pipeline take consecutive batches.

Real images go: light element (path / LMDB index / TFDS image) -> shard -> shuffle -> repeat -> load and
decode (in-graph, parallel) -> channels -> preset (per-example stateless seed) -> 8-bit levels -> batch.
"""

import dataclasses
import logging
from typing import Any, Callable, Iterator, Mapping, Optional, Tuple

import tensorflow as tf

from mmd_gan_tf import images as images_lib
from mmd_gan_tf.config import ConfigError, DataConfig
from mmd_gan_tf.data import folder, lsun, npz, preprocessing, shapes, tfrecord
from mmd_gan_tf.data.errors import TooFewImages
from mmd_gan_tf.data.tfds_source import tfds_images

MIN_IMAGE_SIZE = 4
MAX_IMAGE_SIZE = 1024
_INDEX_SHUFFLE_BUFFER = 1 << 20  # LMDB indices are cheap: shuffle up to 1M of them at once


def _pipeline_position(input_context: Optional[tf.distribute.InputContext]):
  """(pipeline_id, num_pipelines) of this input pipeline; (0, 1) without distribution."""
  if input_context is None or input_context.num_input_pipelines <= 1:
    return 0, 1
  return input_context.input_pipeline_id, input_context.num_input_pipelines


def _split(cfg: DataConfig) -> str:
  """The split to read: the preset's own training split when cfg.split is the generic "train"."""
  preset = preprocessing_preset(cfg)
  return preset.split if cfg.split == "train" and preset.split else cfg.split


def _order(elements, cfg, seed, pipeline_id, num_pipelines, repeat, shuffle, buffer):
  """Shard, shuffle and repeat cheap elements (before any expensive loading).

  Sharding is by element, so every pipeline still reads the whole source (fine for paths, indices and the
  small TFDS datasets); tfrecord shards whole files instead.
  """
  if num_pipelines > 1:
    elements = elements.shard(num_pipelines, pipeline_id)
  if shuffle:
    elements = elements.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
  return elements.repeat() if repeat else elements


def _decode(data: tf.Tensor) -> tf.Tensor:
  """Encoded JPEG/PNG/WebP/BMP/GIF bytes -> uint8 [H, W, 3] (grayscale expanded, alpha dropped)."""
  return tf.ensure_shape(tf.io.decode_image(data, channels=3, expand_animations=False), [None, None, 3])


def _preprocess(image: tf.Tensor, seed: tf.Tensor, cfg: DataConfig) -> tf.Tensor:
  """uint8 [H, W, c] -> uint8 [S, S, C]: channels adapted, preset applied, rounded to 8-bit levels."""
  image = tf.cast(image, tf.float32) / 255.0
  if image.shape[-1] == 1 and cfg.channels == 3:
    image = tf.tile(image, [1, 1, 3])
  elif image.shape[-1] == 3 and cfg.channels == 1:
    image = tf.image.rgb_to_grayscale(image)
  image = preprocessing_preset(cfg).fn(image, cfg.image_size, seed)
  return tf.ensure_shape(preprocessing.quantise(image), [cfg.image_size, cfg.image_size, cfg.channels])


_PARALLEL = dict(num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _tfds_images(cfg, order):
  return _order(tfds_images(cfg, _split(cfg), order["seed"], shuffle_files=order["shuffle"]),
                buffer=cfg.shuffle_buffer, **order)


def _folder_images(cfg, order):
  paths, _ = folder.scan_folder(cfg.data_dir, cfg.corrupt_is_fatal)
  elements = _order(tf.data.Dataset.from_tensor_slices(list(paths)), buffer=len(paths), **order)
  return elements.map(lambda path: _decode(tf.io.read_file(path)), **_PARALLEL)


def _npz_images(cfg, order):
  array = npz.load_images(cfg.data_dir, cfg.split)
  images = tf.constant(array)
  indices = _order(tf.data.Dataset.range(len(array)), buffer=len(array), **order)
  return indices.map(lambda index: tf.gather(images, index), **_PARALLEL)


def _lsun_images(cfg, order):
  reader = lsun.lsun_reader(cfg.data_dir, cfg.lsun_category, cfg.split, cfg.corrupt_is_fatal)
  indices = _order(tf.data.Dataset.range(len(reader)), buffer=min(len(reader), _INDEX_SHUFFLE_BUFFER), **order)
  return reader.dataset(indices).map(_decode, **_PARALLEL)


def _source_images(cfg, seed, pipeline_id, num_pipelines, repeat, shuffle) -> tf.data.Dataset:
  """Ordered (sharded, shuffled, repeated) raw images of a real dataset: uint8 [H, W, c]."""
  read = DATASETS[cfg.dataset].raw_images
  if read is None:
    raise ValueError(f"dataset {cfg.dataset!r} has no raw-image source")
  return read(cfg, dict(cfg=cfg, seed=seed, pipeline_id=pipeline_id, num_pipelines=num_pipelines,
                        repeat=repeat, shuffle=shuffle))


def make_examples(cfg: DataConfig, seed: int, pipeline_id: int = 0, num_pipelines: int = 1,
                  repeat: bool = True, shuffle: bool = True) -> tf.data.Dataset:
  """Unbatched preprocessed uint8 [S, S, C] images of a real dataset (what tools/prepare_dataset.py stores)."""
  validate_data_config(cfg)
  images = _source_images(cfg, seed, pipeline_id, num_pipelines, repeat, shuffle)
  # Per-example seeds for random presets, drawn in stream order: independent of map parallelism.
  seeds = tf.data.Dataset.random(seed=seed).batch(2)
  return tf.data.Dataset.zip(images, seeds).map(lambda image, s: _preprocess(image, s, cfg),
                                                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _real(cfg, batch_size, seed, pipeline_id, num_pipelines, repeat, shuffle):
  examples = make_examples(cfg, seed, pipeline_id, num_pipelines, repeat, shuffle)
  return examples.batch(batch_size, drop_remainder=True).map(lambda b: tf.cast(b, tf.float32) / 255.0,
                                                             num_parallel_calls=tf.data.AUTOTUNE)


def _counted(cfg, batch_size, seed, pipeline_id, num_pipelines, repeat, shuffle):
  """A source of `count` images (folder, npz): one batch of distinct images per input pipeline, then `_real`."""
  check_one_batch(cfg, batch_size, num_pipelines)
  return _real(cfg, batch_size, seed, pipeline_id, num_pipelines, repeat, shuffle)


def check_one_batch(cfg: DataConfig, batch_size: int, num_pipelines: int = 1) -> None:
  """TooFewImages when each of `num_pipelines` input pipelines would get fewer images than one batch (a
  batch would repeat images, mixing epochs); nothing for sources without a `count` (streams, TFDS, LSUN)."""
  source = DATASETS[cfg.dataset]
  if source.count is not None:
    npz.check_count(cfg.data_dir, source.count(cfg), batch_size, num_pipelines)


def _shapes(cfg, batch_size, seed, pipeline_id, num_pipelines, repeat, shuffle):
  del shuffle  # every example is already an independent random draw
  return shapes.shapes_dataset(cfg.image_size, cfg.channels, batch_size, seed, split=cfg.split,
                               pipeline_id=pipeline_id, num_pipelines=num_pipelines, repeat=repeat,
                               style=cfg.shapes_style)


def _validate_shapes(cfg: DataConfig) -> None:
  shapes.split_id(cfg.split)
  if cfg.shapes_style not in shapes.STYLES:
    raise ValueError(f"shapes_style must be one of {shapes.STYLES}, got {cfg.shapes_style!r}")


def _no_check(cfg: DataConfig) -> None:
  del cfg


def _validate_folder(cfg: DataConfig) -> None:
  _, report = folder.scan_folder(cfg.data_dir, cfg.corrupt_is_fatal)
  folder.warn_small_images(cfg.data_dir, report, cfg.image_size)


def _validate_npz(cfg: DataConfig) -> None:
  images = npz.load_images(cfg.data_dir, cfg.split)
  side = min(images.shape[1:3])
  if side < cfg.image_size / 2 and (cfg.data_dir, cfg.image_size) not in _warned_small_npz:
    _warned_small_npz.add((cfg.data_dir, cfg.image_size))
    logging.warning("npz %r: its images are %d x %d px, upscaled more than 2x to --image_size=%d", cfg.data_dir,
                    images.shape[1], images.shape[2], cfg.image_size)


_warned_small_npz = set()


def _validate_lsun(cfg: DataConfig) -> None:
  lsun.check_lsun_layout(lsun.resolve_lmdb_dir(cfg.data_dir, cfg.lsun_category, cfg.split))


def _validate_tfrecord(cfg: DataConfig) -> None:
  tfrecord.check_matches(cfg, tfrecord.read_info(cfg.data_dir))


@dataclasses.dataclass(frozen=True)
class DataSource:
  """One entry of `DATASETS`: everything the pipeline, the checks and the feature cache know of a source.

  Attributes:
    batches: fn(cfg, batch_size, seed, pipeline_id, num_pipelines, repeat, shuffle) -> batches of float
      images in [0, 1] (`_real` for every source of decoded images).
    raw_images: fn(cfg, order) -> ordered uint8 [H, W, c] images (`order`: the keyword arguments of
      `_order`), for `_real` and tools/prepare_dataset.py; None where `batches` does not go through it.
    validate: fn(cfg) raising ValueError when the data is not there or not usable (run before training).
    needs_data_dir: the source reads `--data_dir`.
    identity_fields: the DataConfig fields besides the common ones that decide its pixels (the key of cached
      real features, `image_identity`).
    description: one line for `--help`.
    crops: its named preprocessing (`--preprocessing`), name -> `preprocessing.Preset`; "default" is used
      unless the flag names another.
    preset: what `main.py`'s presets set for it ("section.field" -> value over `PAPER_SCALE`, before the
      loss's preset): its image geometry and the papers' run length (flags/presets.py `resolve_preset`).
    scan: fn(cfg) -> (usable images, [(name, why skipped)]) for the sources tools/prepare_dataset.py converts
      to TFRecords (it reads their raw images), else None.
    reads_tree: the source reads every file below `data_dir` (so nothing may be written inside it).
    options: the source-specific DataConfig fields it reads (`data_dir`, `split`, `lsun_category`, ...): a flag
      setting one that this source does not read has no effect and is refused.
    count: fn(cfg) -> the number of images it holds, for the sources whose pipeline needs one whole batch of
      distinct images (`check_one_batch`), else None.
  """
  batches: Callable[..., tf.data.Dataset]
  raw_images: Optional[Callable[[DataConfig, dict], tf.data.Dataset]] = None
  validate: Callable[[DataConfig], None] = _no_check
  needs_data_dir: bool = False
  identity_fields: Tuple[str, ...] = ()
  description: str = ""
  crops: Mapping[str, preprocessing.Preset] = dataclasses.field(default_factory=lambda: preprocessing.SQUASH)
  preset: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  scan: Optional[Callable[[DataConfig], Tuple[int, list]]] = None
  reads_tree: bool = False
  options: Tuple[str, ...] = ()
  count: Optional[Callable[[DataConfig], int]] = None

  def __call__(self, *args):
    return self.batches(*args)


def _tfds(name: str, crops: Mapping[str, preprocessing.Preset], preset: Mapping[str, Any]) -> DataSource:
  return DataSource(_real, _tfds_images, description=f"TFDS {name}", crops=crops, preset=preset,
                    options=("split", "tfds_data_dir", "tfds_download"))


def _scan_folder(cfg: DataConfig) -> Tuple[int, list]:
  paths, report = folder.scan_folder(cfg.data_dir, cfg.corrupt_is_fatal)
  return len(paths), report.skipped


def _scan_lsun(cfg: DataConfig) -> Tuple[int, list]:
  reader = lsun.lsun_reader(cfg.data_dir, cfg.lsun_category, cfg.split, cfg.corrupt_is_fatal)
  return len(reader), reader.report.skipped


# Run length at the papers' scale, for the sources without a paper run of their own.
_LONG_RUN = {"train.steps": 100000}

# The sources by name: --dataset's choices and every dispatch on the dataset go through this dict.
DATASETS = {
    # Built in, no download: one stroke-drawn digit 0-9, white on black (`--shapes_style=digits`, like
    # MNIST), one channel, quarter-width nets, so that the default run (with the default loss rep_b, at batch
    # 32 and twice Wang's learning rates: flags/presets.py PAIR_PRESETS) draws recognisable digits within its
    # 1000 steps, minutes on a CPU; KID falls below a fifth of its first evaluation (BENCHMARKS.md, "Default
    # run"). Wang's C = 64^(1/L) in the conv spectral norm. `--shapes_style=simple` (one large bright shape) and
    # `mixed` (1-3 shapes on colour) are harder: give `--channels=3` for colour.
    "shapes": DataSource(_shapes, validate=_validate_shapes, identity_fields=("shapes_style",),
                         options=("split", "shapes_style"),
                         description="built in, no download", crops=preprocessing.SQUASH,
                         preset={"data.image_size": 32, "data.channels": 1, "model.width": 0.25,
                                 "data.shapes_style": "digits", "eval.real_split": "test",
                                 "train.steps": 1000, "eval.eval_every": 500, "eval.num_samples": 256,
                                 "eval.kid_subset_size": 128, "train.log_every": 100, "train.sample_every": 500,
                                 "train.checkpoint_every": 500}),
    "mnist": _tfds("mnist", preprocessing.MNIST, {"data.image_size": 32, "data.channels": 1, "train.steps": 50000}),
    "cifar10": _tfds("cifar10", preprocessing.CIFAR10, {"data.image_size": 32, "data.channels": 3, **_LONG_RUN}),
    "stl10": _tfds("stl10", preprocessing.STL10,
                   {"data.image_size": 48, "data.channels": 3, "data.split": "unlabelled", **_LONG_RUN}),
    "celeb_a": _tfds("celeb_a", preprocessing.CELEB_A,
                     {"data.image_size": 64, "data.channels": 3, "data.preprocessing": "wang", **_LONG_RUN}),
    "lsun": DataSource(_real, _lsun_images, needs_data_dir=True, identity_fields=("lsun_category",),
                       validate=_validate_lsun, description="LSUN LMDB", crops=preprocessing.LSUN_LIKE,
                       preset={"data.image_size": 64, "data.channels": 3, **_LONG_RUN}, scan=_scan_lsun,
                       options=("data_dir", "split", "lsun_category", "corrupt_is_fatal")),
    "folder": DataSource(_counted, _folder_images, needs_data_dir=True, validate=_validate_folder,
                         description="a folder of images", crops=preprocessing.FOLDER,
                         preset={"data.image_size": 64, "data.channels": 3, **_LONG_RUN}, scan=_scan_folder,
                         reads_tree=True, options=("data_dir", "corrupt_is_fatal"),
                         count=lambda cfg: _scan_folder(cfg)[0]),  # cached: the validation scanned it
    "npz": DataSource(_counted, _npz_images, needs_data_dir=True, validate=_validate_npz,
                      description="FILE.npz[:KEY]", crops=preprocessing.ARRAYS,
                      preset={"data.image_size": 32, "data.channels": 3, **_LONG_RUN},
                      options=("data_dir", "split"),  # the split names the array x_<split> unless :KEY does
                      count=lambda cfg: len(npz.load_images(cfg.data_dir, cfg.split))),
    "tfrecord": DataSource(tfrecord.tfrecord_batches, needs_data_dir=True, validate=_validate_tfrecord,
                           description="tools/prepare_dataset.py output", crops=preprocessing.NATIVE,
                           preset={"data.image_size": 64, "data.channels": 3, **_LONG_RUN},
                           options=("data_dir",), count=lambda cfg: tfrecord.read_info(cfg.data_dir)["num_examples"]),
}


def preprocessing_preset(cfg: DataConfig) -> preprocessing.Preset:
  """The named crop `cfg.preprocessing` of `cfg.dataset`; ValueError naming it and the valid ones."""
  source = DATASETS.get(cfg.dataset)
  return preprocessing.named(source.crops if source else {}, cfg.dataset, cfg.preprocessing)


def make_dataset(cfg: DataConfig, batch_size: int, seed: int,
                 input_context: Optional[tf.distribute.InputContext] = None,
                 repeat: bool = True, shuffle: bool = True) -> tf.data.Dataset:
  """The input pipeline of `cfg.dataset`.

  Args:
    cfg: the data section of the config (validated here, see `validate_data_config`).
    batch_size: examples per batch of this input pipeline (per replica under
      `distribute_datasets_from_function`).
    seed: seeds shuffling, random crops/flips and the `shapes` stream; same seed -> same stream.
    input_context: from `distribute_datasets_from_function`; with several input pipelines, pipeline i reads
      only its own shard, so replicas see disjoint examples.
    repeat: endless stream (True) or one pass (False).
    shuffle: shuffle the examples (ignored by `shapes`, whose examples are independent draws).

  Returns:
    tf.data.Dataset of float32 [batch_size, S, S, C] in the range of `cfg.image_range`.
  """
  validate_data_config(cfg)
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  pipeline_id, num_pipelines = _pipeline_position(input_context)
  dataset = DATASETS[cfg.dataset](cfg, batch_size, seed, pipeline_id, num_pipelines, repeat, shuffle)
  image_shape = [batch_size, cfg.image_size, cfg.image_size, cfg.channels]
  dataset = dataset.map(lambda images: tf.ensure_shape(images_lib.from_unit(images, cfg.image_range), image_shape),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.prefetch(tf.data.AUTOTUNE)


def _validate_source(cfg: DataConfig) -> None:
  """Checks that the data of the source is there and usable."""
  source = DATASETS[cfg.dataset]
  if source.needs_data_dir and not cfg.data_dir:
    raise ConfigError("data.data_dir", cfg.data_dir, f"--dataset={cfg.dataset} reads its images from it")
  source.validate(cfg)


def split_ignored(cfg: DataConfig) -> Optional[str]:
  """Why `cfg.split` picks no images of this source (it has no splits, or `FILE.npz:KEY` names the array),
  or None where the split is read."""
  if "split" not in DATASETS[cfg.dataset].options:
    return f"--dataset={cfg.dataset} has no splits"
  if cfg.dataset == "npz" and npz.parse_spec(cfg.data_dir or "")[1]:
    return f"--data_dir={cfg.data_dir} names its array"
  return None


def validate_data_config(cfg: DataConfig) -> None:
  """Raises ValueError naming the bad value when `cfg` cannot give a dataset (checks folders and LMDBs too)."""
  if cfg.dataset not in DATASETS:
    raise ValueError(f"unknown dataset {cfg.dataset!r}; expected one of {sorted(DATASETS)}")
  images_lib.check_range(cfg.image_range)
  if cfg.channels not in (1, 3):
    raise ConfigError("data.channels", cfg.channels, "must be 1 or 3")
  if not MIN_IMAGE_SIZE <= cfg.image_size <= MAX_IMAGE_SIZE:
    raise ConfigError("data.image_size", cfg.image_size, f"is outside [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}]")
  if cfg.shuffle_buffer < 1:
    raise ConfigError("data.shuffle_buffer", cfg.shuffle_buffer, "must be >= 1")
  preprocessing_preset(cfg)
  _validate_source(cfg)


def image_identity(cfg) -> dict:
  """The fields of a `DataConfig` that decide which images (pixels) a split yields: the key of cached
  features. Style and category count only where the source reads them."""
  identity = {"dataset": cfg.dataset, "split": cfg.split, "image_size": cfg.image_size,
              "channels": cfg.channels, "preprocessing": cfg.preprocessing, "data_dir": cfg.data_dir}
  source = DATASETS.get(cfg.dataset)
  identity.update({name: getattr(cfg, name) for name in (source.identity_fields if source else ())})
  return identity


def first_images(cfg: DataConfig, num: int, batch_size: int) -> Iterator[tf.Tensor]:
  """The first `num` images of `cfg`'s split in reading order (no shuffle), as float batches in
  `cfg.image_range`: the real images that KID and FID compare with, in training and in the tools.

  Raises:
    ValueError: the split has fewer than `num` images (counted in whole batches of `batch_size`).
  """
  seen = 0
  for batch in make_dataset(cfg, min(batch_size, num), seed=0, repeat=False, shuffle=False):
    batch = batch[:num - seen]
    seen += len(batch)
    yield batch
    if seen >= num:
      return
  raise TooFewImages(f"{cfg.dataset}:{cfg.split}{' of ' + cfg.data_dir if cfg.data_dir else ''} has {seen} "
                     f"images (in whole batches of {min(batch_size, num)}), {num} requested")

