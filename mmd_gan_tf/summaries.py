"""TensorBoard scalars and images, sample-grid PNGs, and the console progress line."""

import math
import os
import struct
import time
import zlib
from typing import Mapping, Optional

import numpy as np
import tensorflow as tf


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
  return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png(path: str, image: np.ndarray, text: Optional[Mapping[str, str]] = None) -> None:
  """Writes a uint8 [h, w, c] image as PNG (atomically), with `text` as PNG tEXt chunks (keyword -> Latin-1
  text) after the header, e.g. {"Software": ...} to recognise the file later (`png_text`)."""
  encoded = tf.io.encode_png(image).numpy()
  if text:
    header_end = len(_PNG_SIGNATURE) + 25  # the IHDR chunk: length, type, 13 bytes, CRC
    chunks = b"".join(_png_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
                      for key, value in text.items())
    encoded = encoded[:header_end] + chunks + encoded[header_end:]
  # A short temporary name beside it: `path` + ".tmp" may exceed the file system's name limit.
  tmp = os.path.join(os.path.dirname(path), f".{os.getpid()}.png.tmp")
  tf.io.write_file(tmp, encoded)
  os.replace(tmp, path)


def png_text(path: str, limit: int = 1 << 16) -> dict:
  """The tEXt chunks before the image data of the PNG at `path` ({} for any other file or an unreadable
  one); reads at most `limit` bytes."""
  if not os.path.isfile(path):  # a folder, or a FIFO that would never answer
    return {}
  try:
    with open(path, "rb") as f:
      head = f.read(limit)
  except OSError:
    return {}
  if not head.startswith(_PNG_SIGNATURE):
    return {}
  found, at = {}, len(_PNG_SIGNATURE)
  while at + 8 <= len(head):
    length, kind = struct.unpack(">I", head[at:at + 4])[0], head[at + 4:at + 8]
    if kind in (b"IDAT", b"IEND") or at + 12 + length > len(head):
      break
    if kind == b"tEXt":
      key, _, value = head[at + 8:at + 8 + length].partition(b"\0")
      found[key.decode("latin-1")] = value.decode("latin-1")
    at += 12 + length
  return found


def drop_events_after(log_dir: str, step: int) -> int:
  """Removes from the TensorBoard event files in `log_dir` the events of steps after `step`; returns how many.

  A run killed after its last checkpoint (at `step`) had logged later steps that its resume trains again:
  without this, every reader shows both attempts' values of those steps (TensorBoard's own out-of-order purge
  only covers the first tag it meets), and a run that then ends earlier shows steps it never reached. Only
  files holding such events are rewritten (through a temporary file and a rename); an unreadable tail (a
  record cut by the kill) goes with them.
  """
  from tensorflow.core.util import event_pb2  # pylint: disable=import-outside-toplevel
  if not os.path.isdir(log_dir):
    return 0
  dropped = 0
  for name in sorted(os.listdir(log_dir)):
    path = os.path.join(log_dir, name)
    if "tfevents" not in name or not os.path.isfile(path):
      continue
    records = []
    try:
      for record in tf.data.TFRecordDataset(path):
        records.append(record.numpy())
    except tf.errors.DataLossError:  # a record cut by the kill: the events before it are kept
      pass
    kept = [record for record in records if event_pb2.Event.FromString(record).step <= step]
    if len(kept) == len(records):
      continue
    tmp = os.path.join(log_dir, f".{os.getpid()}.events.tmp")  # no "tfevents" in it: no reader picks it up
    with tf.io.TFRecordWriter(tmp) as writer:
      for record in kept:
        writer.write(record)
    os.replace(tmp, path)
    dropped += len(records) - len(kept)
  return dropped


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
