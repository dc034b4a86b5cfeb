"""`MMDGAN.fit` trains exactly as the trainer: the same weights after the same batches and noise, for the
simultaneous schedule, the alternating one with a gradient penalty, and Li's (warm-up, clipping), on one device
and on two logical CPU replicas."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from helpers import make_two_replica_strategy
from flags import build as config_builder
from mmd_gan_tf import fit
from mmd_gan_tf import losses
from mmd_gan_tf import trainer

NUM_BATCHES = 9


def _cfg(loss):
  cfg = config_builder.build_config(dict(dataset="shapes", loss=loss, width=0.0625, batch_size=4,
                                         workdir="/tmp/unused"))
  if loss == "mmd":  # Li's warm-up, shortened: 3 critic steps for the first generator step, then 2
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, n_critic=2, n_critic_warmup=3,
                                                             n_critic_warmup_steps=1, n_critic_warmup_every=100))
  return cfg


def _dataset(batches):
  return tf.data.Dataset.from_tensor_slices(tf.stack(batches)).batch(1).map(lambda x: x[0])


def _trainer_run(cfg, strategy, batches):
  """The trainer's own loop (`trainer.iteration`) over whole generator steps of `batches`."""
  with strategy.scope():
    nets = trainer.build_networks(cfg)
    step, critic_count = trainer.make_counters()
  fns = trainer.distributed_fns(strategy, nets, cfg, losses.LOSSES[cfg.loss.name], step, critic_count)
  iterator = iter(strategy.experimental_distribute_dataset(_dataset(batches)))
  generator_step = consumed = 0
  while True:
    per_step = 1 if cfg.train.schedule == "simultaneous" else trainer.critic_steps_for(cfg.train,
                                                                                        generator_step) + 1
    if consumed + per_step > len(batches):
      return nets, consumed, generator_step
    trainer.iteration(cfg, nets, fns, iterator, generator_step)
    generator_step, consumed = generator_step + 1, consumed + per_step


@pytest.mark.end_to_end
@pytest.mark.parametrize("replicas", [1, 2])
@pytest.mark.parametrize("loss", ["rep_b", "mmd_gp", "mmd"])
def test_fit_gives_the_trainers_weights(loss, replicas):
  cfg = _cfg(loss)
  rng = np.random.default_rng(0)
  batches = [tf.constant(rng.uniform(-1, 1, (4, 32, 32, 1)), tf.float32) for _ in range(NUM_BATCHES)]
  strategy = lambda: (make_two_replica_strategy() if replicas == 2
                      else tf.distribute.MirroredStrategy(["/cpu:0"]))
  nets, consumed, generator_steps = _trainer_run(cfg, strategy(), batches)
  assert generator_steps >= 1
  with strategy().scope():
    gan = fit.MMDGAN(cfg)
    gan.compile()
  history = gan.fit(_dataset(batches[:consumed]), epochs=1, verbose=0, shuffle=False)
  assert int(gan.step.numpy()) == generator_steps
  assert "loss/generator" in history.history or "loss/critic" in history.history
  for ours, theirs in ((gan.generator, nets.generator), (gan.critic, nets.critic)):
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
      np.testing.assert_array_equal(a, b)


def test_the_flow_update_is_refused_in_one_line():
  with pytest.raises(ValueError, match="--loss=flow needs main.py"):
    fit.MMDGAN(config_builder.build_config(dict(dataset="shapes", loss="flow", width=0.0625)))
