"""One training step of the critic and/or the generator, run per replica under `strategy.run`.

The replica rule (stated once, applied everywhere below): critic features are all-gathered so
kernel terms see the global batch; every loss is divided by `num_replicas_in_sync` before its
gradient is taken, because MirroredStrategy sums gradients over replicas and the all-gather's
gradient already routes every replica's contribution back to the features it came from.
"""

from typing import Callable, NamedTuple, Optional

import keras
import tensorflow as tf

from mmd_gan_tf import config as config_lib
from mmd_gan_tf import distribute
from mmd_gan_tf import losses as losses_lib
from mmd_gan_tf.layers import spectral_norm

# Purposes folded into the stateless seed, so every random draw has its own stream.
NOISE_CRITIC, NOISE_GENERATOR, NOISE_SAMPLES, NOISE_PENALTY = 1, 2, 3, 4


class Networks(NamedTuple):
  generator: keras.Model
  critic: keras.Model
  decoder: Optional[keras.Model]
  critic_optimizer: keras.optimizers.Optimizer
  generator_optimizer: keras.optimizers.Optimizer


def noise_seed(seed: int, step: tf.Tensor, purpose: int) -> tf.Tensor:
  """A stateless seed [2] unique to (run seed, step, purpose, replica).

  Keying noise on the checkpointed step makes a resumed run draw exactly the z an
  uninterrupted run would have drawn: the RNG state is the step counter.
  """
  key = tf.random.experimental.stateless_fold_in(tf.constant([seed, 0], tf.int64), tf.cast(step, tf.int64))
  key = tf.random.experimental.stateless_fold_in(key, purpose)
  ctx = tf.distribute.get_replica_context()
  replica = ctx.replica_id_in_sync_group if ctx is not None else 0
  return tf.random.experimental.stateless_fold_in(key, tf.cast(replica, tf.int64))


def sample_z(model_cfg: config_lib.ModelConfig, batch_size: int, seed: tf.Tensor) -> tf.Tensor:
  """Latent codes [batch_size, z_dim]: N(0, 1) or U[-1, 1] per `model_cfg.z_distribution`."""
  shape = [batch_size, model_cfg.z_dim]
  if model_cfg.z_distribution == "uniform":
    return tf.random.stateless_uniform(shape, seed, minval=-1.0, maxval=1.0)
  return tf.random.stateless_normal(shape, seed)


def _frozen_critic(critic: keras.Model):
  """The critic for second calls in a step (penalty interpolates, Jacobians): no power iteration."""
  def call(images, training=True):
    with spectral_norm.power_iteration_updates(False):
      return tf.cast(critic(images, training=training), tf.float32)
  return call


def critic_outputs(nets: Networks, cfg: config_lib.Config, spec: losses_lib.LossSpec, real: tf.Tensor,
                   z: tf.Tensor, penalty_seed: Optional[tf.Tensor] = None) -> losses_lib.CriticOutputs:
  """Generates fakes and runs the critic once on [real; fake] (one power iteration per step)."""
  batch = tf.shape(real)[0]
  fake = nets.generator(z, training=True)
  both = tf.concat([real, tf.cast(fake, real.dtype)], axis=0)
  activations = None
  if spec.needs_activations:
    features, activations = nets.critic.features_and_activations(both, training=True)
  else:
    features = nets.critic(both, training=True)
  features = tf.cast(features, tf.float32)
  if activations is not None:  # bfloat16 under mixed precision; penalties stay float32
    activations = [tf.cast(a, tf.float32) for a in activations]
  real_local, fake_local = features[:batch], features[batch:]
  reconstructions = (None, None)
  if spec.needs_decoder:
    reconstructions = (nets.decoder(real_local, training=True), nets.decoder(fake_local, training=True))
  split = lambda acts: [a[:batch] for a in acts] if acts is not None else None
  split_fake = lambda acts: [a[batch:] for a in acts] if acts is not None else None
  return losses_lib.CriticOutputs(
      real_images=real, fake_images=fake,
      real_features=distribute.all_gather(real_local), fake_features=distribute.all_gather(fake_local),
      critic=_frozen_critic(nets.critic),
      gather=distribute.all_gather,
      real_activations=split(activations), fake_activations=split_fake(activations),
      real_reconstruction=reconstructions[0], fake_reconstruction=reconstructions[1], seed=penalty_seed)


def clip_per_tensor(grads: list, clipnorm: Optional[float]) -> list:
  """Per-tensor norm clipping of the GLOBAL gradient (Binkowski's clipnorm).

  Keras clips each replica's partial gradient before the all-reduce, which is not the same; so we
  sum over replicas ourselves, clip, and hand the optimizer grad / R: its own sum over the R
  identical copies then restores the clipped global gradient.
  """
  if not clipnorm:
    return grads
  ctx = tf.distribute.get_replica_context()
  replicas = ctx.num_replicas_in_sync if ctx is not None else 1
  if replicas > 1:
    grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
  return [tf.clip_by_norm(g, clipnorm) / replicas for g in grads]


def _scaled(loss: tf.Tensor) -> tf.Tensor:
  # Replica rule: divide by the replica count (see the module docstring).
  return loss / tf.cast(distribute.num_replicas(), loss.dtype)


def _with_prefix(prefix: str, terms: losses_lib.LossTerms) -> dict:
  metrics = {f"loss/{prefix}": terms.loss}
  metrics.update(terms.metrics)
  return metrics


def _critic_variables(nets: Networks, spec: losses_lib.LossSpec) -> list:
  # Li's decoder is trained by a loss that reads reconstructions; for any other loss on arch li its
  # gradients are None, which the global clipping (clip_per_tensor) cannot take.
  variables = list(nets.critic.trainable_variables)
  if nets.decoder is not None and spec.needs_decoder:
    variables += list(nets.decoder.trainable_variables)
  return variables


def make_replica_fns(nets: Networks, cfg: config_lib.Config, spec: losses_lib.LossSpec,
                     generator_update: Optional[Callable] = None):
  """Returns (simultaneous_fn, critic_fn, generator_fn), each `fn(real, step) -> metrics`.

  Args:
    generator_update: optional replacement of the generator's gradient (the gradient flow):
      `fn(nets, outputs, z) -> (grads, metrics)`.
  """
  clipnorm = cfg.optim.clipnorm

  def _apply(optimizer, scaled_loss, variables, tape):
    grads = tape.gradient(scaled_loss, variables)
    optimizer.apply_gradients(zip(clip_per_tensor(grads, clipnorm), variables))

  def _z(real, step, purpose):
    return sample_z(cfg.model, tf.shape(real)[0], noise_seed(cfg.train.seed, step, purpose))

  def simultaneous_fn(real, step):
    # Wang et al.: one forward pass, both networks updated from it.
    with tf.GradientTape(persistent=True) as tape:
      outputs = critic_outputs(nets, cfg, spec, real, _z(real, step, NOISE_GENERATOR),
                               noise_seed(cfg.train.seed, step, NOISE_PENALTY))
      critic_terms = spec.critic_loss(outputs, cfg.loss)
      generator_terms = spec.generator_loss(outputs, cfg.loss)
      critic_loss, generator_loss = _scaled(critic_terms.loss), _scaled(generator_terms.loss)
    _apply(nets.critic_optimizer, critic_loss, _critic_variables(nets, spec), tape)
    _apply(nets.generator_optimizer, generator_loss, nets.generator.trainable_variables, tape)
    del tape
    return {**_with_prefix("critic", critic_terms), **_with_prefix("generator", generator_terms)}

  def critic_fn(real, step):
    with tf.GradientTape() as tape:
      outputs = critic_outputs(nets, cfg, spec, real, _z(real, step, NOISE_CRITIC),
                               noise_seed(cfg.train.seed, step, NOISE_PENALTY))
      terms = spec.critic_loss(outputs, cfg.loss)
      loss = _scaled(terms.loss)
    _apply(nets.critic_optimizer, loss, _critic_variables(nets, spec), tape)
    return _with_prefix("critic", terms)

  def generator_fn(real, step):
    z = _z(real, step, NOISE_GENERATOR)
    if generator_update is not None:
      outputs = critic_outputs(nets, cfg, spec, real, z)
      terms = spec.generator_loss(outputs, cfg.loss)
      grads, metrics = generator_update(nets, outputs, z)
      nets.generator_optimizer.apply_gradients(zip(grads, nets.generator.trainable_variables))
      metrics = dict(metrics)
      metrics["flow/mmd2_after"] = generator_update.mmd2_after(nets, outputs, z)
      return {**_with_prefix("generator", terms), **metrics}
    with tf.GradientTape() as tape:
      outputs = critic_outputs(nets, cfg, spec, real, z)
      terms = spec.generator_loss(outputs, cfg.loss)
      loss = _scaled(terms.loss)
    _apply(nets.generator_optimizer, loss, nets.generator.trainable_variables, tape)
    return _with_prefix("generator", terms)

  return simultaneous_fn, critic_fn, generator_fn
