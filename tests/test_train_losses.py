"""Every loss trains end to end on 2 replicas (tiny networks, a few steps) with finite losses."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from helpers import make_two_replica_strategy
from flags import build as config_builder
from mmd_gan_tf import losses
from mmd_gan_tf import trainer

pytestmark = pytest.mark.usefixtures("no_export")  # the runs are read for their losses only


@pytest.fixture(scope="module")
def strategy():
  return make_two_replica_strategy()


# These losses train in mixed_bfloat16 here (float32 variables and kernels, bfloat16 networks); in float32 they
# train in test_loop.py (mmd), the bench_step test (mmd_gp) and most seam tests (rep).
MIXED_PRECISION = ("rep", "mmd_gp", "mmd")


@pytest.mark.end_to_end
@pytest.mark.parametrize("loss", list(losses.LOSSES))
def test_loss_trains_on_two_replicas(loss, strategy, tmp_path):
  import keras  # pylint: disable=g-import-not-at-top
  mixed = loss in MIXED_PRECISION
  cfg = config_builder.build_config(dict(dataset="shapes", loss=loss, width=0.0625, batch_size=8, steps=2,
                                         log_every=1, sample_every=100, checkpoint_every=100,
                                         mixed_precision="true" if mixed else "false", lr_adaptation=False,
                                         workdir=str(tmp_path)))
  # Arbel's lr adaptation needs the Inception weights (tests/test_eval_default.py); here only the step runs.
  # Li's warm-up (100 critic steps) is exercised by its own unit test; keep this run short.
  cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, n_critic=2, n_critic_warmup=0))
  if mixed:
    with trainer.dtype_policy(True):
      nets = trainer.build_networks(cfg)
    conv_dtypes = {layer.compute_dtype for layer in nets.critic.layers if layer.weights}
    assert conv_dtypes == {"bfloat16"}
    assert nets.critic.trainable_variables[0].dtype == "float32"
    assert nets.generator.output.dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the policy does not leak out of the build
  metrics = trainer.train(cfg, strategy=strategy)
  for name, value in metrics.items():
    assert np.isfinite(value), (name, value)
  if losses.LOSSES[loss].generator_update == losses.FLOW:
    assert {"flow/mmd2_before", "flow/mmd2_after", "flow/predicted_decrease", "flow/condition"} <= set(metrics)
  if "penalty/gp" in metrics:
    assert metrics["penalty/gp"] > 0


def test_li_warmup_schedule():
  cfg = config_builder.build_config(dict(dataset="shapes", loss="mmd")).train
  steps = (0, 24, 25, 499, 500, 501)
  assert [trainer.critic_steps_for(cfg, s) for s in steps] == [100, 100, 5, 5, 100, 5]
  # The same rule on the step counter read inside a compiled loop, and on numpy ints.
  assert [int(trainer.critic_steps_for(cfg, tf.constant(s, tf.int64))) for s in steps] == [100, 100, 5, 5, 100, 5]
  assert [trainer.critic_steps_for(cfg, np.int64(s)) for s in steps] == [100, 100, 5, 5, 100, 5]
  wang = config_builder.build_config(dict(dataset="shapes", loss="rep")).train
  assert trainer.critic_steps_for(wang, tf.constant(0, tf.int64)) == 1


PAPER_PRESETS = {  # (optimizer, critic_lr, beta2, n_critic, kernel, critic_dim, clipnorm, weight_clip)
    "rep": ("adam", 5e-4, 0.999, 1, "rbf", 16, None, None),
    "mmd": ("rmsprop", 5e-5, 0.999, 5, "mix_rbf", 128, None, 0.01),
    "mmd_gp": ("adam", 1e-4, 0.9, 5, "mix_rq_dot", 16, 1.0, None),
    "smmd": ("adam", 1e-4, 0.9, 5, "rbf", 1, 1.0, None),  # Arbel clips each gradient tensor at 1
    "hinge": ("adam", 5e-4, 0.999, 1, "rbf", 16, None, None),  # Wang's hinge baseline: 16 outputs
    "wgan_gp": ("adam", 1e-4, 0.9, 5, "mix_rq_dot", 1, None, None),
}


@pytest.mark.parametrize("loss", sorted(PAPER_PRESETS))
def test_each_loss_gets_its_paper_preset(loss):
  cfg = config_builder.build_config(dict(dataset="cifar10", loss=loss))
  got = (cfg.optim.optimizer, cfg.optim.critic_lr, cfg.optim.beta2, cfg.train.n_critic, cfg.loss.kernel,
         cfg.model.critic_dim, cfg.optim.clipnorm, cfg.optim.weight_clip)
  assert got == PAPER_PRESETS[loss]
