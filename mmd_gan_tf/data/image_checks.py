"""Cheap structural checks of encoded images, so that bad files are found before TensorFlow decodes them.

`inspect_image(data)` reads only the container structure (signature, header, end marker), never the pixels:
it tells the format, whether the image is grayscale, and whether the file is not an image, truncated, or in a
variant the TF decoders get wrong. Folder scans and the LSUN LMDB reader call it on every file/value and skip
(and count, and name) what fails; damage inside the compressed data with an intact structure is only found by
decoding (`tools/prepare_dataset.py` decodes every image and skips those too).

TensorFlow 2.21's `tf.io.decode_image` decodes JPEG, PNG, GIF, BMP and WebP (measured: WebP pixels are
bit-identical to Pillow's), so every accepted image is decoded in-graph, with no Python in the input pipeline.
"""

import collections
import dataclasses
import logging
import struct
import threading
from typing import List, Optional, Tuple

# Pillow's decompression-bomb limit: a header that claims more pixels is refused before anything decodes it
# (a real photograph of that size is no training image at these resolutions either).
MAX_PIXELS = 89_478_485
# The signatures `inspect_image` knows; a file starting otherwise is not read further.
SIGNATURE_BYTES = 16

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclasses.dataclass(frozen=True)
class ImageInfo:
  """What `inspect_image` found: the format, grayscale or not, the problem (None when usable) and the shorter
  side in pixels where the header tells it (not for WebP)."""
  format: Optional[str]
  grayscale: bool = False
  problem: Optional[str] = None
  short_side: Optional[int] = None


def _size_problem(kind: str, width: int, height: int) -> Optional[str]:
  if width <= 0 or height <= 0:
    return f"corrupt {kind} (header claims {width}x{height} pixels)"
  if width * height > MAX_PIXELS:
    return (f"{kind} header claims {width}x{height} pixels, over the {MAX_PIXELS:,} that any decoder here "
            "accepts (a decompression bomb, or far larger than a training image)")
  return None


def _jpeg(data: bytes) -> ImageInfo:
  # Entropy-coded data stuffs 0xFF with 0x00, so FFD9 near the end can only be the end-of-image marker
  # (some writers append a few bytes after it).
  end = data.rfind(b"\xff\xd9")
  if end < 0 or end < len(data) - 1024:
    return ImageInfo("jpeg", problem="truncated JPEG (no end-of-image marker)")
  pos = 2
  while pos + 4 <= len(data):
    if data[pos] != 0xFF:
      return ImageInfo("jpeg", problem=f"corrupt JPEG (bad marker at byte {pos})")
    marker = data[pos + 1]
    if marker == 0xFF:  # fill byte
      pos += 1
      continue
    length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
    if marker in _JPEG_SOF:
      if pos + 10 > len(data):
        break
      components = data[pos + 9]
      height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
      problem = _size_problem("JPEG", width, height)
      if problem:
        return ImageInfo("jpeg", problem=problem)
      if components not in (1, 3):
        return ImageInfo("jpeg", problem=f"unsupported JPEG with {components} components (CMYK?)")
      return ImageInfo("jpeg", grayscale=components == 1, short_side=min(width, height))
    pos += 2 + length
  return ImageInfo("jpeg", problem="corrupt JPEG (no frame header)")


def _png(data: bytes) -> ImageInfo:
  if len(data) < 33 or data[12:16] != b"IHDR":
    return ImageInfo("png", problem="corrupt PNG (no IHDR header)")
  if b"IEND" not in data[-12:]:
    return ImageInfo("png", problem="truncated PNG (no IEND chunk)")
  width, height = struct.unpack(">II", data[16:24])
  problem = _size_problem("PNG", width, height)
  if problem:
    return ImageInfo("png", problem=problem)
  colour_type = data[25]
  return ImageInfo("png", grayscale=colour_type in (0, 4), short_side=min(width, height))


def _webp(data: bytes) -> ImageInfo:
  declared = struct.unpack("<I", data[4:8])[0] + 8
  if len(data) < declared:
    return ImageInfo("webp", problem=f"truncated WebP ({len(data)} of {declared} bytes)")
  return ImageInfo("webp")


def _bmp(data: bytes) -> ImageInfo:
  if len(data) < 30:
    return ImageInfo("bmp", problem="truncated BMP header")
  declared, bits = struct.unpack("<I", data[2:6])[0], struct.unpack("<H", data[28:30])[0]
  if declared and len(data) < declared:
    return ImageInfo("bmp", problem=f"truncated BMP ({len(data)} of {declared} bytes)")
  width, height = struct.unpack("<ii", data[18:26])
  problem = _size_problem("BMP", width, abs(height))  # a negative height is a top-down BMP
  if problem:
    return ImageInfo("bmp", problem=problem)
  if bits not in (24, 32):
    # tf.io.decode_bmp returns palette indices for 1/4/8-bit BMPs, not colours.
    return ImageInfo("bmp", problem=f"unsupported {bits}-bit (palette) BMP; convert it to 24-bit")
  return ImageInfo("bmp", short_side=min(width, abs(height)))


def _gif(data: bytes) -> ImageInfo:
  if not data.rstrip(b"\x00").endswith(b"\x3b"):
    return ImageInfo("gif", problem="truncated GIF (no trailer)")
  if len(data) < 10:
    return ImageInfo("gif", problem="truncated GIF")
  width, height = struct.unpack("<HH", data[6:10])
  return ImageInfo("gif", problem=_size_problem("GIF", width, height), short_side=min(width, height))


def has_image_signature(head: bytes) -> bool:
  """Whether the first `SIGNATURE_BYTES` of a file start like a format that `inspect_image` checks."""
  return inspect_image(head[:SIGNATURE_BYTES]).format is not None


def inspect_image(data: bytes) -> ImageInfo:
  """Format, grayscale flag and problem of an encoded image, from its structure only (no decoding)."""
  if data[:3] == b"\xff\xd8\xff":
    return _jpeg(data)
  if data[:8] == b"\x89PNG\r\n\x1a\n":
    return _png(data)
  if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
    return _webp(data)
  if data[:2] == b"BM":
    return _bmp(data)
  if data[:6] in (b"GIF87a", b"GIF89a"):
    return _gif(data)
  return ImageInfo(None, problem="not an image (unknown file signature)" if data else "empty file")


class SourceReport:
  """Thread-safe tally of a source's images: usable, grayscale (converted), skipped (with names)."""

  def __init__(self, source: str, corrupt_is_fatal: bool = False, max_named: int = 20):
    self.source, self.corrupt_is_fatal, self.max_named = source, corrupt_is_fatal, max_named
    self.usable = self.grayscale = 0
    self.skipped: List[Tuple[str, str]] = []
    self.short_sides: collections.Counter = collections.Counter()  # shorter side in pixels -> images
    self._lock = threading.Lock()

  def check(self, name: str, data: bytes) -> bool:
    """Records `data` (named `name`); True when usable. Raises ValueError if bad and corrupt_is_fatal."""
    info = inspect_image(data)
    if info.problem is not None:
      return self.reject(name, info.problem)
    with self._lock:
      self.usable += 1
      self.grayscale += int(info.grayscale)
      if info.short_side is not None:
        self.short_sides[info.short_side] += 1
    return True

  def reject(self, name: str, problem: str) -> bool:
    """Records `name` as skipped for `problem` (False), or raises ValueError when corrupt_is_fatal."""
    if self.corrupt_is_fatal:
      raise ValueError(f"{self.source}: bad image {name!r}: {problem} (corrupt_is_fatal is set)")
    with self._lock:
      self.skipped.append((name, problem))
      if len(self.skipped) <= self.max_named:
        logging.warning("%s: skipping %r: %s", self.source, name, problem)
    return False

  def smaller_than(self, pixels: int) -> Tuple[int, Optional[int]]:
    """(how many usable images have a shorter side under `pixels`, the smallest shorter side)."""
    small = {side: count for side, count in self.short_sides.items() if side < pixels}
    return sum(small.values()), min(small) if small else None

  def summary(self) -> str:
    named = ", ".join(f"{name} ({why})" for name, why in self.skipped[:self.max_named])
    more = f" and {len(self.skipped) - self.max_named} more" if len(self.skipped) > self.max_named else ""
    text = f"{self.source}: {self.usable} usable images ({self.grayscale} grayscale)"
    return text + (f", {len(self.skipped)} skipped: {named}{more}" if self.skipped else "")
