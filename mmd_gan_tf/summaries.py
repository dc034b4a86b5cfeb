"""TensorBoard scalars and images, sample-grid PNGs, and the console progress line."""

import math
import os
import time
from typing import Mapping

import numpy as np
import tensorflow as tf


def write_png(path: str, image: np.ndarray) -> None:
  """Writes a uint8 [h, w, c] image as PNG (atomically)."""
  tmp = path + ".tmp"
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

  def line(self, step: int, rate: float, values: Mapping[str, float]) -> str:
    eta = (self._total - step) / rate if rate > 0 else float("inf")
    eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "--:--:--"
    shown = " ".join(f"{k}={v:.4g}" for k, v in values.items())
    return f"step {step}/{self._total} | {shown} | {rate:.2f} steps/s | ETA {eta_text}"
