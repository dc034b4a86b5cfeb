"""TensorFlow's oneDNN CPU kernels on every x86-64 Linux CPU, not only where TensorFlow turns them on itself.

TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, when it is imported, and without it runs oneDNN only on CPUs
with AVX-512 VNNI, AVX-512 BF16 or AMX units. Elsewhere (AVX2-only CPUs) its own fallback kernels run, and
some of them are far slower: on a 2-core AVX2 EPYC, Binkowski's half-width `mmd_gp` step spent 73% of its op
time in the input gradients of convolutions and ran 5.2x slower than with oneDNN; the default run's step ran
2.3x slower even with XLA (BENCHMARKS.md, "oneDNN on an AVX2-only CPU"). So main.py and the tools set the variable to 1
before TensorFlow's import (`console.import_tensorflow_quietly`) unless the user set it: a user's value wins,
and `TF_ENABLE_ONEDNN_OPTS=0` keeps TensorFlow's fallback kernels. Code that imports TensorFlow itself sets
the variable before that import. No TensorFlow here: this module runs before it.
"""

import os
import platform
from typing import Mapping, MutableMapping, Optional

ENV = "TF_ENABLE_ONEDNN_OPTS"

# Why the variable has the value it has in this process (`prefer`), for the run's log.
REASON = []


def default_value(environ: Mapping[str, str], system: str, machine: str) -> Optional[str]:
  """The value this project gives `TF_ENABLE_ONEDNN_OPTS`: "1" on x86-64 Linux (where TensorFlow's wheels
  carry oneDNN) when the user has not set it; None (leave it) otherwise."""
  if ENV in environ:
    return None
  if system != "Linux" or machine.lower() not in ("x86_64", "amd64"):
    return None
  return "1"


def prefer(environ: Optional[MutableMapping[str, str]] = None, system: Optional[str] = None,
           machine: Optional[str] = None) -> str:
  """Sets `TF_ENABLE_ONEDNN_OPTS=1` in `environ` (the process's) where `default_value` says so; returns why
  the variable has its value (also kept in `REASON`). Call it before TensorFlow's import: later it changes
  nothing in this process."""
  environ = os.environ if environ is None else environ
  system = platform.system() if system is None else system
  machine = platform.machine() if machine is None else machine
  value = default_value(environ, system, machine)
  if value is not None:
    environ[ENV] = value
    reason = f"{ENV}={value}, set by mmd_gan_tf on x86-64 Linux; {ENV}=0 keeps TensorFlow's own kernels"
  elif ENV in environ:
    reason = f"{ENV}={environ[ENV]} as set by the user"
  else:
    reason = f"TensorFlow's default on {system} {machine}"
  REASON[:] = [reason]
  return reason


def state_line(enabled: bool) -> str:
  """The log line of the kernels this process runs (`enabled`: TensorFlow's answer after its import)."""
  why = REASON[0] if REASON else "TensorFlow's default (imported before mmd_gan_tf could choose)"
  return f"oneDNN CPU kernels: {'on' if enabled else 'off'} ({why})"


def enabled() -> bool:
  """Whether TensorFlow runs its CPU kernels through oneDNN in this process (imports TensorFlow)."""
  from tensorflow.python.util import _pywrap_util_port  # pylint: disable=import-outside-toplevel
  return bool(_pywrap_util_port.IsMklEnabled())
