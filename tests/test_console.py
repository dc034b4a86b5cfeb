"""The entry points' console: no CUDA-initialisation noise on a machine without a GPU, real warnings kept
(a real main.py process is checked for it in test_flags.py)."""

import os
import subprocess
import sys

from conftest import ROOT

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
  logger = logging.getLogger("tensorflow")
  assert sum(isinstance(f, console.DropChatter) for f in logger.filters) == 1
  with caplog.at_level(logging.INFO, logger="tensorflow"):
    tf.train.Checkpoint(v=tf.Variable(1.0)).write(str(tmp_path / "ckpt"))
  assert not any("Sharding callback" in r.getMessage() for r in caplog.records)
  record = lambda level, path: logger.makeRecord("tensorflow", level, path, 1, "m", (), None)
  chatter = console.DropChatter()
  assert not chatter.filter(record(logging.INFO, "/x/tensorflow/python/checkpoint/functional_saver.py"))
  assert chatter.filter(record(logging.WARNING, "/x/tensorflow/python/checkpoint/functional_saver.py"))
  assert chatter.filter(record(logging.INFO, "/x/mmd_gan_tf/trainer.py"))
