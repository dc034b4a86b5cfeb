"""Helpers the tests import (`from helpers import ...`): paths, the shared assets, main.py in this process,
the two-replica strategy, the tiny run's settings and a cheap stand-in for the FID Inception network.

The device set-up they rely on (two logical CPU devices, an empty feature cache, no downloads) is done by
conftest.py, which pytest imports first; the fixtures live there too.
"""

import contextlib
import io
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from mmd_gan_tf import config as config_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]


SLOW_TESTS = ROOT / "tests" / "slow_tests.txt"


def slow_tests() -> frozenset:
  """The entries of tests/slow_tests.txt: test ids (file::function) and parametrization ids (file::function[id])."""
  lines = SLOW_TESTS.read_text(encoding="utf-8").splitlines()
  return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def _function_id(nodeid: str) -> str:
  """A test's id without its parametrization: file::function."""
  return nodeid.split("[", 1)[0]


def is_slow(nodeid: str, entries) -> bool:
  """Whether a test (its pytest node id) is in the slow tier: named itself or by its function."""
  return nodeid in entries or _function_id(nodeid) in entries


def unmatched_entries(entries, nodeids) -> list:
  """The entries of tests/slow_tests.txt that name none of `nodeids` (a renamed or removed test), sorted."""
  found = set(nodeids) | {_function_id(nodeid) for nodeid in nodeids}
  return sorted(set(entries) - found)


def colour_data_config(**fields) -> config_lib.DataConfig:
  """A DataConfig of colour images (3 channels; `shapes` draws its mixed colour shapes) unless `fields` say
  otherwise: what the data tests are about, where the library default is the quick run's one-channel digits."""
  return config_lib.DataConfig(**{"channels": 3, "shapes_style": "mixed", **fields})


def paper_model_config(**fields) -> config_lib.ModelConfig:
  """A ModelConfig at the papers' scale (3 channels, full width, matrix spectral norm) unless `fields` say
  otherwise: what the model tests are about, where the library default is the quick run's quarter width."""
  return config_lib.ModelConfig(**{"channels": 3, "width": 1.0, "spectral_norm": "matrix", **fields})

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


def main_in_process(*args: str) -> subprocess.CompletedProcess:
  """`python main.py ARGS` run in this process (`mmd_gan_tf.cli.call`): its exit code, stdout and stderr.

  The command-line boundary without a new Python and TensorFlow start (5-6 s each on one core): for the
  tests of flag parsing, --dry_run and one-line errors. A few tests still start main.py for real.
  """
  if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
  import main  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import cli  # pylint: disable=import-outside-toplevel
  stdout, stderr = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
    code = cli.call(main.main, ["main.py", *args])
  return subprocess.CompletedProcess(["main.py", *args], code, stdout.getvalue(), stderr.getvalue())


def make_two_replica_strategy() -> tf.distribute.MirroredStrategy:
  """A MirroredStrategy over the two logical CPU devices.

  ReductionToOneDevice: several MirroredStrategy objects in one process reuse NCCL/collective
  instance keys and fail with "Shape mismatch in the collective instance" (tensorflow#62790).
  """
  return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                        cross_device_ops=tf.distribute.ReductionToOneDevice())


# built-in data, eighth width, batch 8, 4 steps on 2 replicas, a checkpoint (and log, samples) every 2 steps.
TINY_RUN = dict(dataset="shapes", loss="rep", width=0.125, batch_size=8, log_every=2, sample_every=2,
                checkpoint_every=2)


def copy_of_trained_run(trained_run, destination: pathlib.Path) -> pathlib.Path:
  """A copy of the session's tiny run (TINY_RUN, checkpoints at steps 2 and 4) to resume, cut or break."""
  import shutil  # pylint: disable=import-outside-toplevel
  shutil.copytree(trained_run[0], destination, ignore=shutil.ignore_patterns(".lock"))
  return destination


class _FakeInceptionWeights:
  sha256 = "fake-inception-for-tests"


class FakeInception(tf.Module):
  """A cheap stand-in for the FID Inception network where a test exercises the training seams (when KID is
  computed, what is logged, checkpointed and resumed), not the features: pixels [N, H, W, 3] in [0, 255] ->
  [N, 2048], a fixed random projection of the 4 x 4 area-averaged image."""

  def __init__(self):
    super().__init__()
    rng = np.random.default_rng(0)
    self.projection = tf.constant(rng.normal(size=[48, 2048]) / 7.0, tf.float32)

  def __call__(self, pixels):
    pooled = tf.image.resize(pixels / 255.0, [4, 4], method="area")
    return tf.nn.relu(tf.reshape(pooled, [-1, 48]) @ self.projection)
