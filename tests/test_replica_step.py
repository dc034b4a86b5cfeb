"""The training step main.py runs gives the same weights on 2 replicas as on one device.

The very functions the trainer runs (`trainer.build_networks`, `trainer.distributed_fns`, `trainer.iteration`,
hence `steps.make_replica_fns`: the all-gather of the critic features, the division of every loss by the
replica count, the global per-tensor clipping) take two generator steps with plain SGD (Adam and RMSprop
would hide a scale error) on one global batch per step, once on one device and once on 2 logical CPU
replicas. Two things are made equal that the run draws per replica by design: the generator is a small
network without batch norm (batch statistics are per replica), and the noise streams are drawn for the
global batch and sliced per replica (a run folds the replica id into its seeds; `test_noise_streams.py`
tests that). Everything else is the product's code.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import make_two_replica_strategy
from flags import build as config_builder
from mmd_gan_tf import distribute
from mmd_gan_tf import noise
from mmd_gan_tf import optimizers
from mmd_gan_tf import penalties
from mmd_gan_tf import steps as steps_lib
from mmd_gan_tf import trainer

GLOBAL_BATCH = 8
STEPS = 2
CRITIC_SCALE = 8.0


def _replica_slice(global_tensor: tf.Tensor, local_batch) -> tf.Tensor:
  ctx = tf.distribute.get_replica_context()
  replica = ctx.replica_id_in_sync_group if ctx is not None else 0
  return global_tensor[replica * local_batch:(replica + 1) * local_batch]


@pytest.fixture
def global_noise(monkeypatch):
  """Every step draw keyed by (seed, step, stream) only, drawn for the global batch and sliced per replica."""
  def step_seed(seed, step, stream):
    return noise.stream_seed(seed, stream, step)

  original_sample_z = noise.sample_z

  def sample_z(cfg, batch_size, seed=None):
    replicas = distribute.num_replicas()
    return _replica_slice(original_sample_z(cfg, batch_size * replicas, seed), batch_size)

  original_interpolate = penalties.interpolate

  def interpolate(real, fake, alpha=None, seed=None):
    batch = tf.shape(real)[0]
    global_alpha = tf.random.stateless_uniform([batch * distribute.num_replicas()], seed, dtype=real.dtype)
    return original_interpolate(real, fake, alpha=_replica_slice(global_alpha, batch))

  monkeypatch.setattr(noise, "step_seed", step_seed)
  monkeypatch.setattr(noise, "sample_z", sample_z)
  monkeypatch.setattr(penalties, "interpolate", interpolate)


def _cfg(loss: str, learning_rate: float = 0.05, **flags):
  return config_builder.build_config(dict(
      dataset="shapes", loss=loss, width=0.0625, batch_size=GLOBAL_BATCH, optimizer="sgd",
      critic_lr=learning_rate, generator_lr=learning_rate, channels=1, image_size=32, **flags))


def _networks(cfg) -> steps_lib.Networks:
  """The trainer's networks and optimizers with a generator without batch norm (same seed, same weights)."""
  nets = trainer.build_networks(cfg)
  for variable in nets.critic.trainable_variables:
    # Binkowski's N(0, 0.02) initialisation makes features of ~1e-6 in a tiny critic, where every kernel
    # term is at its zero-feature limit and MMD^2 is 0: scaled up, the kernel terms are what moves the weights.
    variable.assign(variable * CRITIC_SCALE)
  keras.utils.set_random_seed(cfg.train.seed + 1)
  size, channels = cfg.data.image_size, cfg.data.channels
  generator = keras.Sequential([keras.Input((cfg.model.z_dim,)),
                                keras.layers.Dense(size * size * channels, activation="tanh"),
                                keras.layers.Reshape((size, size, channels))])
  nets = nets._replace(generator=generator,
                       generator_optimizer=optimizers.make_optimizer(cfg.optim, cfg.optim.generator_lr))
  nets.generator_optimizer.build(generator.trainable_variables)
  return nets


def _real_batches(cfg) -> np.ndarray:
  rng = np.random.default_rng(7)
  shape = (STEPS * (cfg.train.n_critic + 1) * GLOBAL_BATCH, cfg.data.image_size, cfg.data.image_size,
           cfg.data.channels)
  return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


def _weights(nets) -> list:
  return [v.numpy() for v in nets.generator.trainable_variables + nets.critic_variables]


def _train(cfg, strategy, real: np.ndarray):
  """(weights before, weights after STEPS trainer iterations on `strategy`, the last metrics)."""
  with strategy.scope():
    nets = _networks(cfg)
    step, critic_count = trainer.make_counters()
  start = _weights(nets)
  spec = trainer.losses_lib.LOSSES[cfg.loss.name]
  fns = trainer.distributed_fns(strategy, nets, cfg, spec, step, critic_count)
  dataset = tf.data.Dataset.from_tensor_slices(real).batch(GLOBAL_BATCH)
  iterator = iter(strategy.experimental_distribute_dataset(dataset))
  metrics = {}
  for generator_step in range(STEPS):
    metrics = trainer.iteration(cfg, nets, fns, iterator, generator_step)
  return start, _weights(nets), {k: float(v) for k, v in metrics.items()}


def _assert_same_training(cfg):
  real = _real_batches(cfg)
  start, one, one_metrics = _train(cfg, tf.distribute.MirroredStrategy(["/cpu:0"]), real)
  start_two, two, two_metrics = _train(cfg, make_two_replica_strategy(), real)
  moved = 0.0
  for a, b, s, s_two in zip(one, two, start, start_two):
    np.testing.assert_array_equal(s_two, s)  # built from the same seed
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    moved = max(moved, float(np.max(np.abs(a - s))))
  assert moved > 1e-3  # the steps moved the weights: the equality is not that of two untouched networks
  assert one_metrics.get("mmd2", one_metrics.get("loss/generator")) > 1e-3  # the kernel terms are not idle
  for name, value in one_metrics.items():
    assert two_metrics[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name


@pytest.mark.usefixtures("global_noise")
def test_simultaneous_step_on_two_replicas_equals_one_device():
  """Wang's rep: one pass, both players updated from the kernel terms of the gathered features."""
  cfg = _cfg("rep")
  assert cfg.train.schedule == "simultaneous" and cfg.optim.optimizer == "sgd"
  _assert_same_training(cfg)


@pytest.mark.usefixtures("global_noise")
@pytest.mark.parametrize("clipnorm, learning_rate", [(0.05, 0.05), (0.0, 0.002)])
def test_alternating_step_with_penalty_on_two_replicas_equals_one_device(clipnorm, learning_rate):
  """Binkowski's mmd_gp: 2 critic steps then the generator, the witness gradient penalty at interpolates, with
  per-tensor clipping of the global gradient at a norm small enough to bite, and without (where a gradient
  R times too large is not clipped away)."""
  cfg = _cfg("mmd_gp", learning_rate, n_critic=2, clipnorm=clipnorm)
  assert cfg.train.schedule == "alternating" and cfg.loss.gp_weight > 0 and (cfg.optim.clipnorm or 0.0) == clipnorm
  _assert_same_training(cfg)
