"""What the docstrings of noise, penalties, images, steps and the trainer's compiled loop promise, tested where
it lives: what a draw depends on and what it must not share, what a resumed run reads, how pixels are
quantised, what a step's second critic call may not touch, and that the compiled loop does what the host
`iteration` does."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from flags import build as config_builder
from mmd_gan_tf import config as config_lib
from mmd_gan_tf import images
from mmd_gan_tf import losses as losses_lib
from mmd_gan_tf import noise
from mmd_gan_tf import penalties
from mmd_gan_tf import steps as steps_lib
from mmd_gan_tf import trainer
from mmd_gan_tf.layers import spectral_norm

MODEL = config_lib.ModelConfig(z_dim=3)
STREAMS = (noise.CRITIC, noise.GENERATOR, noise.SAMPLES, noise.PENALTY)


def _z(seed) -> np.ndarray:
  return noise.sample_z(MODEL, 6, seed).numpy()


# --- noise ------------------------------------------------------------------------------------------------

def test_a_step_draw_is_a_pure_function_of_seed_step_and_stream():
  np.testing.assert_array_equal(_z(noise.step_seed(3, 17, noise.GENERATOR)), _z(noise.step_seed(3, 17, noise.GENERATOR)))
  draws = {(seed, step, stream): _z(noise.step_seed(seed, step, stream))
           for seed in (0, 1) for step in (0, 1, 2) for stream in STREAMS}
  keys = list(draws)
  for i, a in enumerate(keys):  # no two (run seed, step, stream) share a draw
    for b in keys[i + 1:]:
      assert not np.allclose(draws[a], draws[b]), (a, b)


def test_step_draws_differ_per_replica_and_replica_zero_is_the_single_device_draw(two_replica_strategy):
  @tf.function
  def per_replica():
    return two_replica_strategy.run(lambda: noise.sample_z(MODEL, 4, noise.step_seed(0, 5, noise.GENERATOR)))
  local = two_replica_strategy.experimental_local_results(per_replica())
  single = noise.sample_z(MODEL, 4, noise.step_seed(0, 5, noise.GENERATOR)).numpy()
  np.testing.assert_array_equal(local[0].numpy(), single)
  assert not np.allclose(local[1].numpy(), local[0].numpy())


def test_named_streams_share_no_draw_with_each_other_or_the_step_streams():
  evaluation = [_z(noise.stream_seed(0, noise.EVALUATION, batch)) for batch in range(3)]
  adaptation = [_z(noise.stream_seed(0, noise.LR_ADAPTATION, step, 0)) for step in range(3)]
  step_draws = [_z(noise.step_seed(0, step, stream)) for step in range(3) for stream in STREAMS]
  everything = evaluation + adaptation + step_draws
  for i, a in enumerate(everything):
    for b in everything[i + 1:]:
      assert not np.allclose(a, b)
  # In-training KID's z is the same at every evaluation: it depends on the batch index only.
  np.testing.assert_array_equal(evaluation[1], _z(noise.stream_seed(0, noise.EVALUATION, 1)))


def test_sample_z_distribution_and_int_seed():
  normal = noise.sample_z(MODEL, 4000, 7).numpy()
  assert normal.shape == (4000, 3) and normal.dtype == np.float32
  assert abs(normal.mean()) < 0.05 and abs(normal.std() - 1.0) < 0.05
  np.testing.assert_array_equal(normal, noise.sample_z(MODEL, 4000, tf.constant([7, 0], tf.int64)).numpy())
  uniform = noise.sample_z(dataclasses.replace(MODEL, z_distribution="uniform"), 4000, 7).numpy()
  assert uniform.min() >= -1.0 and uniform.max() <= 1.0 and uniform.min() < -0.99 and uniform.max() > 0.99
  # An int-seeded draw is a pure function of (seed, batch size): a second call draws the same codes.
  np.testing.assert_array_equal(noise.sample_z(MODEL, 5, 11).numpy(), noise.sample_z(MODEL, 5, 11).numpy())


def test_a_resumed_run_reads_a_fresh_part_of_the_data_stream():
  assert noise.data_seed(4, 0) == 4  # a run started at step 0 reads the stream of its seed
  starts = [noise.data_seed(4, step) for step in (0, 1, 500, 1000)]
  assert len(set(starts)) == len(starts)
  # ... and two runs with nearby seeds resumed at nearby steps do not read the same stream.
  assert len({noise.data_seed(seed, step) for seed in range(5) for step in range(5)}) == 25


def test_tool_batches_of_nearby_seeds_never_coincide():
  seeds = {noise.export_batch_seed(seed, index) for seed in range(4) for index in range(1000)}
  assert len(seeds) == 4000


# --- penalties --------------------------------------------------------------------------------------------

def test_seeded_interpolates_draw_one_weight_per_example():
  real = tf.zeros([16, 3, 3, 2])
  fake = tf.ones([16, 3, 3, 2])
  seed = tf.constant([5, 9], tf.int64)
  points = penalties.interpolate(real, fake, seed=seed).numpy()
  alphas = points.reshape(16, -1)
  np.testing.assert_array_equal(alphas, np.repeat(alphas[:, :1], alphas.shape[1], axis=1))  # one per example
  assert len(np.unique(alphas[:, 0])) == 16  # not one weight for the batch
  assert alphas.min() >= 0.0 and alphas.max() <= 1.0
  np.testing.assert_array_equal(points, penalties.interpolate(real, fake, seed=seed).numpy())  # reproducible


def test_unseeded_interpolates_draw_one_weight_per_example():
  alphas = penalties.interpolate(tf.zeros([16, 4]), tf.ones([16, 4])).numpy()
  assert np.all(alphas == alphas[:, :1]) and len(np.unique(alphas[:, 0])) == 16


# --- images -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("image_range, scale, offset", [("tanh", 127.5, 127.5), ("sigmoid", 255.0, 0.0)])
def test_to_uint8_rounds_to_the_nearest_level_and_clips(image_range, scale, offset):
  pixels = np.array([10.2, 10.49, 10.51, 10.8, 254.7, 0.3, 0.6, 300.0, -20.0])
  floats = (pixels - offset) / scale
  got = images.to_uint8(tf.constant(floats, tf.float32), image_range).numpy()
  np.testing.assert_array_equal(got, [10, 10, 11, 11, 255, 0, 1, 255, 0])
  assert got.dtype == np.uint8
  unrounded = images.to_pixels(tf.constant(floats[:4], tf.float32), image_range).numpy()
  np.testing.assert_allclose(unrounded, pixels[:4], atol=1e-3)  # to_pixels without quantize keeps the value


# --- steps ------------------------------------------------------------------------------------------------

def test_clip_per_tensor_clips_each_tensor_of_the_global_gradient():
  grads = [tf.constant([3.0, 4.0]), tf.constant([0.3, 0.4]), tf.constant([[6.0, 8.0]])]
  clipped = [g.numpy() for g in steps_lib.clip_per_tensor(grads, 1.0)]
  np.testing.assert_allclose(clipped[0], [0.6, 0.8], rtol=1e-6)
  np.testing.assert_allclose(clipped[1], [0.3, 0.4], rtol=1e-6)  # under the norm: unchanged
  np.testing.assert_allclose(clipped[2], [[0.6, 0.8]], rtol=1e-6)
  assert steps_lib.clip_per_tensor(grads, None) is grads


def _tiny_cfg(loss="rep", **flags):
  return config_builder.build_config(dict(dataset="shapes", loss=loss, arch="li", width=0.0625, batch_size=4, channels=3,
                                          **flags))


def test_a_steps_second_critic_call_runs_no_power_iteration():
  cfg = _tiny_cfg(spectral_norm="conv")
  nets = trainer.build_networks(cfg)
  layers = spectral_norm.spectral_layers(nets.critic)
  assert layers
  real = tf.random.stateless_uniform([4, 32, 32, 3], [0, 1], -1.0, 1.0)
  outputs = steps_lib.critic_outputs(nets, cfg, losses_lib.LOSSES["rep"], real,
                                     noise.sample_z(cfg.model, 4, 0))
  after_main_pass = [layer.power_vector.numpy() for layer in layers]
  outputs.critic(real)
  for layer, vector in zip(layers, after_main_pass):
    np.testing.assert_array_equal(layer.power_vector.numpy(), vector)
  # ... while the main pass itself advances them (one power iteration per step).
  steps_lib.critic_outputs(nets, cfg, losses_lib.LOSSES["rep"], real, noise.sample_z(cfg.model, 4, 0))
  assert any(not np.array_equal(layer.power_vector.numpy(), vector)
             for layer, vector in zip(layers, after_main_pass))


def _second_call_gap(nets, cfg, spec_name, run_step):
  """Max |critic(real) - main pass's real features| of a second call made inside the step `run_step` runs."""
  gaps = []
  spec = losses_lib.LOSSES[spec_name]

  def recording_loss(outputs, loss_cfg):
    gaps.append(tf.reduce_max(tf.abs(outputs.critic(outputs.real_images) - outputs.real_features)))
    return spec.critic_loss(outputs, loss_cfg)

  fns = steps_lib.make_replica_fns(nets, cfg, spec._replace(critic_loss=recording_loss))
  run_step(fns)
  return float(gaps[0])


@pytest.mark.parametrize("mode", ["conv", "matrix_gain"])
def test_a_steps_second_critic_call_sees_the_main_passs_spectral_norms(mode):
  # Arbel's Jacobian and Binkowski's penalty go through the main pass's graph: the same sigma. Li's critic
  # normalises the real batch alone, so a second call on the real batch must repeat the main pass exactly.
  cfg = _tiny_cfg(spectral_norm=mode)
  real = tf.random.stateless_uniform([4, 32, 32, 3], [0, 2], -1.0, 1.0)
  nets = trainer.build_networks(cfg)
  step = tf.constant(0, tf.int64)
  assert _second_call_gap(nets, cfg, "rep", lambda fns: fns[1](real, step)) == 0.0  # the critic step
  assert _second_call_gap(nets, cfg, "rep", lambda fns: fns[0](real, step)) == 0.0  # the simultaneous step
  # Outside the block a second call runs one more power step from the vector the main pass stored.
  outputs = steps_lib.critic_outputs(nets, cfg, losses_lib.LOSSES["rep"], real, noise.sample_z(cfg.model, 4, 0))
  assert float(tf.reduce_max(tf.abs(outputs.critic(real) - outputs.real_features))) > 1e-6


# --- the host iteration and the compiled loop --------------------------------------------------------------

def _li_schedule_cfg():
  """Li's alternating schedule, shortened: 3 critic steps while g < 2 and every 3rd step, else 2, clipped."""
  cfg = _tiny_cfg("mmd", image_size=32)
  return dataclasses.replace(cfg, train=dataclasses.replace(
      cfg.train, n_critic=2, n_critic_warmup=3, n_critic_warmup_steps=2, n_critic_warmup_every=3))


def _train_steps(cfg, generator_steps: int, loop_length: int):
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  with strategy.scope():
    nets = trainer.build_networks(cfg)
    step, critic_count = trainer.make_counters()
  spec = losses_lib.LOSSES[cfg.loss.name]
  real = np.random.default_rng(0).uniform(-1, 1, (64, 32, 32, 3)).astype(np.float32)
  iterator = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(real).batch(4)))
  if loop_length == 1:
    fns = trainer.distributed_fns(strategy, nets, cfg, spec, step, critic_count)
    for generator_step in range(generator_steps):
      trainer.iteration(cfg, nets, fns, iterator, generator_step)
  else:
    trainer.loop_fn(strategy, nets, cfg, spec, step, critic_count)(iterator, tf.constant(generator_steps, tf.int64))
  weights = [v.numpy() for v in nets.generator.weights + nets.critic.weights + nets.decoder.weights]
  clipped = [v.numpy() for v in nets.critic.trainable_variables]
  return weights, clipped, int(step.numpy()), int(critic_count.numpy()), next(iterator).numpy()


def test_the_compiled_loop_does_what_the_host_iteration_does():
  """4 generator steps of Li's schedule: critic steps 3, 3, 2, 3 (warm-up while g < 2 and at g = 3), each
  on its own batch and its own noise, weights clipped to 0.01 before each critic step."""
  cfg = _li_schedule_cfg()
  assert cfg.optim.weight_clip == 0.01
  host_weights, host_critic, host_step, host_critic_count, host_next = _train_steps(cfg, 4, loop_length=1)
  loop_weights, _, loop_step, loop_critic_count, loop_next = _train_steps(cfg, 4, loop_length=4)
  assert (host_step, host_critic_count) == (loop_step, loop_critic_count) == (4, 11)
  np.testing.assert_array_equal(loop_next, host_next)  # both read the same number of batches (15)
  for host, loop in zip(host_weights, loop_weights):
    np.testing.assert_allclose(loop, host, rtol=2e-5, atol=1e-6)
  # Clipped before each critic step, not after: the last update leaves the critic within one step of 0.01.
  assert 0.01 < max(float(np.abs(w).max()) for w in host_critic) < 0.02


def test_critic_steps_for_follows_lis_warm_up_on_the_host_and_in_graph():
  train = _li_schedule_cfg().train
  expected = [3, 3, 2, 3, 2, 2, 3]
  assert [trainer.critic_steps_for(train, g) for g in range(7)] == expected
  assert [int(trainer.critic_steps_for(train, tf.constant(g, tf.int64))) for g in range(7)] == expected


def test_the_trainers_data_stream_depends_on_the_step_it_starts_at():
  """A run started at step 0 and one resumed at step 500 read different batches; a resumed run restarted at
  the same step reads the same ones (the stream is keyed by noise.data_seed(seed, start_step))."""
  cfg = _tiny_cfg()
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])

  def first_batch(start_step):
    return next(trainer._dataset(strategy, cfg, start_step)).numpy()  # pylint: disable=protected-access

  np.testing.assert_array_equal(first_batch(500), first_batch(500))
  assert not np.array_equal(first_batch(0), first_batch(500))


def _one_critic_step_cfg(weight_clip):
  cfg = _tiny_cfg("mmd", optimizer="sgd", critic_lr=0.5, generator_lr=1e-9)
  return dataclasses.replace(
      cfg, train=dataclasses.replace(cfg.train, n_critic=1, n_critic_warmup=0),
      optim=dataclasses.replace(cfg.optim, weight_clip=weight_clip))


def _after_one_iteration(cfg, prepare=None):
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  with strategy.scope():
    nets = trainer.build_networks(cfg)
    step, critic_count = trainer.make_counters()
  if prepare:
    prepare(nets)
  real = np.random.default_rng(1).uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
  iterator = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(real).batch(4)))
  fns = trainer.distributed_fns(strategy, nets, cfg, losses_lib.LOSSES[cfg.loss.name], step, critic_count)
  trainer.iteration(cfg, nets, fns, iterator, 0)
  return [v.numpy() for v in nets.critic.trainable_variables]


def test_lis_first_critic_step_already_sees_clipped_weights():
  """Li's loop clamps the encoder before each critic update: one critic step of the clipped run equals an
  unclipped step taken from weights clipped beforehand, and the update itself is not clipped afterwards."""
  clipped_run = _after_one_iteration(_one_critic_step_cfg(0.01))
  pre_clipped = _after_one_iteration(
      _one_critic_step_cfg(None), lambda nets: trainer.clip_weights(nets.critic.trainable_variables, 0.01))
  for a, b in zip(clipped_run, pre_clipped):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  assert max(float(np.abs(w).max()) for w in clipped_run) > 0.01


def test_lis_critic_normalises_real_and_fake_batches_separately():
  """Li's netD(x), netD(y): each batch norm sees one batch; Wang's one pass on [real; fake] sees both."""
  cfg = _tiny_cfg("mmd")
  nets = trainer.build_networks(cfg)
  real = tf.random.stateless_uniform([4, 32, 32, 3], [0, 2], -1.0, 1.0)
  z = noise.sample_z(cfg.model, 4, 3)
  outputs = steps_lib.critic_outputs(nets, cfg, losses_lib.LOSSES["mmd"], real, z)
  fake = nets.generator(z, training=True)
  np.testing.assert_allclose(outputs.real_features, nets.critic(real, training=True), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(outputs.fake_features, nets.critic(fake, training=True), rtol=1e-5, atol=1e-6)
  joint = nets.critic(tf.concat([real, fake], 0), training=True).numpy()
  assert not np.allclose(outputs.real_features, joint[:4], rtol=1e-3, atol=1e-4)
