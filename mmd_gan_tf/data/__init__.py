"""Input pipelines: `make_dataset(cfg, batch_size, seed, input_context, repeat, shuffle)`,
`first_images(cfg, num, batch_size)` (the real images of the metrics) and `validate_data_config(cfg)` (see ARCHITECTURE.md)."""

from mmd_gan_tf.data.pipeline import (DATASETS, TooFewImages, check_one_batch, first_images, image_identity,
                                      make_dataset, split_ignored, validate_data_config)

__all__ = ["DATASETS", "TooFewImages", "check_one_batch", "first_images", "image_identity", "make_dataset", "split_ignored", "validate_data_config"]
