"""The entry points' console: no CUDA-initialisation noise on a machine without a GPU, real warnings kept
(a real main.py process is checked for it in test_flags.py)."""

import os
import subprocess
import sys

from helpers import ROOT

_FAKE_TENSORFLOW = '''
import os
os.write(2, b"I0000 00:00:1.0 1 cudart_stub.cc:31] Could not find cuda drivers on your machine\\n")
os.write(2, b"W0000 a real warning about something else\\n")

class config:
  @staticmethod
  def list_physical_devices():
    os.write(2, b"E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit: CUDA error\\n")
    return []
'''


def test_only_the_no_gpu_lines_are_filtered(tmp_path):
  package = tmp_path / "tensorflow"
  package.mkdir()
  (package / "__init__.py").write_text(_FAKE_TENSORFLOW)
  code = "from mmd_gan_tf import console; console.import_tensorflow_quietly(); print('imported')"
  env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120, check=True)
  assert result.stdout.strip() == "imported"
  assert result.stderr == "W0000 a real warning about something else\n"


def test_tensorflows_chatter_is_dropped_and_its_warnings_kept(caplog, tmp_path):
  """A checkpoint's "Sharding callback" INFO line goes; a warning of the same module and INFO lines of other
  modules stay."""
  import logging  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import console  # pylint: disable=import-outside-toplevel
  console.quiet_tensorflow_logging()
  console.quiet_tensorflow_logging()  # twice: one filter
  from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
  for name in ("tensorflow", "absl"):
    assert sum(isinstance(f, console.DropChatter) for f in logging.getLogger(name).filters) == 1
  logger = logging.getLogger("tensorflow")
  verbosity = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.INFO)  # as main.py runs: the line is logged through absl
  try:
    with caplog.at_level(logging.INFO, logger="tensorflow"), caplog.at_level(logging.INFO, logger="absl"):
      tf.train.Checkpoint(v=tf.Variable(1.0)).write(str(tmp_path / "ckpt"))
      absl_logging.info("a line of this project")
  finally:
    absl_logging.set_verbosity(verbosity)
  assert not any("Sharding callback" in r.getMessage() for r in caplog.records)
  assert any("a line of this project" in r.getMessage() for r in caplog.records)  # the capture works
  record = lambda level, path: logger.makeRecord("tensorflow", level, path, 1, "m", (), None)
  chatter = console.DropChatter()
  assert not chatter.filter(record(logging.INFO, "/x/tensorflow/python/checkpoint/functional_saver.py"))
  assert not chatter.filter(record(logging.INFO, "/x/tensorflow/python/distribute/cross_device_ops.py"))
  assert chatter.filter(record(logging.WARNING, "/x/tensorflow/python/checkpoint/functional_saver.py"))
  assert chatter.filter(record(logging.INFO, "/x/mmd_gan_tf/trainer.py"))
