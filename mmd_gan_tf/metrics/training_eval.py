"""What the trainer calls every `eval_every` steps: real features (cached), generated features, KID/FID.

Typical use (cross-replica context, i.e. outside `strategy.run`):

  weights, network = load_network(cfg.eval, strategy)
  real = real_features(cfg, weights, network)                      # once; cached on disk
  sample = lambda n, index: noise.sample_z(cfg.model, n, noise.stream_seed(cfg.train.seed, noise.EVALUATION, index))
  fake = generated_features(generator, sample, network, cfg.eval.num_samples, cfg.eval.eval_batch_size,
                            cfg.data.image_range)
  scores = generator_scores(real, fake, cfg.eval, seed=step)       # {"kid": .., "kid_std": .., "fid": ..}
"""

from typing import Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from mmd_gan_tf.metrics import feature_cache
from mmd_gan_tf.metrics import features as features_lib
from mmd_gan_tf.metrics import inception
from mmd_gan_tf.metrics import inception_weights
from mmd_gan_tf.metrics import registry


def load_network(eval_cfg, strategy: Optional[tf.distribute.Strategy] = None):
  """(weights, FID Inception model) from `eval_cfg.inception_weights` (or the download cache).

  Without given or cached weights they are downloaded once (progress bar), converted, checked and cached, as
  `tools/evaluate.py` does (unless $MMD_GAN_TF_NO_DOWNLOAD is set).
  """
  weights = inception_weights.load_inception_weights(eval_cfg.inception_weights,
                                                     eval_cfg.feature_cache_dir, download=True)
  if strategy is None:
    return weights, inception.build_fid_inception(weights)
  with strategy.scope():
    return weights, inception.build_fid_inception(weights)


def real_data_config(cfg):
  """The data config of the real images KID compares with: cfg.data, with cfg.eval's held-out split or
  data_dir when given (e.g. `--eval_split=test`)."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  data = cfg.data
  if cfg.eval.real_split:
    data = dataclasses.replace(data, split=cfg.eval.real_split)
  if cfg.eval.real_data_dir:
    data = dataclasses.replace(data, data_dir=cfg.eval.real_data_dir)
  return data


def real_features(cfg, weights, network, num_samples: Optional[int] = None,
                  held_out: bool = True) -> np.ndarray:
  """Inception features [num_samples, 2048] of the first real images of `real_data_config(cfg)`, cached.

  The cache key is `data.image_identity` (dataset, split, image size, channels, preprocessing, data_dir,
  and the shapes style or LSUN category), the count and the weights' sha256.

  Raises:
    ValueError: the split has fewer than `num_samples` images.
  """
  from mmd_gan_tf.data import first_images, image_identity  # pylint: disable=import-outside-toplevel
  data = real_data_config(cfg) if held_out else cfg.data
  num = num_samples or cfg.eval.num_samples
  batch_size = min(cfg.eval.eval_batch_size, num)
  fields = {"kind": "dataset", **image_identity(data), "num": num, "weights_sha256": weights.sha256}

  def compute():
    return features_lib.extract_features(network, first_images(data, num, batch_size),
                                         image_range=data.image_range)

  return feature_cache.cached_features(fields, compute, cfg.eval.feature_cache_dir)[0]


def generated_features(generator, sample_z: Callable[[int, int], tf.Tensor], network,
                       num_samples: int, batch_size: int, image_range: str) -> tf.Tensor:
  """Features [num_samples, 2048] (float32 tensor) of generator samples, batch by batch.

  Args:
    generator: G(z, training=False) -> images in `image_range` (tanh / sigmoid).
    sample_z: (batch size, batch index) -> z; the caller keys the noise on the index (`noise.stream_seed`).
    network: the FID Inception model.
    num_samples, batch_size: how many, and per forward pass.
    image_range: the generator's output range; images are quantised to 8 bits like saved samples.
  """
  extractor = features_lib.make_extractor(network)
  outputs = []
  for index, start in enumerate(range(0, num_samples, batch_size)):
    images = generator(sample_z(min(batch_size, num_samples - start), index), training=False)
    outputs.append(extractor(inception.to_inception_pixels(images, image_range)))
  return tf.concat(outputs, axis=0)


def generator_scores(real, fake, eval_cfg, seed) -> Dict[str, tf.Tensor]:
  """The scores of `eval_cfg.metrics` (e.g. {"kid", "kid_std", "fid"}) of feature sets, float64 scalars,
  in-graph usable.

  Args:
    real: [M, 2048] real features; fake: [N, 2048] generated features.
    eval_cfg: `EvalConfig` (the metrics, KID's subset sizes, FID's minimum count).
    seed: int or scalar int tensor (the step) seeding the KID subsets.

  Raises:
    ValueError: fewer features than kid_subset_size (or fid_min_samples): no silent shrinking.
  """
  settings = registry.MetricSettings(kid_subsets=eval_cfg.kid_subsets,
                                     kid_subset_size=eval_cfg.kid_subset_size,
                                     fid_min_samples=eval_cfg.fid_min_samples, seed=seed, in_graph=True)
  scores = {}
  for name in eval_cfg.metrics:
    scores.update(registry.METRICS[name](real, fake, None, settings))
  return scores
