"""`MMDGAN`: a keras.Model whose `train_step` is the trainer's step, for those who train with `fit`.

    with strategy.scope():              # optional: MirroredStrategy over GPUs or logical CPUs
      gan = MMDGAN(cfg)                 # cfg: a Config (a preset: flags.build.build_config, or your own)
      gan.compile()
    gan.fit(real_images_dataset, epochs=..., callbacks=[KIDCallback(gan.generator, ...), ...])

One batch of `fit` is one network update of the schedule: with the simultaneous schedule (Wang) one step of
both networks; with the alternating one, `trainer.critic_steps_for(g)` critic batches (Li's weight clipping
before each), then one generator batch, exactly as `trainer.iteration` consumes them. The steps are
`steps.make_replica_fns`, the noise is keyed by the same counters, so `fit` on the batches `main.py` reads
ends with the weights `main.py` ends with. What `main.py` adds: checkpoints that carry their config and
refuse a changed one, the data stream resumed where it stopped, KID-driven lr adaptation, the export.
"""

import keras

from mmd_gan_tf import config as config_lib
from mmd_gan_tf import losses as losses_lib
from mmd_gan_tf import trainer


class MMDGAN(keras.Model):
  """The generator and critic of `cfg` with the trainer's optimizers, schedule and steps.

  Attributes:
    generator, critic, decoder: the networks (`decoder` is Li's, else None).
    step, critic_count: the generator- and critic-step counters that key the noise.
  """

  def __init__(self, cfg: config_lib.Config, **kwargs):
    super().__init__(**kwargs)
    spec = losses_lib.get_loss(cfg.loss.name)
    if spec.generator_update is not None:
      raise ValueError(f"MMDGAN trains gradient generator updates; --loss={cfg.loss.name} needs main.py")
    self.cfg = cfg
    self.nets = trainer.build_networks(cfg)
    self.generator, self.critic, self.decoder = self.nets.generator, self.nets.critic, self.nets.decoder
    self.step, self.critic_count = trainer.make_counters()
    self.built = True  # the networks are built; fit must not trace the model on a batch of images

  def call(self, z, training=False):
    return self.generator(z, training=training)

  def compile(self, **kwargs):
    """No loss or optimizer to give: the trainer's losses and the config's two optimizers are used."""
    super().compile(optimizer=keras.optimizers.SGD(0.0), **kwargs)
    self.optimizer.build([])  # Keras' own optimizer stays unused

  def make_train_function(self, force=False):
    """The trainer's distributed steps, one network update per batch, chosen on the host as
    `trainer.iteration` chooses them (the critic/generator alternation cannot live in a traced step: an
    optimizer update inside a `tf.cond` is a cross-replica synchronisation point)."""
    if self.train_function is not None and not force:
      return self.train_function
    simultaneous, critic, generator = trainer.distributed_fns(
        self.distribute_strategy, self.nets, self.cfg, losses_lib.get_loss(self.cfg.loss.name), self.step,
        self.critic_count)
    train = self.cfg.train
    critic_steps_done = 0

    def train_function(iterator):
      nonlocal critic_steps_done
      if train.schedule == "simultaneous":
        return simultaneous(iterator)
      if critic_steps_done < trainer.critic_steps_for(train, int(self.step.numpy())):
        if self.cfg.optim.weight_clip:  # before each critic step, as Li's loop
          trainer.clip_weights(self.nets.critic.trainable_variables, self.cfg.optim.weight_clip)
        critic_steps_done += 1
        return critic(iterator)
      critic_steps_done = 0
      return generator(iterator)

    self.train_function = train_function
    return train_function
