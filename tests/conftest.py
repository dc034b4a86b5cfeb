"""Test set-up: two logical CPU devices, so MirroredStrategy runs with 2 replicas.

This must run before TensorFlow initialises its devices, hence at import time of conftest.
"""

import atexit
import os
import shutil
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
atexit.register(shutil.rmtree, os.environ["MMD_GAN_TF_CACHE"], ignore_errors=True)  # no litter in /tmp
os.environ["MMD_GAN_TF_NO_DOWNLOAD"] = "1"  # no test reaches the network

from mmd_gan_tf import onednn  # noqa: E402  (no TensorFlow: before it)

onednn.prefer()  # the kernels main.py and the tools run (their test processes get the same from console)

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

# The helpers the fixtures below use (tests import them from helpers.py themselves).
from helpers import (  # noqa: E402
    TINY_RUN, FakeInception, _FakeInceptionWeights, is_slow, make_two_replica_strategy, slow_tests,
    unmatched_entries)


@pytest.fixture
def two_replica_strategy():
  return make_two_replica_strategy()


# The tiny run that test_train.py's seams and test_sn_report.py read (never write): Wang's `rep` on the


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
  """(workdir, final metrics) of the TINY_RUN trained once per test process."""
  from flags import build as config_builder  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import trainer  # pylint: disable=import-outside-toplevel
  workdir = tmp_path_factory.mktemp("tiny_run")
  cfg = config_builder.build_config(dict(TINY_RUN, workdir=str(workdir), steps=4))
  return workdir, trainer.train(cfg, strategy=make_two_replica_strategy())


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


# The suite's two tiers (tests/slow_tests.txt says which tests are slow and why).
TIERS = ("fast", "slow", "all")


def pytest_addoption(parser):
  parser.addoption("--tier", choices=TIERS, default=None,
                   help="fast: leave out the tests of tests/slow_tests.txt (the default when no tests are named); "
                        "slow: only those; all: every test (the default when files or tests are named)")


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect: the whole suite is seen when no tests are named
def pytest_collection_modifyitems(config, items):
  whole_suite = config.args_source == pytest.Config.ArgsSource.TESTPATHS
  tier = config.getoption("tier") or ("fast" if whole_suite else "all")
  slow = slow_tests()
  if whole_suite:
    stale = unmatched_entries(slow, [item.nodeid for item in items])
    if stale:
      raise pytest.UsageError(f"tests/slow_tests.txt names no test as {', '.join(stale)}: rename or remove")
  if tier == "all":
    return
  kept, left_out = [], []
  for item in items:
    (kept if is_slow(item.nodeid, slow) == (tier == "slow") else left_out).append(item)
  if left_out:
    config.hook.pytest_deselected(items=left_out)
    items[:] = kept
