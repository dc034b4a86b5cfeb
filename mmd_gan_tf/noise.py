"""Latent codes and the named noise streams of a run.

Every random draw of training, evaluation and export is stateless: a pure function of a seed [2] built
from the run seed, a named stream and the indices that make the draw unique (step, replica, batch). A
resumed run therefore draws exactly what an uninterrupted run would have drawn, and no two purposes share
draws. The streams are named here, once.
"""

from typing import Optional

import tensorflow as tf

from mmd_gan_tf.config import ModelConfig

Z_DISTRIBUTIONS = ("normal", "uniform")

# Streams of the training step, keyed by (step, stream, replica): see `step_seed`.
CRITIC, GENERATOR, SAMPLES, PENALTY = 1, 2, 3, 4
# Streams keyed by (stream, *indices) under the run seed: see `stream_seed`.
EVALUATION = 5      # in-training KID: the same z at every evaluation (batch index only), so KID moves
                    # with the generator, not with the noise
LR_ADAPTATION = 6   # KID-driven lr adaptation: fresh z per test (step, batch index), as its test assumes
# tf.data shuffles with an int seed; a resumed run reads a fresh part of the stream (seed + stride * step).
DATA_SHUFFLE_STRIDE = 7919
# An exported generator's `sample(num_samples, seed)` takes one int seed per call; tools drawing many
# batches from it use seed * stride + batch index, so runs with nearby seeds share no batch.
EXPORT_BATCH_STRIDE = 1_000_003


def _fold(key: tf.Tensor, *indices) -> tf.Tensor:
  for index in indices:
    key = tf.random.experimental.stateless_fold_in(key, tf.cast(index, tf.int64))
  return key


def step_seed(seed: int, step, stream: int) -> tf.Tensor:
  """A stateless seed [2] unique to (run seed, step, stream, replica): the training step's draws.

  Keying noise on the checkpointed step makes a resumed run draw exactly the z an uninterrupted run
  would have drawn: the RNG state is the step counter.
  """
  ctx = tf.distribute.get_replica_context()
  replica = ctx.replica_id_in_sync_group if ctx is not None else 0
  return _fold(tf.constant([seed, 0], tf.int64), step, stream, replica)


def stream_seed(seed: int, stream: int, *indices) -> tf.Tensor:
  """A stateless seed [2] unique to (run seed, stream, *indices)."""
  return _fold(tf.constant([seed, 0], tf.int64), stream, *indices)


def data_seed(seed: int, start_step: int) -> int:
  """The tf.data shuffle seed of a run (re)started at `start_step`."""
  return seed + DATA_SHUFFLE_STRIDE * start_step


def export_batch_seed(seed: int, index: int) -> int:
  """The int seed of batch `index` drawn from an exported generator by a tool run with `seed`."""
  return seed * EXPORT_BATCH_STRIDE + index


def validate_z_distribution(cfg: ModelConfig) -> None:
  if cfg.z_distribution not in Z_DISTRIBUTIONS:
    raise ValueError(f"unknown z_distribution {cfg.z_distribution!r}; choose one of {list(Z_DISTRIBUTIONS)}")


def sample_z(cfg: ModelConfig, batch_size, seed: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Latent codes z [batch_size, z_dim] float32 from N(0, 1) or U[-1, 1] (`cfg.z_distribution`).

  Args:
    cfg: the model config.
    batch_size: int or scalar int tensor.
    seed: None (the stateful global RNG); a stateless seed [2] (`step_seed`, `stream_seed`); or an int /
      scalar int tensor s, meaning the stateless seed [s, 0] (the exported `sample(num_samples, seed)`,
      fixed grids): the draw is then a pure function of (seed, batch_size).
  """
  validate_z_distribution(cfg)
  shape = tf.stack([tf.cast(batch_size, tf.int32), cfg.z_dim])
  uniform = cfg.z_distribution == "uniform"
  if seed is None:
    return tf.random.uniform(shape, -1.0, 1.0) if uniform else tf.random.normal(shape)
  seed = tf.convert_to_tensor(seed)
  if seed.shape.rank == 0:
    seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
  if uniform:
    return tf.random.stateless_uniform(shape, seed, -1.0, 1.0)
  return tf.random.stateless_normal(shape, seed)
