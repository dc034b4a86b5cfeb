"""Initial weights follow the reference codes; the faithful power-vector start makes step 1 a near-null step."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_gan_tf import config as config_lib
from mmd_gan_tf import losses as losses_lib
from mmd_gan_tf import models
from mmd_gan_tf import steps as steps_lib
from mmd_gan_tf import trainer
from helpers import colour_data_config
from helpers import paper_model_config as ModelConfig  # the papers' scale unless a test says otherwise
from mmd_gan_tf.layers import spectral_norm as sn
from mmd_gan_tf.models import initializers as init

@pytest.fixture(autouse=True)
def _seeded():
  # Deterministic draws: a layer of ~1700 weights has a 1.5% sampling error on its std.
  keras.utils.set_random_seed(1)


TRUNC = 0.87962566103423978  # std of N(0, 1) truncated at +-2 (TF 1.x's uncorrected truncated normal)


def _he(fan_in, scale):
  return TRUNC * math.sqrt(scale / fan_in)


def _glorot(fan_in, fan_out):
  return math.sqrt(2.0 / (fan_in + fan_out))


def _fans(shape):
  """TF's fans: dense [a, b] -> (a, b); conv kernels [kh, kw, a, b] -> (kh kw a, kh kw b)."""
  receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
  return receptive * shape[-2], receptive * shape[-1]


def _kernels(model):
  return [(v.path, v.numpy()) for v in model.weights if v.path.endswith("/kernel")]


def _check(weights, expected_stds, what):
  assert len(weights) == len(expected_stds), [p for p, _ in weights]
  for (path, value), want in zip(weights, expected_stds):
    got = float(value.std())
    assert got == pytest.approx(want, rel=0.05), f"{what} {path}: std {got:.5g}, reference {want:.5g}"


def test_wang_dcgan_32_matches_his_initialisers():
  cfg = ModelConfig(arch="dcgan", spectral_norm="conv")
  generator, critic = models.build_generator(cfg), models.build_critic(cfg)
  gen = _kernels(generator)
  # dense (linear, Glorot), 3 tconvs (ReLU: He scale 2 on TF's fan_in = k k out), final conv (tanh: Glorot).
  want = [_glorot(*_fans(gen[0][1].shape))]
  want += [_he(_fans(v.shape)[0], 2.0) for _, v in gen[1:4]]
  want += [_glorot(*_fans(gen[4][1].shape))]
  _check(gen, want, "generator")
  crit = _kernels(critic)
  want = [_he(_fans(v.shape)[0], 2.0 / 1.01) for _, v in crit[:-1]] + [_glorot(*_fans(crit[-1][1].shape))]
  _check(crit, want, "critic")
  # Biases: truncated normal 1e-5 where present; the tconvs (followed by batch norm) have none.
  biases = [v.numpy() for v in generator.weights + critic.weights if v.path.endswith("/bias")]
  assert len(biases) == 2 + 8
  values = np.concatenate([b.ravel() for b in biases])
  assert np.abs(values).max() <= 2e-5 and np.abs(values).max() > 0
  assert values.std() == pytest.approx(TRUNC * 1e-5, rel=0.1)


def test_wang_dcgan_48_starts_with_a_relu_dense():
  generator = models.build_generator(ModelConfig(arch="dcgan", image_size=48, spectral_norm="conv"))
  path, dense = _kernels(generator)[0]
  assert "dense" in path
  assert float(dense.std()) == pytest.approx(_he(dense.shape[0], 2.0), rel=0.05)


def test_binkowski_dcgan5_matches_his_initialisers():
  cfg = ModelConfig(arch="dcgan5", spectral_norm="none")
  gen = _kernels(models.build_generator(cfg))
  _check(gen, [0.01] + [0.02] * 4, "generator")  # linear N(0, 0.01); deconvs N(0, 0.02)
  crit = _kernels(models.build_critic(cfg))
  _check(crit, [TRUNC * 0.02] * 4 + [0.01], "critic")  # convs truncated normal 0.02; linear N(0, 0.01)


def test_arbel_sngan_matches_his_initialisers():
  cfg = ModelConfig(arch="sngan", spectral_norm="matrix_gain", critic_dim=1)
  gen = _kernels(models.build_generator(cfg))
  _check(gen, [0.01] + [0.02] * 4, "generator")
  critic = models.build_critic(cfg)
  crit = _kernels(critic)
  _check(crit[:-1], [TRUNC * 0.02] * 7, "critic conv")
  # The final linear layer has 8192 weights: std 0.02 to 5%.
  assert float(crit[-1][1].std()) == pytest.approx(0.02, rel=0.05)
  gains = [v for v in critic.weights if "sn_gain" in v.path]
  assert len(gains) == 8 and all(float(g.numpy()) == 1.0 for g in gains)


def _fan_avg_uniform(shape, scale):
  """The std of VarianceScaling(scale, fan_avg, uniform): sqrt(2 scale / (fan_in + fan_out))."""
  return math.sqrt(2.0 * scale / sum(_fans(shape)))


def _resnet_generator_kernels(generator):
  """(dense, residual 3x3 convs, 1x1 shortcuts, last layer) kernels of an up-block generator."""
  kernels = _kernels(generator)
  convs = [(p, v) for p, v in kernels[1:-1] if v.shape[0] == 3]
  shortcuts = [(p, v) for p, v in kernels[1:-1] if v.shape[0] == 1]
  assert len(convs) + len(shortcuts) == len(kernels) - 2, [p for p, _ in kernels]
  return kernels[0], convs, shortcuts, kernels[-1]


def test_binkowski_resnet_big_matches_his_initialisers():
  """His g-resnet5: the WGAN-GP blocks' he_init (residual) and Glorot (shortcut) uniform draws."""
  cfg = ModelConfig(arch="resnet_big", image_size=128, spectral_norm="none")
  generator = models.build_generator(cfg)
  dense, convs, shortcuts, last = _resnet_generator_kernels(generator)
  assert "dense" in dense[0] and "transpose" in last[0] and (len(convs), len(shortcuts)) == (8, 4)
  _check([dense, last], [0.01, 0.02], "generator")  # linear N(0, 0.01); deconv2d N(0, 0.02)
  _check(convs, [_fan_avg_uniform(v.shape, 2.0) for _, v in convs], "generator residual conv")
  _check(shortcuts, [_fan_avg_uniform(v.shape, 1.0) for _, v in shortcuts], "generator shortcut")
  critic = models.build_critic(cfg)
  _check(_kernels(critic), [TRUNC * 0.02] * 5 + [0.01], "critic")  # Binkowski's DCGAN5 discriminator
  biases = [v.numpy() for v in generator.weights + critic.weights if v.path.endswith("/bias")]
  assert biases and not any(np.any(b) for b in biases)


def test_resnet_keeps_keras_glorot_defaults():
  """Wang's code has no ResNet definition to follow (see `models/resnet.py`): Glorot uniform throughout."""
  generator = models.build_generator(ModelConfig(arch="resnet", spectral_norm="none"))
  dense, convs, shortcuts, last = _resnet_generator_kernels(generator)
  assert (len(convs), len(shortcuts)) == (6, 3)
  layers = [dense] + convs + shortcuts + [last]
  _check(layers, [_fan_avg_uniform(v.shape, 1.0) for _, v in layers], "generator")


def test_li_matches_his_weights_init():
  cfg = ModelConfig(arch="li", critic_dim=128, spectral_norm="none")
  for model in (models.build_generator(cfg), models.build_critic(cfg)):
    kernels = _kernels(model)
    _check(kernels[:-1], [0.02] * (len(kernels) - 1), model.name)
    gammas = np.concatenate([v.numpy() for v in model.weights if v.path.endswith("/gamma")])
    assert gammas.mean() == pytest.approx(1.0, abs=0.01) and gammas.std() == pytest.approx(0.02, rel=0.2)
    assert not [v for v in model.weights if v.path.endswith("/bias")]


def test_unseeded_factories_give_every_layer_its_own_draw():
  a, b = init.wang_leaky_relu()((3, 3, 8, 8)), init.wang_leaky_relu()((3, 3, 8, 8))
  assert not np.allclose(a, b)


@pytest.mark.parametrize("mode", ["conv", "matrix"])
def test_power_vector_starts_unnormalised(mode):
  layer = sn.SNConv2D(256, 3, mode=mode)  # matrix mode: a [1, 256] vector
  layer.build((None, 8, 8, 4))
  vector = layer.power_vector.numpy()
  # truncated N(0, 1): norm ~ 0.88 sqrt(n), as Wang's `in_rand`
  assert np.linalg.norm(vector) == pytest.approx(TRUNC * math.sqrt(vector.size), rel=0.1)


def test_first_step_is_a_near_null_step_with_the_faithful_power_vectors():
  """Step 1 overestimates sigma by ~sqrt(n): its weight update moves the features < 1% of step 10's."""
  cfg = config_lib.Config(
      data=colour_data_config(),
      model=ModelConfig(arch="dcgan", spectral_norm="conv", width=0.25),
      loss=config_lib.LossConfig(name="rep", kernel="rbf", sigmas=(1.0,)),
      optim=config_lib.OptimConfig(optimizer="adam", critic_lr=5e-4, generator_lr=2e-4, beta1=0.5),
      train=config_lib.TrainConfig(batch_size=16))
  nets = trainer.build_networks(cfg)
  simultaneous_fn, _, _ = steps_lib.make_replica_fns(nets, cfg, losses_lib.LOSSES["rep"])
  step_fn = tf.function(simultaneous_fn)
  rng = np.random.default_rng(0)
  real = tf.constant(np.tanh(rng.normal(size=(16, 32, 32, 3))), tf.float32)
  probe = tf.constant(np.tanh(rng.normal(size=(32, 32, 32, 3))), tf.float32)
  weights = [v for v in nets.critic.weights if not v.path.endswith("sn_power_vector")]

  def weight_change_effect(step):
    """|critic(probe) with the new weights - with the old weights|, both with the updated power vectors."""
    before = [v.numpy() for v in weights]
    step_fn(real, tf.constant(step, tf.int64))
    after = nets.critic(probe, training=False).numpy()
    saved = [v.numpy() for v in weights]
    for v, value in zip(weights, before):
      v.assign(value)
    old = nets.critic(probe, training=False).numpy()
    for v, value in zip(weights, saved):
      v.assign(value)
    return float(np.linalg.norm(after - old))

  effects = [weight_change_effect(step) for step in range(10)]
  assert effects[0] < 0.01 * effects[9], effects
