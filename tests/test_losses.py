"""Losses against float64 numpy oracles, finite differences, and the replica rule on 2 replicas."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from mmd_gan_tf import losses
from mmd_gan_tf.config import Config, ConfigError, LossConfig, ModelConfig

IMAGE_SHAPE = (4, 4, 2)
PIXELS = int(np.prod(IMAGE_SHAPE))
KERNEL_KEYS = {"kernel/real_real", "kernel/fake_fake", "kernel/real_fake", "mmd2"}


# ---------------------------------------------------------------------------------------------------
# float64 numpy oracles.


def np_d2(a, b):
  return np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)


def np_rbf(a, b, sigma=1.0, low=None, high=None):
  d2 = np_d2(a, b)
  d2 = d2 if low is None else np.maximum(d2, low)
  d2 = d2 if high is None else np.minimum(d2, high)
  return np.exp(-d2 / (2 * sigma**2))


def np_mix_rbf(a, b, sigmas):
  return sum(np_rbf(a, b, s) for s in sigmas)


def np_off_diagonal_mean(k):
  return k[~np.eye(k.shape[0], dtype=bool)].mean()


def np_mmd2_unbiased(k_rr, k_ff, k_rf):
  return np_off_diagonal_mean(k_rr) + np_off_diagonal_mean(k_ff) - 2 * k_rf.mean()


def np_rep_critic(real, fake, lam=1.0, bounded=False, cfg=None):
  cfg = cfg or LossConfig()
  low, high = (cfg.bound_low, cfg.bound_high) if bounded else (None, None)
  k_rr, k_ff, k_rf = np_rbf(real, real, high=high), np_rbf(fake, fake, low=low), np_rbf(real, fake)
  m = np_off_diagonal_mean
  return lam * m(k_rr) - (lam - 1) * m(k_rf) - m(k_ff)


def np_rep_generator(real, fake):
  m = np_off_diagonal_mean
  return m(np_rbf(real, real)) + m(np_rbf(fake, fake)) - 2 * m(np_rbf(real, fake))


def numeric_gradient(fn, x, h=1e-6):
  grad = np.zeros_like(x)
  for index in np.ndindex(*x.shape):
    step = np.zeros_like(x)
    step[index] = h
    grad[index] = (fn(x + step) - fn(x - step)) / (2 * h)
  return grad


# ---------------------------------------------------------------------------------------------------
# Helpers.


def _features(seed, m=12, n=12, d=3, scale=1.0):
  rng = np.random.default_rng(seed)
  return rng.normal(scale=scale, size=(m, d)), rng.normal(loc=0.4, scale=scale, size=(n, d))


def _outputs(real, fake, **kwargs):
  images = kwargs.pop("images", np.zeros((2,) + IMAGE_SHAPE))
  return losses.CriticOutputs(real_images=tf.constant(images), fake_images=tf.constant(images),
                              real_features=tf.constant(real), fake_features=tf.constant(fake), **kwargs)


def _loss(name, side, outputs, cfg):
  spec = losses.LOSSES[name]
  return (spec.critic_loss if side == "critic" else spec.generator_loss)(outputs, cfg)


# ---------------------------------------------------------------------------------------------------
# rep / rep_b.


def test_rep_matches_oracle():
  real, fake = _features(0)
  cfg = LossConfig(name="rep", kernel="rbf")
  critic = _loss("rep", "critic", _outputs(real, fake), cfg)
  generator = _loss("rep", "generator", _outputs(real, fake), cfg)
  np.testing.assert_allclose(critic.loss.numpy(), np_rep_critic(real, fake), rtol=1e-10)
  np.testing.assert_allclose(generator.loss.numpy(), np_rep_generator(real, fake), rtol=1e-10)
  assert KERNEL_KEYS <= set(critic.metrics) and KERNEL_KEYS <= set(generator.metrics)
  np.testing.assert_allclose(critic.metrics["kernel/fake_fake"].numpy(),
                             np_off_diagonal_mean(np_rbf(fake, fake)), rtol=1e-10)


@pytest.mark.parametrize("kernel,sigmas", [("rbf", (1.0,)), ("mix_rbf", (1.0, 2.0**0.5, 2.0, 8.0**0.5, 4.0))])
def test_rep_with_lambda_minus_one_is_the_attractive_loss(kernel, sigmas):
  real, fake = _features(1)
  cfg = LossConfig(name="rep", kernel=kernel, sigmas=sigmas, rep_lambda=-1.0)
  critic = _loss("rep", "critic", _outputs(real, fake), cfg).loss.numpy()
  generator = _loss("rep", "generator", _outputs(real, fake), cfg).loss.numpy()
  np.testing.assert_allclose(critic, -generator, rtol=1e-12)
  repulsive = _loss("rep", "critic", _outputs(real, fake), dataclasses.replace(cfg, rep_lambda=1.0))
  assert abs(repulsive.loss.numpy() - critic) > 1e-3  # lambda matters


def test_rep_general_lambda_matches_oracle():
  real, fake = _features(2)
  cfg = LossConfig(name="rep", rep_lambda=0.5)
  got = _loss("rep", "critic", _outputs(real, fake), cfg).loss.numpy()
  np.testing.assert_allclose(got, np_rep_critic(real, fake, lam=0.5), rtol=1e-10)


def test_rep_b_equals_rep_when_bounds_are_inactive():
  rng = np.random.default_rng(3)
  real = rng.uniform(-0.4, 0.4, size=(8, 3))                                 # real d2 < 4 * 0.64 < b_u = 4
  fake = 0.6 * np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).reshape(3, -1).T  # fake d2 >= 0.36 > b_l
  for lam in (1.0, -1.0, 0.5):
    cfg = LossConfig(name="rep_b", rep_lambda=lam)
    rep_b = _loss("rep_b", "critic", _outputs(real, fake), cfg).loss.numpy()
    rep = _loss("rep", "critic", _outputs(real, fake), dataclasses.replace(cfg, name="rep")).loss.numpy()
    np.testing.assert_allclose(rep_b, rep, rtol=1e-12)
  # ... and differs once a bound is active (fake points collapsed closer than b_l):
  collapsed = 0.1 * fake
  cfg = LossConfig(name="rep_b")
  rep_b = _loss("rep_b", "critic", _outputs(real, collapsed), cfg).loss.numpy()
  rep = _loss("rep", "critic", _outputs(real, collapsed), dataclasses.replace(cfg, name="rep")).loss.numpy()
  assert abs(rep_b - rep) > 1e-2


def test_rep_b_matches_oracle_with_active_bounds():
  real, fake = _features(4, scale=1.5)
  cfg = LossConfig(name="rep_b", kernel="rbf")
  assert np.any(np_d2(real, real) > cfg.bound_high) and np.any(np_d2(fake, fake) < cfg.bound_low)
  critic = _loss("rep_b", "critic", _outputs(real, fake), cfg)
  np.testing.assert_allclose(critic.loss.numpy(), np_rep_critic(real, fake, bounded=True), rtol=1e-10)
  generator = _loss("rep_b", "generator", _outputs(real, fake), cfg)  # plain rbf: bounds critic-side only
  np.testing.assert_allclose(generator.loss.numpy(), np_rep_generator(real, fake), rtol=1e-10)
  assert KERNEL_KEYS <= set(critic.metrics)


@pytest.mark.parametrize("name,side,oracle", [
    ("rep", "critic", lambda r, f: np_rep_critic(r, f)),
    ("rep", "generator", np_rep_generator),
    ("rep_b", "critic", lambda r, f: np_rep_critic(r, f, bounded=True)),
])
def test_rep_gradients_match_finite_differences(name, side, oracle):
  real, fake = _features(5, m=6, n=6, d=3, scale=1.5)
  real_t, fake_t = tf.constant(real), tf.constant(fake)
  with tf.GradientTape() as tape:
    tape.watch([real_t, fake_t])
    loss = _loss(name, side, losses.CriticOutputs(None, None, real_t, fake_t), LossConfig(name=name)).loss
  grad_real, grad_fake = tape.gradient(loss, [real_t, fake_t])
  np.testing.assert_allclose(grad_real.numpy(), numeric_gradient(lambda r: oracle(r, fake), real),
                             rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(grad_fake.numpy(), numeric_gradient(lambda f: oracle(real, f), fake),
                             rtol=1e-6, atol=1e-9)


def test_half_precision_features_give_a_float32_loss():
  real, fake = _features(6)
  outputs = losses.CriticOutputs(None, None, tf.constant(real, tf.float16), tf.constant(fake, tf.float16))
  terms = _loss("rep", "critic", outputs, LossConfig())
  assert terms.loss.dtype == tf.float32
  np.testing.assert_allclose(terms.loss.numpy(), np_rep_critic(real.astype(np.float16).astype(float),
                                                               fake.astype(np.float16).astype(float)),
                             rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------------
# mmd (Li), mmd_gp (Binkowski), smmd (Arbel).


def test_li_mmd_matches_oracle():
  real, fake = _features(7, m=10, n=10, d=4)
  rng = np.random.default_rng(7)
  real_images, fake_images = rng.normal(size=(2, 5) + IMAGE_SHAPE)
  real_rec, fake_rec = rng.normal(size=(2, 5) + IMAGE_SHAPE)
  outputs = losses.CriticOutputs(
      tf.constant(real_images), tf.constant(fake_images), tf.constant(real), tf.constant(fake),
      real_reconstruction=tf.constant(real_rec), fake_reconstruction=tf.constant(fake_rec))
  sigmas = (1.0, 2.0, 4.0, 8.0, 16.0)
  cfg = LossConfig(name="mmd", kernel="mix_rbf", sigmas=sigmas)
  k_rr, k_ff, k_rf = (np_mix_rbf(a, b, sigmas) for a, b in ((real, real), (fake, fake), (real, fake)))
  mmd2_b = k_rr.mean() + k_ff.mean() - 2 * k_rf.mean()
  h = -np.mean(np.maximum(-(real.mean(0) - fake.mean(0)), 0))
  assert h < 0  # the one-sided term is active for this data
  objective = np.sqrt(max(mmd2_b, 0) + 1e-8) + 16 * h
  ae = np.mean((real_rec - real_images) ** 2) + np.mean((fake_rec - fake_images) ** 2)
  critic = _loss("mmd", "critic", outputs, cfg)
  np.testing.assert_allclose(critic.loss.numpy(), -objective + 8 * ae, rtol=1e-10)
  np.testing.assert_allclose(_loss("mmd", "generator", outputs, cfg).loss.numpy(), objective, rtol=1e-10)
  assert KERNEL_KEYS | {"one_sided", "ae/real", "ae/fake"} <= set(critic.metrics)
  with pytest.raises(ValueError, match="real_reconstruction"):
    _loss("mmd", "critic", outputs._replace(real_reconstruction=None), cfg)


def _linear_critic(weights):
  w = tf.constant(weights)
  return lambda images, training=True: tf.reshape(images, [tf.shape(images)[0], -1]) @ w


def test_mmd_gp_matches_oracle():
  """Real and fake local images coincide, so the interpolates equal them whatever alpha is drawn."""
  real, fake = _features(8, m=10, n=10, d=2)
  rng = np.random.default_rng(8)
  images = rng.normal(size=(4,) + IMAGE_SHAPE)
  weights = rng.normal(scale=0.2, size=(PIXELS, 2))
  acts = [rng.normal(size=(4, 3, 3, 2)), rng.normal(size=(4, 5))]
  outputs = _outputs(real, fake, images=images, critic=_linear_critic(weights),
                     real_activations=[tf.constant(acts[0])], fake_activations=[tf.constant(acts[1])])
  cfg = LossConfig(name="mmd_gp", kernel="rbf", sigmas=(1.0,), gp_weight=1.0, l2_weight=0.5)
  mmd2 = np_mmd2_unbiased(np_rbf(real, real), np_rbf(fake, fake), np_rbf(real, fake))
  p = images.reshape(4, -1) @ weights
  grad_p = sum(sign * np.mean(np_rbf(p, q)[..., None] * (q[None] - p[:, None]), axis=1)
               for sign, q in ((1, real), (-1, fake)))
  norms = np.linalg.norm(grad_p @ weights.T, axis=1)          # over all pixels of each example
  gp = np.mean((norms - 1) ** 2)
  l2 = sum(np.mean(a**2) for a in acts)
  critic = _loss("mmd_gp", "critic", outputs, cfg)
  np.testing.assert_allclose(critic.loss.numpy(), -mmd2 + gp + 0.5 * l2, rtol=1e-8)
  np.testing.assert_allclose(critic.metrics["penalty/gp"].numpy(), gp, rtol=1e-8)
  np.testing.assert_allclose(_loss("mmd_gp", "generator", outputs, cfg).loss.numpy(), mmd2, rtol=1e-10)
  assert KERNEL_KEYS | {"penalty/gp", "penalty/l2"} <= set(critic.metrics)


def test_smmd_matches_oracle():
  """critic_dim 1 linear critic: |J|_F^2 = |w|^2 for every image, s = 1 / (10 |w|^2 + 1)."""
  real, fake = _features(9, m=10, n=10, d=1)
  rng = np.random.default_rng(9)
  weights = rng.normal(scale=0.1, size=(PIXELS, 1))
  outputs = _outputs(real, fake, images=rng.normal(size=(3,) + IMAGE_SHAPE), critic=_linear_critic(weights))
  cfg = LossConfig(name="smmd", kernel="rbf", sigmas=(1.0,))
  scale = 1 / (10 * np.sum(weights**2) + 1)
  mmd2 = np_mmd2_unbiased(np_rbf(real, real), np_rbf(fake, fake), np_rbf(real, fake))
  critic = _loss("smmd", "critic", outputs, cfg)
  np.testing.assert_allclose(critic.loss.numpy(), -scale * mmd2, rtol=1e-10)
  np.testing.assert_allclose(critic.metrics["smmd/scale"].numpy(), scale, rtol=1e-10)
  np.testing.assert_allclose(_loss("smmd", "generator", outputs, cfg).loss.numpy(), scale * mmd2, rtol=1e-10)
  assert KERNEL_KEYS <= set(critic.metrics)


# ---------------------------------------------------------------------------------------------------
# Baselines.


def test_wgan_gp_matches_oracle():
  """D(x) = vec(x) . w has |grad D| = |w| everywhere: GP = (|w| - 1)^2 whatever the interpolates."""
  rng = np.random.default_rng(10)
  real, fake = rng.normal(size=(8, 1)), rng.normal(size=(8, 1))
  weights = rng.normal(scale=0.1, size=(PIXELS, 1))
  images = rng.normal(size=(4,) + IMAGE_SHAPE)
  outputs = losses.CriticOutputs(tf.constant(images), tf.constant(images[::-1].copy()), tf.constant(real),
                                 tf.constant(fake), critic=_linear_critic(weights))
  cfg = LossConfig(name="wgan_gp", gp_weight=10.0)
  gp = (np.linalg.norm(weights) - 1) ** 2
  critic = _loss("wgan_gp", "critic", outputs, cfg)
  np.testing.assert_allclose(critic.loss.numpy(), fake.mean() - real.mean() + 10 * gp, rtol=1e-8)
  generator = _loss("wgan_gp", "generator", outputs, cfg)
  np.testing.assert_allclose(generator.loss.numpy(), -fake.mean(), rtol=1e-12)


@pytest.mark.parametrize("dim", [1, 16])
def test_hinge_matches_oracle(dim):
  """Miyato's hinge (dim 1) and Wang's baseline (16 outputs: the hinge averaged over them)."""
  rng = np.random.default_rng(11)
  real, fake = rng.normal(size=(16, dim)), rng.normal(size=(16, dim))
  cfg = LossConfig(name="hinge")
  want = np.mean(np.maximum(1 - real, 0)) + np.mean(np.maximum(1 + fake, 0))
  outputs = _outputs(real, fake)
  np.testing.assert_allclose(_loss("hinge", "critic", outputs, cfg).loss.numpy(), want, rtol=1e-12)
  np.testing.assert_allclose(_loss("hinge", "generator", outputs, cfg).loss.numpy(), -fake.mean(), rtol=1e-12)


def test_bad_configurations_raise_clear_errors():
  real, fake = _features(12)
  with pytest.raises(ValueError, match="critic_dim 1"):
    _loss("wgan_gp", "critic", _outputs(real, fake), LossConfig(name="wgan_gp"))
  with pytest.raises(ValueError, match="rbf kernel only"):
    _loss("rep_b", "critic", _outputs(real, fake), LossConfig(name="rep_b", kernel="mix_rbf"))
  with pytest.raises(ValueError, match="critic-side only"):
    _loss("rep", "generator", _outputs(real, fake), LossConfig(name="rep", kernel="bounded_rbf"))
  with pytest.raises(ValueError, match="unknown loss"):
    losses.get_loss("lsgan")
  with pytest.raises(ValueError, match="critic"):
    _loss("mmd_gp", "critic", _outputs(real, fake), LossConfig(name="mmd_gp", kernel="rbf"))


@pytest.mark.parametrize("loss, model, field", [
    (LossConfig(name="wgan_gp"), ModelConfig(critic_dim=16), "model.critic_dim"),
    (LossConfig(name="rep_b", kernel="mix_rbf"), ModelConfig(), "loss.kernel"),
    (LossConfig(name="smmd", kernel="bounded_rbf"), ModelConfig(), "loss.kernel"),
    (LossConfig(name="rep", kernel="rbf", sigmas=(1.0, 2.0)), ModelConfig(), "loss.sigmas"),
    (LossConfig(name="mmd_gp", kernel="mix_rq_dot", alphas=()), ModelConfig(), "loss.alphas")])
def test_check_config_names_the_field(loss, model, field):
  with pytest.raises(ConfigError) as info:
    losses.check_config(Config(loss=loss, model=model))
  assert info.value.field == field


def test_check_config_accepts_hinge_on_several_critic_outputs():
  losses.check_config(Config(loss=LossConfig(name="hinge"), model=ModelConfig(critic_dim=16)))


# ---------------------------------------------------------------------------------------------------
# The replica rule: on 2 replicas, sum over replicas of grad(loss / 2) equals the single-device gradient.


class TinyCritic:
  """x -> tanh(vec(x) W1) W2 with float32 variables; activations are the hidden and output layers."""

  def __init__(self, dim, seed):
    rng = np.random.default_rng(seed)
    self.w1 = tf.Variable(rng.normal(scale=0.3, size=(PIXELS, 8)).astype(np.float32))
    self.w2 = tf.Variable(rng.normal(scale=0.5, size=(8, dim)).astype(np.float32))
    self.decoder = tf.Variable(rng.normal(scale=0.3, size=(dim, PIXELS)).astype(np.float32))
    self.variables = [self.w1, self.w2, self.decoder]

  def activations(self, images):
    hidden = tf.tanh(tf.reshape(images, [tf.shape(images)[0], PIXELS]) @ self.w1)
    features = hidden @ self.w2
    return features, [hidden, features]

  def __call__(self, images, training=True):
    return self.activations(images)[0]

  def outputs(self, real_images, fake_images, gather):
    real, real_acts = self.activations(real_images)
    fake, fake_acts = self.activations(fake_images)
    decode = lambda f, like: tf.reshape(f @ self.decoder, tf.shape(like))
    return losses.CriticOutputs(real_images, fake_images, gather(real), gather(fake), self, gather,
                                real_acts, fake_acts, decode(real, real_images), decode(fake, fake_images))


LOSS_CONFIGS = {
    "rep": LossConfig(name="rep"),
    "rep_b": LossConfig(name="rep_b"),
    "mmd": LossConfig(name="mmd", kernel="mix_rbf", sigmas=(1.0, 2.0, 4.0, 8.0, 16.0)),
    "mmd_gp": LossConfig(name="mmd_gp", kernel="mix_rq_dot", alphas=(0.1, 1.0, 10.0)),
    "smmd": LossConfig(name="smmd", kernel="rbf"),
    "wgan_gp": LossConfig(name="wgan_gp", gp_weight=10.0),
    "hinge": LossConfig(name="hinge"),
    "flow": LossConfig(name="flow", kernel="mix_rq_dot", alphas=(0.1, 1.0, 10.0)),
}
CRITIC_DIMS = {"wgan_gp": 1, "hinge": 1, "smmd": 1}


def _single_device(name, real, fake):
  critic = TinyCritic(CRITIC_DIMS.get(name, 4), seed=0)
  spec, cfg = losses.LOSSES[name], LOSS_CONFIGS[name]
  with tf.GradientTape() as tape:
    terms = spec.critic_loss(critic.outputs(tf.constant(real), tf.constant(fake), lambda t: t), cfg)
  return terms, tape.gradient(terms.loss, critic.variables, unconnected_gradients="zero")


def _two_replicas(strategy, name, real, fake):
  with strategy.scope():
    critic = TinyCritic(CRITIC_DIMS.get(name, 4), seed=0)
  spec, cfg = losses.LOSSES[name], LOSS_CONFIGS[name]
  local = len(real) // 2
  def split(x):
    def part(ctx):
      start = ctx.replica_id_in_sync_group * local
      return tf.constant(x[start:start + local])
    return strategy.experimental_distribute_values_from_function(part)

  def replica_step(real_images, fake_images):
    ctx = tf.distribute.get_replica_context()
    gather = lambda t: ctx.all_gather(t, axis=0)
    with tf.GradientTape() as tape:
      terms = spec.critic_loss(critic.outputs(real_images, fake_images, gather), cfg)
      scaled = terms.loss / ctx.num_replicas_in_sync  # the replica rule (ARCHITECTURE.md)
    return terms.loss, tape.gradient(scaled, critic.variables, unconnected_gradients="zero")

  @tf.function
  def step(real_images, fake_images):
    loss, grads = strategy.run(replica_step, args=(real_images, fake_images))
    return (strategy.reduce("MEAN", loss, axis=None),
            [strategy.reduce("SUM", g, axis=None) for g in grads])

  return step(split(real), split(fake))


@pytest.fixture(scope="module")
def strategy():
  """One 2-replica MirroredStrategy for this module, with a collective group key of its own.

  Every MirroredStrategy in a process starts its collective keys at the same values; once a collective of
  one strategy has run, another strategy's collective with the same keys and other shapes fails with
  "Shape mismatch in the collective instance". `_collective_key_base` is TF's own hook for this in tests.
  """
  saved = tf.distribute.MirroredStrategy._collective_key_base
  tf.distribute.MirroredStrategy._collective_key_base = 3000
  try:
    yield tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  finally:
    tf.distribute.MirroredStrategy._collective_key_base = saved


def test_every_loss_has_a_test_config():
  assert set(LOSS_CONFIGS) == set(losses.LOSSES)


@pytest.mark.parametrize("name", list(losses.LOSSES))
def test_two_replicas_match_one_device(strategy, name):
  rng = np.random.default_rng(13)
  real = rng.normal(size=(8,) + IMAGE_SHAPE).astype(np.float32)
  fake = rng.normal(loc=0.3, size=(8,) + IMAGE_SHAPE).astype(np.float32)
  loss, grads = _two_replicas(strategy, name, real, fake)
  assert np.isfinite(loss.numpy()) and all(np.all(np.isfinite(g.numpy())) for g in grads)
  want, want_grads = _single_device(name, real, fake)
  if "penalty/gp" in want.metrics:
    return  # random interpolates differ between the runs; finiteness under 2 replicas is what is checked
  np.testing.assert_allclose(loss.numpy(), want.loss.numpy(), rtol=2e-5, atol=1e-6)
  for got, want in zip(grads, want_grads):
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=2e-4, atol=1e-6)
