"""`make_dataset` and `validate_data_config`: one entry point over every image source.

Every dataset ends the same way: float32 [batch, S, S, C] in [-1, 1] (image_range "tanh") or [0, 1]
("sigmoid"), drop_remainder=True, prefetched. `batch_size` is per input pipeline: under
`strategy.distribute_datasets_from_function` the trainer passes `ctx.get_per_replica_batch_size(global)`
and the `input_context`, and each pipeline reads a disjoint shard of the examples.
"""

from typing import Optional

import tensorflow as tf

from mmd_gan_tf.config import DataConfig
from mmd_gan_tf.data import shapes

IMAGE_RANGES = ("tanh", "sigmoid")
MIN_IMAGE_SIZE = 4
MAX_IMAGE_SIZE = 1024


def to_image_range(images: tf.Tensor, image_range: str) -> tf.Tensor:
  """Maps float images in [0, 1] to the range of `image_range`: tanh -> [-1, 1], sigmoid -> [0, 1]."""
  if image_range == "tanh":
    return images * 2.0 - 1.0
  if image_range == "sigmoid":
    return images
  raise ValueError(f"image_range {image_range!r} is not one of {IMAGE_RANGES}")


def _pipeline_position(input_context: Optional[tf.distribute.InputContext]):
  """(pipeline_id, num_pipelines) of this input pipeline; (0, 1) without distribution."""
  if input_context is None or input_context.num_input_pipelines <= 1:
    return 0, 1
  return input_context.input_pipeline_id, input_context.num_input_pipelines


def _shapes(cfg: DataConfig, batch_size, seed, pipeline_id, num_pipelines, repeat, shuffle):
  del shuffle  # every example is already an independent random draw
  return shapes.shapes_dataset(cfg.image_size, cfg.channels, batch_size, seed, split=cfg.split,
                               pipeline_id=pipeline_id, num_pipelines=num_pipelines, repeat=repeat)


# dataset name -> fn(cfg, batch_size, seed, pipeline_id, num_pipelines, repeat, shuffle) -> batches in [0, 1]
DATASETS = {
    "shapes": _shapes,
}


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
  dataset = dataset.map(lambda images: tf.ensure_shape(to_image_range(images, cfg.image_range), image_shape),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.prefetch(tf.data.AUTOTUNE)


def validate_data_config(cfg: DataConfig) -> None:
  """Raises ValueError naming the bad value when `cfg` cannot give a dataset."""
  if cfg.dataset not in DATASETS:
    raise ValueError(f"unknown dataset {cfg.dataset!r}; expected one of {sorted(DATASETS)}")
  if cfg.image_range not in IMAGE_RANGES:
    raise ValueError(f"image_range {cfg.image_range!r} is not one of {IMAGE_RANGES}")
  if cfg.channels not in (1, 3):
    raise ValueError(f"channels must be 1 or 3, got {cfg.channels}")
  if not MIN_IMAGE_SIZE <= cfg.image_size <= MAX_IMAGE_SIZE:
    raise ValueError(f"image_size {cfg.image_size} is outside [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}]")
  if cfg.dataset == "shapes":
    shapes.split_id(cfg.split)
    if cfg.preprocessing != "default":
      raise ValueError(f"preprocessing {cfg.preprocessing!r} is not available for shapes; use 'default'")
