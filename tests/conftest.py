"""Test set-up: two logical CPU devices, so MirroredStrategy runs with 2 replicas.

This must run before TensorFlow initialises its devices, hence at import time of conftest.
"""

import contextlib
import io
import os
import pathlib
import subprocess
import sys

import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):
  # One TensorFlow thread pool thread per worker (and per main.py it starts): the workers already fill the
  # cores, and more threads than cores cost more in contention than they gain on these small networks.
  os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
  os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
# Hermetic: in-training KID is on by default when the Inception weights are cached, so tests (and the
# main.py processes they start) get an empty cache of their own unless a test passes weights itself.
os.environ["MMD_GAN_TF_CACHE"] = tempfile.mkdtemp(prefix="mmd_gan_tf_test_cache_")
os.environ["MMD_GAN_TF_NO_DOWNLOAD"] = "1"  # no test reaches the network

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# No Grappler graph rewriting in the test processes: it halves the tracing-bound in-process tests (a
# two-replica ResNet step: 47.6 s -> 25.2 s on one core) and changes no result a test checks (op fusion and
# constant folding only). The main.py / tools/*.py processes that the end-to-end tests start keep TensorFlow's
# defaults, so the production graph path is still run by the suite.
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
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


@pytest.fixture
def two_replica_strategy():
  return make_two_replica_strategy()


# The tiny run that test_train.py's seams and test_sn_report.py read (never write): Wang's `rep` on the
# built-in data, eighth width, batch 8, 4 steps on 2 replicas, a checkpoint (and log, samples) every 2 steps.
TINY_RUN = dict(dataset="shapes", loss="rep", width=0.125, batch_size=8, log_every=2, sample_every=2,
                checkpoint_every=2)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
  """(workdir, final metrics) of the TINY_RUN trained once per test process."""
  from flags import build as config_builder  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import trainer  # pylint: disable=import-outside-toplevel
  workdir = tmp_path_factory.mktemp("tiny_run")
  cfg = config_builder.build_config(dict(TINY_RUN, workdir=str(workdir), steps=4))
  return workdir, trainer.train(cfg, strategy=make_two_replica_strategy())


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


@pytest.fixture
def fake_inception(monkeypatch):
  """In-training evaluation and lr adaptation of this process use `FakeInception` (no weights needed)."""
  from mmd_gan_tf.metrics import training_eval  # pylint: disable=import-outside-toplevel
  network = FakeInception()
  monkeypatch.setattr(training_eval, "load_network",
                      lambda eval_cfg, strategy=None: (_FakeInceptionWeights(), network))
  return network


@pytest.fixture
def no_export(monkeypatch):
  """`trainer.train` without its final SavedModel export (1-2 s a run on one core), for tests that never read
  it; the export has tests of its own (test_train.py, test_faults.py, test_eval_default.py)."""
  from mmd_gan_tf import trainer  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(trainer.export_lib, "export_generator", lambda generator, cfg, export_dir, step=None: None)
