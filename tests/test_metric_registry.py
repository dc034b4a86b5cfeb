"""mmd_gan_tf.metrics.registry: each entry gives what the metric's own module gives (unequal set sizes)."""

import numpy as np
import pytest
import tensorflow as tf

from mmd_gan_tf.metrics import fid, inception_score, kid, registry

SETTINGS = registry.MetricSettings(kid_subsets=3, kid_subset_size=5, fid_min_samples=0, is_splits=2, seed=4)


@pytest.fixture(scope="module")
def features():
  rng = np.random.default_rng(0)
  real = rng.gamma(1.0, 0.3, size=(12, 16)).astype(np.float32)
  fake = rng.gamma(1.2, 0.3, size=(9, 16)).astype(np.float32)
  logits = rng.normal(size=(9, 7)).astype(np.float32)
  return real, fake, logits


def test_names_and_keys(features):
  for name, metric in registry.METRICS.items():
    values = metric(*features, SETTINGS)
    assert list(values)[0] == name
    assert all(key.startswith(name + "_") for key in list(values)[1:])


def test_kid_eager_is_kid_kid(features):
  real, fake, logits = features
  values = registry.METRICS["kid"](real, fake, logits, SETTINGS)
  expected = kid.kid(real, fake, num_subsets=3, subset_size=5, seed=4)
  assert values == {"kid": expected.mean, "kid_std": expected.std, "kid_stderr": expected.stderr,
                    "kid_mean_x1e3": expected.mean * 1e3, "kid_std_x1e3": expected.std * 1e3}


def test_kid_in_graph_is_kid_in_graph(features):
  real, fake, _ = features
  settings = registry.MetricSettings(kid_subsets=3, kid_subset_size=5, seed=tf.constant(4, tf.int64),
                                     in_graph=True)
  values = tf.function(lambda r, f: registry.METRICS["kid"](r, f, None, settings))(real, fake)
  mean, std = kid.kid_in_graph(real, fake, 3, 5, 4)
  assert set(values) == {"kid", "kid_std"}
  np.testing.assert_allclose([values["kid"].numpy(), values["kid_std"].numpy()], [mean.numpy(), std.numpy()],
                             rtol=1e-12)


def test_fid_and_is(features):
  real, fake, logits = features
  np.testing.assert_allclose(registry.METRICS["fid"](real, fake, None, SETTINGS)["fid"].numpy(),
                             fid.fid(real, fake, min_samples=0).numpy(), rtol=1e-12)
  score = inception_score.inception_score_from_logits(logits, 2)
  assert registry.METRICS["is"](real, fake, logits, SETTINGS) == {"is": score.mean, "is_std": score.std,
                                                                  "is_splits": 2}
  with pytest.raises(ValueError, match="logits"):
    registry.METRICS["is"](real, fake, None, SETTINGS)


def test_refusals_come_from_the_metrics(features):
  real, fake, _ = features
  with pytest.raises(ValueError, match="subset"):
    registry.METRICS["kid"](real, fake, None, registry.MetricSettings(kid_subset_size=10))
  with pytest.raises(ValueError, match="min_samples=2048"):
    registry.METRICS["fid"](real, fake, None, registry.MetricSettings())
