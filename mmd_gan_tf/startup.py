"""A program's first seconds (TensorFlow's import: 5-15 s on a small CPU): a stop signal then is one line.

Ctrl-C: "stopped by Ctrl-C while starting: nothing was written", exit code 130 (Python printed the import's
traceback). SIGTERM or SIGHUP (a scheduler, a closed terminal): the same line naming the signal and exit code
75, the code of a stop to run again, so that a requeue loop (`until ...; [ $? -ne 75 ]`) goes on (Python
died silently with 143 or 129). No TensorFlow here: this module is imported before it.
"""

import contextlib
import signal
import sys
from typing import Iterator

EXIT_INTERRUPTED = 75  # as main.py's interrupted run: run the same command again
EXIT_CTRL_C = 130

# The stop signals (SIGTERM, SIGHUP) received while starting, by name.
SIGNALS = []


def _stop(signum, frame):  # pylint: disable=unused-argument
  SIGNALS.append(signal.Signals(signum).name)
  raise KeyboardInterrupt


def stop_line() -> str:
  """The line that says which stop ended the start."""
  if SIGNALS:
    return f"stopped by {SIGNALS[0]} while starting: nothing was written; run the same command again"
  return "stopped by Ctrl-C while starting: nothing was written"


@contextlib.contextmanager
def quiet_stops(active: bool, keep: bool = False) -> Iterator[None]:
  """Inside the block (a program's imports), a stop signal exits with one line (`stop_line`).

  Args:
    active: whether the module runs as the program (`__name__ == "__main__"`); where it is only imported (a
      test, a notebook) nothing is installed and a KeyboardInterrupt goes on as usual.
    keep: the SIGTERM / SIGHUP handler stays after the block (a KeyboardInterrupt, `SIGNALS` naming it) until
      the program installs its own (main.py: through its set-up, until the trainer's handler); else the
      previous handlers are back after the block.
  """
  previous = {signum: signal.signal(signum, _stop) for signum in (signal.SIGTERM, signal.SIGHUP)} if active else {}
  try:
    yield
  except KeyboardInterrupt:
    if not active:
      raise
    print(stop_line(), file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED if SIGNALS else EXIT_CTRL_C)
  finally:
    if not keep:
      for signum, handler in previous.items():
        signal.signal(signum, handler)
