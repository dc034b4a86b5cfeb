"""TensorBoard scalars and images, sample-grid PNGs, and the console progress line."""

import math
import os
import time
from typing import Mapping, Optional

import numpy as np
import tensorflow as tf


def write_png(path: str, image: np.ndarray) -> None:
  """Writes a uint8 [h, w, c] image as PNG (atomically)."""
  # A short temporary name beside it: `path` + ".tmp" may exceed the file system's name limit.
  tmp = os.path.join(os.path.dirname(path), f".{os.getpid()}.png.tmp")
  tf.io.write_file(tmp, tf.io.encode_png(image))
  os.replace(tmp, path)


def write_config(writer, cfg) -> None:
  """The resolved config as a TensorBoard text summary ("config", step 0), to compare runs side by side."""
  with writer.as_default(step=0):
    tf.summary.text("config", "```\n" + cfg.to_json() + "\n```")


def write_scalars(writer, values: Mapping[str, float], step: int) -> None:
  """One TensorBoard scalar per entry (no-op writer on non-chief workers)."""
  with writer.as_default(step=step):
    for name, value in values.items():
      tf.summary.scalar(name, value)


class Progress:
  """Measures steps/s over each logging interval and formats the console line."""

  def __init__(self, start_step: int, total_steps: int):
    self._last_step = start_step
    self._last_time = time.time()
    self._total = total_steps

  def rate(self, step: int) -> float:
    """Steps per second since the previous call."""
    now = time.time()
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    return rate

  def line(self, step: int, rate: float, values: Mapping[str, float], seconds_left: Optional[float] = None) -> str:
    """`seconds_left`: of a training-time limit (`--max_train_minutes`), which ends the run first when the
    steps would take longer."""
    eta = (self._total - step) / rate if rate > 0 else float("inf")
    if seconds_left is not None:
      eta = min(eta, max(seconds_left, 0.0))
    shown = " ".join(f"{k}={v:.4g}" for k, v in values.items())
    return f"step {step}/{self._total} | {shown} | {rate:.2f} steps/s | ETA {duration_text(eta)}"


def duration_text(seconds: float) -> str:
  """'H:MM:SS' (hours past 24 kept: '27:46:40'), '--:--:--' when not finite."""
  if not math.isfinite(seconds):
    return "--:--:--"
  minutes, secs = divmod(int(round(seconds)), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{secs:02d}"
