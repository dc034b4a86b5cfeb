"""One training step of the critic and/or the generator, run per replica under `strategy.run`.

Each step runs inside `spectral_norm.one_sigma_per_step`: every critic call of the step (the main pass, the
penalty's and the scale's second calls, Li's fake pass) sees the same spectral norms, as in the reference codes,
and only the main pass stores a new power vector.

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
from mmd_gan_tf import models
from mmd_gan_tf import noise
from mmd_gan_tf.layers import spectral_norm


class Networks(NamedTuple):
  generator: keras.Model
  critic: keras.Model
  decoder: Optional[keras.Model]
  critic_optimizer: keras.optimizers.Optimizer
  generator_optimizer: keras.optimizers.Optimizer

  @property
  def critic_variables(self) -> list:
    """What the critic optimizer trains: the critic's variables, and Li's decoder's."""
    variables = list(self.critic.trainable_variables)
    if self.decoder is not None:
      variables += list(self.decoder.trainable_variables)
    return variables


def _frozen_critic(critic: keras.Model):
  """The critic for second calls in a step (penalty interpolates, Jacobians): no power-vector update; inside
  `spectral_norm.one_sigma_per_step` (as every step runs) the main pass's sigma."""
  def call(images, training=True):
    with spectral_norm.power_iteration_updates(False):
      return tf.cast(critic(images, training=training), tf.float32)
  return call


def _critic_pass(critic: keras.Model, images: tf.Tensor, with_activations: bool):
  """(features float32, activations float32 or None) of one training-mode critic call."""
  activations = None
  if with_activations:
    features, activations = critic.features_and_activations(images, training=True)
    activations = [tf.cast(a, tf.float32) for a in activations]  # bfloat16 under mixed precision
  else:
    features = critic(images, training=True)
  return tf.cast(features, tf.float32), activations


def critic_outputs(nets: Networks, cfg: config_lib.Config, spec: losses_lib.LossSpec, real: tf.Tensor,
                   z: tf.Tensor, penalty_seed: Optional[tf.Tensor] = None) -> losses_lib.CriticOutputs:
  """Generates fakes and runs the critic on them and on `real` as the architecture's reference code does
  (`models.ARCHS[arch].critic_pass`): once on [real; fake], or once on each (the fake pass without a power
  iteration, so that a step makes one)."""
  batch = tf.shape(real)[0]
  fake = nets.generator(z, training=True)
  fake_input = tf.cast(fake, real.dtype)
  if models.ARCHS[cfg.model.arch].critic_pass == "separate":
    real_local, real_acts = _critic_pass(nets.critic, real, spec.needs_activations)
    with spectral_norm.power_iteration_updates(False):
      fake_local, fake_acts = _critic_pass(nets.critic, fake_input, spec.needs_activations)
    activations = None if real_acts is None else [tf.concat(pair, 0) for pair in zip(real_acts, fake_acts)]
  else:
    features, activations = _critic_pass(nets.critic, tf.concat([real, fake_input], axis=0),
                                         spec.needs_activations)
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
  replicas = distribute.num_replicas(ctx)
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


def make_replica_fns(nets: Networks, cfg: config_lib.Config, spec: losses_lib.LossSpec,
                     generator_update: Optional[Callable] = None):
  """Returns (simultaneous_fn, critic_fn, generator_fn), each `fn(real, step) -> metrics`.

  Args:
    generator_update: optional replacement of the generator's gradient, built by the loss's
      `LossSpec.generator_update` (e.g. the gradient flow): `update(nets, outputs, z) -> (grads, metrics)`,
      the gradients applied as given, then `update.metrics_after(nets, outputs, z)` logged too.
  """
  clipnorm = cfg.optim.clipnorm

  def _apply(optimizer, scaled_loss, variables, tape):
    grads = tape.gradient(scaled_loss, variables)
    optimizer.apply_gradients(zip(clip_per_tensor(grads, clipnorm), variables))

  def _z(real, step, purpose):
    return noise.sample_z(cfg.model, tf.shape(real)[0], noise.step_seed(cfg.train.seed, step, purpose))

  def simultaneous_fn(real, step):
    # Wang et al.: one forward pass, both networks updated from it.
    with tf.GradientTape(persistent=True) as tape, spectral_norm.one_sigma_per_step():
      outputs = critic_outputs(nets, cfg, spec, real, _z(real, step, noise.GENERATOR),
                               noise.step_seed(cfg.train.seed, step, noise.PENALTY))
      critic_terms = spec.critic_loss(outputs, cfg.loss)
      generator_terms = spec.generator_loss(outputs, cfg.loss)
      critic_loss, generator_loss = _scaled(critic_terms.loss), _scaled(generator_terms.loss)
    _apply(nets.critic_optimizer, critic_loss, nets.critic_variables, tape)
    _apply(nets.generator_optimizer, generator_loss, nets.generator.trainable_variables, tape)
    del tape
    return {**_with_prefix("critic", critic_terms), **_with_prefix("generator", generator_terms)}

  def critic_fn(real, step):
    with tf.GradientTape() as tape, spectral_norm.one_sigma_per_step():
      outputs = critic_outputs(nets, cfg, spec, real, _z(real, step, noise.CRITIC),
                               noise.step_seed(cfg.train.seed, step, noise.PENALTY))
      terms = spec.critic_loss(outputs, cfg.loss)
      loss = _scaled(terms.loss)
    _apply(nets.critic_optimizer, loss, nets.critic_variables, tape)
    return _with_prefix("critic", terms)

  def generator_fn(real, step):
    with spectral_norm.one_sigma_per_step():
      return _generator_step(real, _z(real, step, noise.GENERATOR))

  def _generator_step(real, z):
    if generator_update is not None:
      outputs = critic_outputs(nets, cfg, spec, real, z)
      terms = spec.generator_loss(outputs, cfg.loss)
      grads, metrics = generator_update(nets, outputs, z)
      nets.generator_optimizer.apply_gradients(zip(grads, nets.generator.trainable_variables))
      metrics = {**metrics, **generator_update.metrics_after(nets, outputs, z)}
      return {**_with_prefix("generator", terms), **metrics}
    with tf.GradientTape() as tape:
      outputs = critic_outputs(nets, cfg, spec, real, z)
      terms = spec.generator_loss(outputs, cfg.loss)
      loss = _scaled(terms.loss)
    _apply(nets.generator_optimizer, loss, nets.generator.trainable_variables, tape)
    return _with_prefix("generator", terms)

  return simultaneous_fn, critic_fn, generator_fn
