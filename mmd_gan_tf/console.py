"""What the entry points print before their own lines: TensorFlow imported without the no-GPU noise.

On a machine without a GPU, the TensorFlow CUDA build writes "Could not find cuda drivers" and "failed call
to cuInit: ... CUDA error" to stderr while it loads, from C++ and before any log level applies. A newcomer
reads the first error line as the cause of whatever follows, so the entry points import TensorFlow through
`import_tensorflow_quietly()`: the import runs with stderr captured, and every captured line except those
known no-GPU messages is written back, in order. It also drops the INFO chatter of a few TensorFlow modules
(`TF_CHATTER`: a line per checkpoint, the export's signature lines); warnings and errors always pass.
"""

import logging
import os
import sys
import tempfile

from mmd_gan_tf import onednn

# Substrings of the lines TensorFlow's CUDA build prints on a machine without a GPU (and the absl notice
# that precedes them). Anything else printed during the import is passed through.
NO_GPU_NOISE = (
    "cudart_stub.cc",
    "cuda_platform.cc",
    "cuda_diagnostics.cc",
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",  # an INFO line of every CPU build; nothing to act on
)

# TensorFlow's Python modules whose INFO lines say what the run says itself, or nothing a user acts on: a line
# per checkpoint ("Sharding callback duration"), three ~700-character signature lines, the SavedModel's
# assets and fingerprint lines at export, the strategy's device list (the trainer logs it) and its "Reduce to" /
# "Gather to" lines with several logical CPU devices.
TF_CHATTER = ("functional_saver.py", "signature_serialization.py", "fingerprinting_utils.py",
              "builder_impl.py", "mirrored_strategy.py", "cross_device_ops.py")


class DropChatter(logging.Filter):
  """Drops INFO and DEBUG records of the `TF_CHATTER` modules; warnings and errors always pass."""

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or os.path.basename(record.pathname) not in TF_CHATTER


def quiet_tensorflow_logging() -> None:
  """Installs `DropChatter` on the "tensorflow" and "absl" loggers (those modules log through one or the
  other: the checkpoint's "Sharding callback" line through absl), once each."""
  for name in ("tensorflow", "absl"):
    logger = logging.getLogger(name)
    if not any(isinstance(f, DropChatter) for f in logger.filters):
      logger.addFilter(DropChatter())


def is_no_gpu_noise(line: str) -> bool:
  return any(marker in line for marker in NO_GPU_NOISE)


def import_tensorflow_quietly():
  """Imports TensorFlow and enumerates its devices with the no-GPU lines filtered out; returns the module.

  Before the import, `onednn.prefer` turns TensorFlow's oneDNN CPU kernels on where TensorFlow would leave
  them off (unless the user set `TF_ENABLE_ONEDNN_OPTS`). Enumerating physical devices (where cuInit runs) does not initialise the runtime, so logical CPU
  devices can still be configured afterwards.
  """
  if "tensorflow" in sys.modules:
    quiet_tensorflow_logging()
    return sys.modules["tensorflow"]
  onednn.prefer()
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
  quiet_tensorflow_logging()
  return tf
