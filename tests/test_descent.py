"""Each player's step descends its own loss, for every loss in the registry, through the real step functions.

A step wired to the wrong objective (a generator trained on the critic's loss, a critic maximising its own
loss) leaves every shape and range test green and trains a generator that collapses; this catches it in
seconds. The registry's losses are checked against numpy oracles in test_losses.py; here each player's step
(the functions the trainer runs) must lower that player's registry loss, with the same images, noise and
penalty points before and after and the spectral-norm power vectors held at their pre-step values, and its
first adaptive-optimizer step (the sign of the gradient) must move every coordinate downhill on that loss.
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from flags import build as config_builder
from mmd_gan_tf import losses as losses_lib
from mmd_gan_tf import noise
from mmd_gan_tf import steps as steps_lib
from mmd_gan_tf import trainer
from mmd_gan_tf.flow import features as flow_features
from mmd_gan_tf.flow import update as flow_lib
from mmd_gan_tf.layers import spectral_norm

BATCH = 16
STEP = 7  # any step past the warm-up phases; it only seeds the noise
WIDTH = 0.125


def _small_preset(loss: str):
  cfg = config_builder.build_config({"dataset": "shapes", "loss": loss, "width": WIDTH, "batch_size": BATCH},
                                    check_library=False)
  # A small learning rate keeps one step first order (Adam's first step moves every weight by ~lr).
  return dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, critic_lr=1e-5, generator_lr=1e-5))


def _real_images(cfg) -> tf.Tensor:
  low = -1.0 if cfg.data.image_range == "tanh" else 0.0
  shape = (BATCH, cfg.data.image_size, cfg.data.image_size, cfg.data.channels)
  return tf.constant(np.random.default_rng(0).uniform(low, 1.0, shape), tf.float32)


def _wake_critic(nets, real) -> None:
  """Scales the critic's output layer so that its features have std ~1, as a critic a few hundred steps in.

  Binkowski's and Arbel's critics start with features of std ~1e-3 (dense init N(0, 0.01)): their MMD^2
  (RQ kernel values ~3 minus ~3) is then at float32 rounding level, and no step could be seen to lower it.
  """
  both = tf.concat([real, real[::-1]], axis=0)
  for _ in range(10):  # bring the power vectors near their fixed point, as after a few training steps
    nets.critic(both, training=True)
  scale = 1.0 / float(np.std(nets.critic(both, training=True).numpy()))
  gains = [v for v in nets.critic.trainable_weights if v.path.endswith("sn_gain")]
  output = gains[-1] if gains else [v for v in nets.critic.trainable_weights if v.path.endswith("kernel")][-1]
  output.assign(output * scale)


def _power_vectors(nets):
  return [v for v in nets.critic.weights if v.path.endswith("sn_power_vector")]


def _setup(loss: str):
  cfg = _small_preset(loss)
  spec = losses_lib.LOSSES[loss]
  nets = trainer.build_networks(cfg)
  generator_update = None
  if spec.generator_update == losses_lib.FLOW:
    feature_map = flow_features.make_feature_map(cfg.flow, cfg.model.critic_dim, seed=cfg.train.seed)
    generator_update = flow_lib.FlowGeneratorUpdate(cfg.flow, feature_map)
  real = _real_images(cfg)
  _wake_critic(nets, real)
  return cfg, spec, nets, generator_update, real


def _variables(nets, role: str) -> list:
  return nets.critic_variables if role == "critic" else nets.generator.trainable_variables


def _flat(variables) -> np.ndarray:
  return np.concatenate([np.asarray(v).ravel() for v in variables])


def _loss_and_gradient(cfg, spec, nets, real, role: str, noise_purpose: int):
  """The registry loss of `role` at STEP's noise (and penalty points), and its gradient, flattened."""
  step = tf.constant(STEP, tf.int64)
  z = noise.sample_z(cfg.model, BATCH, noise.step_seed(cfg.train.seed, step, noise_purpose))
  penalty_seed = noise.step_seed(cfg.train.seed, step, noise.PENALTY) if role == "critic" else None
  with spectral_norm.power_iteration_updates(False), tf.GradientTape() as tape:
    outputs = steps_lib.critic_outputs(nets, cfg, spec, real, z, penalty_seed)
    terms = spec.critic_loss(outputs, cfg.loss) if role == "critic" else spec.generator_loss(outputs, cfg.loss)
  grads = tape.gradient(terms.loss, _variables(nets, role), unconnected_gradients="zero")
  return float(terms.loss), _flat([g.numpy() for g in grads])


def _downhill(change: np.ndarray, grad: np.ndarray) -> float:
  """The share of the gradient (weighted by |gradient|) whose coordinates `change` moved downhill."""
  return float(np.sum(np.abs(grad) * (np.sign(change) == -np.sign(grad))) / np.sum(np.abs(grad)))


@pytest.mark.parametrize("loss", sorted(losses_lib.LOSSES))
def test_each_step_lowers_the_loss_it_was_taken_on(loss):
  cfg, spec, nets, generator_update, real = _setup(loss)
  _, critic_fn, generator_fn = steps_lib.make_replica_fns(nets, cfg, spec, generator_update)
  for role, step_fn in (("critic", critic_fn), ("generator", generator_fn)):
    purpose = noise.CRITIC if role == "critic" else noise.GENERATOR
    before, grad = _loss_and_gradient(cfg, spec, nets, real, role, purpose)
    weights = _flat(_variables(nets, role))
    vectors = [v.numpy() for v in _power_vectors(nets)]
    step_fn(real, tf.constant(STEP, tf.int64))
    for variable, value in zip(_power_vectors(nets), vectors):
      variable.assign(value)
    change = _flat(_variables(nets, role)) - weights
    after, _ = _loss_and_gradient(cfg, spec, nets, real, role, purpose)
    downhill = _downhill(change, grad)
    cosine = -change @ grad / (np.linalg.norm(change) * np.linalg.norm(grad))
    what = f"{loss}: the {role} step (loss {before:.6g} -> {after:.6g}, downhill {downhill:.3f}, cos {cosine:.3f})"
    assert after < before, what + " raised its own loss"
    if role == "generator" and generator_update is not None:
      # The flow's natural-gradient step is not coordinate-wise the gradient, but must point downhill.
      assert cosine > 0.5, what + " does not point down the generator loss"
    else:
      # Adam's and RMSprop's first step is the sign of the gradient: every coordinate moves downhill.
      # A step taken on another objective (the critic's loss in the generator's step, say) does not.
      assert downhill > 0.99, what + " was not taken on this loss"


@pytest.mark.parametrize("loss", ["rep", "rep_b", "mmd_gp", "hinge"])
def test_the_simultaneous_step_moves_each_player_down_its_own_loss(loss):
  """Wang's schedule: both players updated from one forward pass (both at the generator's noise)."""
  cfg, spec, nets, _, real = _setup(loss)
  simultaneous_fn, _, _ = steps_lib.make_replica_fns(nets, cfg, spec)
  grads = {role: _loss_and_gradient(cfg, spec, nets, real, role, noise.GENERATOR)[1]
           for role in ("critic", "generator")}
  weights = {role: _flat(_variables(nets, role)) for role in grads}
  simultaneous_fn(real, tf.constant(STEP, tf.int64))
  for role, grad in grads.items():
    downhill = _downhill(_flat(_variables(nets, role)) - weights[role], grad)
    assert downhill > 0.99, f"{loss}: the simultaneous step moved the {role} downhill on only {downhill:.3f}"
