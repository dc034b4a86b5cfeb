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
