"""What the entry points print before their own lines: TensorFlow imported without the no-GPU noise.

On a machine without a GPU, the TensorFlow CUDA build writes "Could not find cuda drivers" and "failed call
to cuInit: ... CUDA error" to stderr while it loads, from C++ and before any log level applies. A newcomer
reads the first error line as the cause of whatever follows, so the entry points import TensorFlow through
`import_tensorflow_quietly()`: the import runs with stderr captured, and every captured line except those
known no-GPU messages is written back, in order.
"""

import os
import sys
import tempfile

# Substrings of the lines TensorFlow's CUDA build prints on a machine without a GPU (and the absl notice
# that precedes them). Anything else printed during the import is passed through.
NO_GPU_NOISE = (
    "cudart_stub.cc",
    "cuda_platform.cc",
    "cuda_diagnostics.cc",
    "All log messages before absl::InitializeLog() is called are written to STDERR",
)


def is_no_gpu_noise(line: str) -> bool:
  return any(marker in line for marker in NO_GPU_NOISE)


def import_tensorflow_quietly():
  """Imports TensorFlow and enumerates its devices with the no-GPU lines filtered out; returns the module.

  Enumerating physical devices (where cuInit runs) does not initialise the runtime, so logical CPU
  devices can still be configured afterwards.
  """
  if "tensorflow" in sys.modules:
    return sys.modules["tensorflow"]
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow as tf  # pylint: disable=import-outside-toplevel
      tf.config.list_physical_devices()
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      kept = [line for line in captured.read().decode(errors="replace").splitlines(True)
              if not is_no_gpu_noise(line)]
      sys.stderr.write("".join(kept))
      sys.stderr.flush()
  return tf
