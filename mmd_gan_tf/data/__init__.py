"""Input pipelines: `make_dataset(cfg, batch_size, seed, input_context, repeat, shuffle)` and
`validate_data_config(cfg)` (see ARCHITECTURE.md)."""

from mmd_gan_tf.data.pipeline import DATASETS, make_dataset, validate_data_config

__all__ = ["DATASETS", "make_dataset", "validate_data_config"]
