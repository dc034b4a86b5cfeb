"""Prepared datasets: sharded TFRecords of preprocessed uint8 images (written by tools/prepare_dataset.py).

Layout of a prepared directory: `dataset_info.json` (format, image_size, channels, num_examples, num_shards,
source, preprocessing) and `images-XXXXX-of-YYYYY.tfrecord`. Each record is a tf.train.Example whose
"image" feature is the raw uint8 bytes of an [S, S, C] image (no decoding cost; 12 KiB at 64 px RGB).
Example i goes to shard i mod YYYYY, so reading the shards round-robin restores the source order.
"""

import json
import os
from typing import List

import numpy as np
import tensorflow as tf

from mmd_gan_tf.config import ConfigError, DataConfig
from mmd_gan_tf.data.errors import TooFewImages

FORMAT = "mmd_gan_tf.tfrecord.v1"
INFO_FILE = "dataset_info.json"
_READ_BUFFER = 1 << 18
_COUNT_FIELDS = ("image_size", "channels", "num_examples", "num_shards")  # whole numbers in dataset_info.json


def shard_path(out_dir: str, index: int, num_shards: int) -> str:
  return os.path.join(out_dir, f"images-{index:05d}-of-{num_shards:05d}.tfrecord")


def serialize(image: np.ndarray) -> bytes:
  """One uint8 [S, S, C] image as a serialized tf.train.Example."""
  feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[np.ascontiguousarray(image).tobytes()]))
  return tf.train.Example(features=tf.train.Features(feature={"image": feature})).SerializeToString()


def write_info(out_dir: str, info: dict) -> None:
  with open(os.path.join(out_dir, INFO_FILE), "w") as f:
    json.dump(dict(info, format=FORMAT), f, indent=2, sort_keys=True)


def read_info(data_dir: str) -> dict:
  """The prepared directory's info; ValueError when `data_dir` is not one (or shards are missing)."""
  path = os.path.join(data_dir, INFO_FILE)
  if not os.path.isdir(data_dir):
    raise ConfigError("data.data_dir", data_dir, "does not exist or is not a directory")
  if not os.path.isfile(path):
    raise ValueError(f"data_dir {data_dir!r} has no {INFO_FILE}; prepare it with tools/prepare_dataset.py")
  with open(path) as f:
    try:
      info = json.load(f)
    except json.JSONDecodeError as error:
      raise ValueError(f"{path} is not valid JSON ({error}): the prepared dataset is damaged; prepare it "
                       "again with tools/prepare_dataset.py") from error
  if not isinstance(info, dict):
    raise ValueError(f"{path!r} holds a JSON {type(info).__name__}, not the object tools/prepare_dataset.py "
                     "writes: the prepared dataset is damaged; prepare it again")
  if info.get("format") != FORMAT:
    raise ValueError(f"{path!r} has format {info.get('format')!r}, expected {FORMAT!r}")
  for field in _COUNT_FIELDS:
    value = info.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if field == "num_examples" else 1):
      raise ValueError(f"{path} has {field}={value!r}, not a whole number >= "
                       f"{0 if field == 'num_examples' else 1}: the prepared dataset is damaged; prepare it again "
                       "with tools/prepare_dataset.py")
  missing = [p for p in shard_files(data_dir, info) if not os.path.isfile(p)]
  if missing:
    raise ValueError(f"prepared dataset {data_dir!r} lacks shards: {missing[:3]}")
  if info["num_examples"] < 1:
    raise ValueError(f"prepared dataset {data_dir!r} has no images")
  _check_shard_sizes(data_dir, info)
  return info


def _check_shard_sizes(data_dir: str, info: dict) -> None:
  """Every record has the same size (one raw image), so each shard's size is known: a shard cut short or
  emptied is named here, before training, instead of a DataLossError mid-run (or silently less data)."""
  record = len(serialize(np.zeros([info["image_size"], info["image_size"], info["channels"]], np.uint8))) + 16
  shards, total = info["num_shards"], info["num_examples"]
  for index, path in enumerate(shard_files(data_dir, info)):
    count = total // shards + (1 if index < total % shards else 0)  # example i went to shard i mod shards
    size = os.path.getsize(path)
    if size != count * record:
      raise ValueError(f"{path} has {size} bytes, not the {count * record} of its {count} images: the prepared "
                       "dataset is damaged (a shard cut short or replaced); prepare it again with "
                       "tools/prepare_dataset.py")


def shard_files(data_dir: str, info: dict) -> List[str]:
  return [shard_path(data_dir, i, info["num_shards"]) for i in range(info["num_shards"])]


def check_matches(cfg: DataConfig, info: dict) -> None:
  """ValueError when the prepared images do not have the size and channels the config asks for."""
  if (info["image_size"], info["channels"]) != (cfg.image_size, cfg.channels):
    raise ValueError(f"prepared dataset {cfg.data_dir!r} holds {info['image_size']}px x {info['channels']} "
                     f"channel images, but image_size={cfg.image_size}, channels={cfg.channels}; re-run "
                     "tools/prepare_dataset.py with those values")


def _parse_batch(records: tf.Tensor, size: int, channels: int) -> tf.Tensor:
  """Serialized examples [B] -> float32 [B, S, S, C] in [0, 1]."""
  features = tf.io.parse_example(records, {"image": tf.io.FixedLenFeature([], tf.string)})
  pixels = tf.io.decode_raw(features["image"], tf.uint8)
  return tf.cast(tf.reshape(pixels, [-1, size, size, channels]), tf.float32) / 255.0


def tfrecord_batches(cfg: DataConfig, batch_size: int, seed: int, pipeline_id: int, num_pipelines: int,
                     repeat: bool, shuffle: bool) -> tf.data.Dataset:
  """Batches float32 [batch_size, S, S, C] in [0, 1] from a prepared directory.

  With several input pipelines, whole shards go to each pipeline when the shard count divides evenly,
  otherwise records are sharded one by one (every pipeline then reads every file).
  """
  info = read_info(cfg.data_dir)
  check_matches(cfg, info)
  per_pipeline = info["num_examples"] // num_pipelines
  if per_pipeline < batch_size:  # as the folder and npz sources: repeating would mix epochs in one batch
    raise TooFewImages(f"data_dir {cfg.data_dir!r} has {info['num_examples']} images ({per_pipeline} per input "
                       f"pipeline), fewer than one batch of {batch_size}")
  files = shard_files(cfg.data_dir, info)
  by_file = num_pipelines > 1 and len(files) % num_pipelines == 0
  if by_file:
    files = files[pipeline_id::num_pipelines]
  dataset = tf.data.Dataset.from_tensor_slices(files)
  if shuffle:
    dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
  # Without shuffling, all files are read round-robin, one record each: the order of the source.
  cycle = min(len(files), 16) if shuffle else len(files)
  dataset = dataset.interleave(lambda f: tf.data.TFRecordDataset(f, buffer_size=_READ_BUFFER),
                               cycle_length=cycle, block_length=1, num_parallel_calls=tf.data.AUTOTUNE,
                               deterministic=True)
  if num_pipelines > 1 and not by_file:
    dataset = dataset.shard(num_pipelines, pipeline_id)
  if shuffle:
    dataset = dataset.shuffle(cfg.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  if repeat:
    dataset = dataset.repeat()
  dataset = dataset.batch(batch_size, drop_remainder=True)
  return dataset.map(lambda records: _parse_batch(records, cfg.image_size, cfg.channels),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
