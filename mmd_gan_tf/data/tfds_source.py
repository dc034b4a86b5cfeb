"""TFDS datasets (mnist, cifar10, stl10, celeb_a): uint8 images, loaded with try_gcs=False."""

import tensorflow as tf
import tensorflow_datasets as tfds

from mmd_gan_tf.config import DataConfig

# our dataset name -> TFDS name
TFDS_DATASETS = {"mnist": "mnist", "cifar10": "cifar10", "stl10": "stl10", "celeb_a": "celeb_a"}


def tfds_images(cfg: DataConfig, split: str, seed: int, shuffle_files: bool) -> tf.data.Dataset:
  """Unbatched uint8 [H, W, C] images of a TFDS dataset.

  Reads from `cfg.tfds_data_dir` (TFDS's default, ~/tensorflow_datasets, when None) and never asks GCS. When
  the data is not prepared there, downloads it if `cfg.tfds_download`, else raises ValueError at once saying
  how to get it (offline, a download retries for minutes).
  """
  name = TFDS_DATASETS[cfg.dataset]
  builder = tfds.builder(name, try_gcs=False, data_dir=cfg.tfds_data_dir)
  if cfg.tfds_download and not builder.is_prepared():
    builder.download_and_prepare()
  try:
    dataset = builder.as_dataset(split=split, shuffle_files=shuffle_files,
                                 read_config=tfds.ReadConfig(shuffle_seed=seed))
  except AssertionError as error:  # what TFDS raises for data that is not prepared
    raise ValueError(
        f"TFDS dataset {name!r} is not prepared in tfds_data_dir {cfg.tfds_data_dir or '~/tensorflow_datasets'!r}"
        f" ({error}); run `tfds build {name} --data_dir=<dir>` (see README) and pass that --tfds_data_dir, or "
        "set --tfds_download") from error
  return dataset.map(lambda example: example["image"], num_parallel_calls=tf.data.AUTOTUNE)
