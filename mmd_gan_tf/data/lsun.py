"""LSUN scenes from the LMDB that LSUN distributes, read with the `lmdb` package.

Layout (`<category>_<split>_lmdb/` with `data.mdb` and `lock.mdb`): one unnamed database, key = the image's
40-hex-digit id, value = the encoded image (WebP for the scene categories, JPEG in some copies). TFDS's LSUN
builder needs tensorflow-io, which does not load on TF 2.21, hence this reader. Keys are listed once per
process (a few seconds for bedroom's 3M); values are fetched by index in the input pipeline, checked with
`inspect_image` (bad ones skipped, counted and named, or fatal) and decoded in-graph by `tf.io.decode_image`.
"""

import functools
import logging
import os
from typing import Tuple

import lmdb
import numpy as np
import tensorflow as tf

from mmd_gan_tf.config import ConfigError
from mmd_gan_tf.data.image_checks import SourceReport, inspect_image

_PROBE_ENTRIES = 4


def resolve_lmdb_dir(data_dir: str, category: str, split: str = "train") -> str:
  """The LMDB directory: `data_dir` itself (holding data.mdb) or `data_dir/<category>_<split>_lmdb`."""
  split = {"validation": "val", "test": "val"}.get(split, split)
  for candidate in (data_dir, os.path.join(data_dir, f"{category}_{split}_lmdb")):
    if os.path.isfile(os.path.join(candidate, "data.mdb")):
      return candidate
  if not os.path.isdir(data_dir):
    raise ConfigError("data.data_dir", data_dir, "does not exist or is not a directory")
  raise ValueError(f"data_dir {data_dir!r} is not an LMDB (no data.mdb) and has no {category}_{split}_lmdb/ "
                   "LMDB inside; point --data_dir at LSUN's <category>_train_lmdb or its parent")


@functools.lru_cache(maxsize=4)
def open_lmdb(path: str) -> lmdb.Environment:
  """A read-only, lock-free environment shared by the pipeline's threads."""
  try:
    return lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False, max_readers=512)
  except lmdb.Error as error:
    raise ValueError(f"cannot open LMDB {path!r}: {error}") from error


def check_lsun_layout(path: str) -> int:
  """Number of entries; ValueError if the LMDB is empty or its first values are not encoded images."""
  env = open_lmdb(path)
  entries = env.stat()["entries"]
  if entries == 0:
    raise ValueError(f"LMDB {path!r} has no entries")
  with env.begin() as txn:
    for i, (key, value) in enumerate(txn.cursor()):
      if i == _PROBE_ENTRIES:
        break
      info = inspect_image(value)
      if info.format is None:  # a damaged image is skipped later; a non-image means a foreign LMDB
        raise ValueError(f"LMDB {path!r} is not in LSUN's layout (key -> encoded image): the value of key "
                         f"{key[:64]!r} is {info.problem}")
  return entries


@functools.lru_cache(maxsize=4)
def list_keys(path: str) -> np.ndarray:
  """All keys, in the LMDB's (sorted) order, as a numpy bytes array."""
  with open_lmdb(path).begin() as txn:
    keys = list(txn.cursor().iternext(keys=True, values=False))
  # Fixed-width bytes are compact, but numpy strips trailing NULs: keep objects for such keys.
  binary = any(key.endswith(b"\x00") for key in keys)
  return np.array(keys, dtype=object if binary else bytes)


class LmdbReader:
  """Fetches value i of an LMDB for tf.numpy_function; checks it and tallies bad ones in `report`."""

  def __init__(self, path: str, corrupt_is_fatal: bool):
    self.path, self.keys = path, list_keys(path)
    self.report = SourceReport(f"lsun {path!r}", corrupt_is_fatal)

  def __len__(self) -> int:
    return len(self.keys)

  def fetch(self, index) -> Tuple[bytes, bool]:
    key = self.keys[int(index)]
    with open_lmdb(self.path).begin() as txn:
      value = txn.get(key)
    if value is None or not self.report.check(key.decode("ascii", "replace"), value):
      return b"", False
    return value, True

  def dataset(self, indices: tf.data.Dataset) -> tf.data.Dataset:
    """Maps int64 indices to encoded images, dropping the bad ones."""
    def fetch(index):
      value, ok = tf.numpy_function(self.fetch, [index], [tf.string, tf.bool], stateful=False)
      return tf.ensure_shape(value, []), tf.ensure_shape(ok, [])
    def is_ok(value, ok):
      del value
      return ok

    def drop_flag(value, ok):
      del ok
      return value
    fetched = indices.map(fetch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return fetched.filter(is_ok).map(drop_flag)


@functools.lru_cache(maxsize=4)
def lsun_reader(data_dir: str, category: str, split: str, corrupt_is_fatal: bool) -> LmdbReader:
  """Resolves and checks the LMDB and lists its keys (one reader, and one report, per process)."""
  path = resolve_lmdb_dir(data_dir, category, split)
  check_lsun_layout(path)
  reader = LmdbReader(path, corrupt_is_fatal)
  logging.info("lsun: %d entries in %s", len(reader), path)
  return reader
