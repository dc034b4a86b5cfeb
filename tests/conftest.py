"""Test set-up: two logical CPU devices, so MirroredStrategy runs with 2 replicas.

This must run before TensorFlow initialises its devices, hence at import time of conftest.
"""

import os
import pathlib

import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Hermetic: in-training KID is on by default when the Inception weights are cached, so tests (and the
# main.py processes they start) get an empty cache of their own unless a test passes weights itself.
os.environ["MMD_GAN_TF_CACHE"] = tempfile.mkdtemp(prefix="mmd_gan_tf_test_cache_")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Test assets (real data, Inception weights): $MMD_GAN_TF_TEST_ASSETS, default ../shared/assets.
ASSETS = pathlib.Path(os.environ.get("MMD_GAN_TF_TEST_ASSETS", str(ROOT.parent / "shared" / "assets")))


def asset_path(relative: str) -> pathlib.Path:
  """Path of a shared test asset; skips the test (fails under CI=true) when it is missing."""
  path = ASSETS / relative
  if not path.exists():
    message = f"shared asset {path} is missing"
    if os.environ.get("CI", "").lower() == "true":
      pytest.fail(message)
    pytest.skip(message)
  return path


def tool_env() -> dict:
  """Environment of a main.py / tools/*.py subprocess: this checkout's `mmd_gan_tf` importable even where
  the package is not installed (CI installs it editable; a bare venv of requirements-dev.txt does not)."""
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
  return env


def make_two_replica_strategy() -> tf.distribute.MirroredStrategy:
  """A MirroredStrategy over the two logical CPU devices.

  ReductionToOneDevice: several MirroredStrategy objects in one process reuse NCCL/collective
  instance keys and fail with "Shape mismatch in the collective instance" (tensorflow#62790).
  """
  return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                        cross_device_ops=tf.distribute.ReductionToOneDevice())


@pytest.fixture
def two_replica_strategy():
  return make_two_replica_strategy()
