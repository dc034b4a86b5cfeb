"""Writing a prepared dataset: a source that can be scanned (an image folder, an LSUN LMDB: `sources()`) ->
sharded TFRecords (`tfrecord.py` reads them).

`prepare(cfg, out_dir)` is what tools/prepare_dataset.py runs; tools/bench_input.py uses it to build the
prepared form of its synthetic data.
"""

import math
import os
import re

import tensorflow as tf
import tqdm
from absl import logging

from mmd_gan_tf import checkpointing
from mmd_gan_tf.config import DataConfig
from mmd_gan_tf.data import tfrecord
from mmd_gan_tf.data.pipeline import DATASETS, make_examples, preprocessing_preset, validate_data_config

_SHARD_BYTES = 128 << 20  # aim for ~128 MiB per shard


def sources() -> list:
  """The sources `prepare` converts: those whose registry entry can scan them (`DataSource.scan`)."""
  return [name for name, source in DATASETS.items() if source.scan is not None]


def _source_size(cfg: DataConfig) -> int:
  """Images the source offers after its structural check (a folder's files, an LMDB's entries)."""
  return DATASETS[cfg.dataset].scan(cfg)[0]


def _skipped(cfg: DataConfig):
  return DATASETS[cfg.dataset].scan(cfg)[1]


def prepare(cfg: DataConfig, out_dir: str, num_shards: int = 0, limit: int = 0, progress: bool = True) -> dict:
  """Writes the prepared dataset of `cfg` (a source of `sources()`) to `out_dir`; returns its info dict.

  Args:
    cfg: the source (dataset, data_dir, lsun_category, split), image_size, channels, preprocessing.
    out_dir: created if needed; must be new or empty (the shards of an interrupted earlier run are removed),
      outside the source; locked while writing.
    num_shards: 0 picks ~128 MiB shards.
    limit: stop after this many images (0 = all).
    progress: show a tqdm progress bar.
  """
  if cfg.dataset not in sources():
    raise ValueError(f"prepare_dataset reads {' or '.join(sources())}, not dataset {cfg.dataset!r}")
  interrupted = _check_out_dir(cfg, out_dir)  # before the scan, which can take long
  validate_data_config(cfg)
  preset = preprocessing_preset(cfg)
  if preset.random:
    raise ValueError(f"preprocessing {cfg.preprocessing!r} is random (crops/flips must differ per epoch); "
                     "prepare with a deterministic one, e.g. 'center'")
  os.makedirs(out_dir, exist_ok=True)
  lock = checkpointing.WorkdirLock(out_dir, advice="wait for it to end, or choose another --out_dir")
  try:
    _check_out_dir(cfg, out_dir, interrupted)  # again under the lock: another process may have written there
    info = _write(cfg, out_dir, num_shards, limit, progress)
  finally:
    lock.release()
  os.remove(os.path.join(out_dir, checkpointing.LOCK_FILE))  # done: the folder holds the dataset only
  return info


_SHARD_NAME = re.compile(r"^images-\d{5}-of-\d{5}\.tfrecord$")


def _check_out_dir(cfg: DataConfig, out_dir: str, interrupted: bool = False) -> bool:
  """`out_dir` must be new or empty, outside the source. Shards are removed only where an interrupted earlier
  run of `prepare` left its lock file beside them (`interrupted`: that file was there before this run took the
  lock); shard-named files without it are the user's and make the folder 'not empty'. Returns whether the lock
  file of an earlier run is there."""
  if not out_dir:
    raise ValueError("--out_dir is empty: name the folder to write the prepared dataset to")
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise ValueError(f"--out_dir={out_dir} exists and is not a folder; choose a new or empty folder")
  checkpointing.refuse_inside_runs("--out_dir", out_dir)
  source = os.path.realpath(cfg.data_dir)
  target = os.path.realpath(out_dir)
  inside = DATASETS[cfg.dataset].reads_tree and target.startswith(source.rstrip(os.sep) + os.sep)
  if target == source or inside:
    raise ValueError(f"--out_dir={out_dir} is inside --data_dir={cfg.data_dir}: the shards would join the "
                     "source; choose a folder elsewhere")
  if not os.path.isdir(out_dir):
    return False
  names = set(os.listdir(out_dir))
  interrupted = interrupted or checkpointing.LOCK_FILE in names
  names -= {checkpointing.LOCK_FILE}
  if tfrecord.INFO_FILE in names:
    raise ValueError(f"--out_dir={out_dir} already holds a prepared dataset; choose a new or empty folder")
  partial = {name for name in names if _SHARD_NAME.match(name)} if interrupted else set()
  if names - partial:
    raise ValueError(f"--out_dir={out_dir} is not empty (e.g. {sorted(names - partial)[0]!r}); choose a new "
                     "or empty folder")
  for name in sorted(partial):  # shards of a run that stopped before writing dataset_info.json
    os.remove(os.path.join(out_dir, name))
  if partial:
    logging.warning("removed %d shard(s) of an interrupted earlier run from %s", len(partial), out_dir)
  return interrupted


def _write(cfg: DataConfig, out_dir: str, num_shards: int, limit: int, progress: bool) -> dict:
  total = _source_size(cfg)
  skipped_before = len(_skipped(cfg))  # found by the scan, so not in `total` (a folder's bad files)
  total = min(total, limit) if limit else total
  image_bytes = cfg.image_size * cfg.image_size * cfg.channels
  if num_shards > max(total, 1):  # more shards than images: the rest would be empty files
    logging.warning("--num_shards=%d is more than the %d images: writing %d shards", num_shards, total,
                    max(total, 1))
    num_shards = max(total, 1)
  num_shards = num_shards or max(1, math.ceil(total * image_bytes / _SHARD_BYTES))
  # ignore_errors: an image whose structure is intact but whose data does not decode is skipped (and logged).
  examples = make_examples(cfg, seed=0, repeat=False, shuffle=False).ignore_errors(log_warning=True)
  if limit:
    examples = examples.take(limit)
  writers = [tf.io.TFRecordWriter(tfrecord.shard_path(out_dir, i, num_shards)) for i in range(num_shards)]
  written = 0
  for image in tqdm.tqdm(examples.as_numpy_iterator(), total=total, unit="img", disable=not progress):
    writers[written % num_shards].write(tfrecord.serialize(image))  # round-robin: shards restore the order
    written += 1
  for writer in writers:
    writer.close()
  if written == 0:
    raise ValueError(f"no image of {cfg.data_dir!r} could be decoded; nothing written")
  skipped = _skipped(cfg)
  # A scan drops bad files before `total` (a folder); entries checked while reading (an LMDB's) are in it.
  failures = max(0, total - written - (len(skipped) - skipped_before))
  info = dict(image_size=cfg.image_size, channels=cfg.channels, num_examples=written, num_shards=num_shards,
              source=cfg.dataset, source_dir=os.path.abspath(cfg.data_dir), lsun_category=cfg.lsun_category,
              preprocessing=cfg.preprocessing, skipped=len(skipped), decode_failures=failures,
              skipped_names=[f"{name} ({why})" for name, why in skipped[:100]])
  tfrecord.write_info(out_dir, info)
  logging.info("wrote %d images in %d shards to %s (%d skipped, %d failed to decode)", written, num_shards,
               out_dir, len(skipped), failures)
  return info
