"""Image folders: every file under `data_dir` (recursively), checked once before training.

The scan reads every file and checks its structure (`image_checks.inspect_image`): non-image, truncated and
unsupported files are skipped with a warning naming them (or are fatal with `corrupt_is_fatal`), grayscale
ones are counted (decoding converts them to the requested channels), and a folder without a usable image is a
ValueError. The result is cached per process, so `validate_data_config` and `make_dataset` scan once.
"""

import concurrent.futures
import functools
import logging
import os
from typing import List, Tuple

from mmd_gan_tf.config import ConfigError
from mmd_gan_tf.data import image_checks
from mmd_gan_tf.data.image_checks import SourceReport

_SCAN_THREADS = 8
# Larger files are skipped unread: a PNG at the pixel limit of `image_checks` is about this size.
MAX_FILE_BYTES = 512 * 2**20


_PROGRESS_EVERY = 50_000


def _is_run_folder(folder: str) -> bool:
  """A training run's folder: its lock file, or its config.json beside checkpoints/."""
  return os.path.isfile(os.path.join(folder, ".lock")) or (
      os.path.isfile(os.path.join(folder, "config.json")) and os.path.isdir(os.path.join(folder, "checkpoints")))


def list_files(data_dir: str) -> List[str]:
  """Every regular, non-hidden file under `data_dir`, sorted; ValueError when it is missing or empty.

  Symbolic links to folders are followed, each real folder once: a link back up the tree (a loop) is
  skipped with a warning instead of being walked again, and so is a training run's folder (reached through
  a link, its sample grids would become training images). Large folders log their progress.
  """
  if not os.path.isdir(data_dir):
    raise ConfigError("data.data_dir", data_dir, "does not exist or is not a directory")
  paths, visited, loops, undecodable, runs, dangling, special = [], set(), [], [], [], [], []
  for root, dirs, files in os.walk(data_dir, followlinks=True):
    real = os.path.realpath(root)
    if real in visited:  # reached again through a link
      loops.append(root)
      dirs[:] = []
      continue
    visited.add(real)
    if _is_run_folder(root):  # e.g. reached through a link: its sample grids and checkpoints are not data
      runs.append(root)
      dirs[:] = []
      continue
    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    before = len(paths)
    for name in files:
      path = os.path.join(root, name)
      if name.startswith("."):
        continue
      if not os.path.isfile(path):
        if not os.path.exists(path):  # a link to nothing (or to a folder that is gone)
          dangling.append(path)
        elif not os.path.isdir(path):  # a FIFO, device or socket (or a link to one): reading it could hang
          special.append(path)
        continue
      if not _utf8(path):
        undecodable.append(path)
        continue
      paths.append(path)
    if len(paths) // _PROGRESS_EVERY > before // _PROGRESS_EVERY:
      logging.info("folder %r: %d files listed so far", data_dir, len(paths))
  if loops:
    logging.warning("folder %r: skipped %d folder(s) reached again through symbolic links (loops), e.g. %r",
                    data_dir, len(loops), loops[0])
  if dangling:
    logging.warning("folder %r: skipped %d symbolic link(s) to nothing, e.g. %r", data_dir, len(dangling),
                    dangling[0])
  if special:
    logging.warning("folder %r: skipped %d special file(s) (FIFOs, devices or sockets, or links to them: not "
                    "images), e.g. %r", data_dir, len(special), special[0])
  if runs:
    logging.warning("folder %r: skipped %d training run folder(s) (their samples and checkpoints are not "
                    "data), e.g. %r", data_dir, len(runs), runs[0])
  if undecodable:
    logging.warning("folder %r: skipped %d file(s) whose names are not valid UTF-8 (TensorFlow cannot open "
                    "them; rename them), e.g. %r", data_dir, len(undecodable), os.fsencode(undecodable[0]))
  if not paths:
    raise ValueError(f"data_dir {data_dir!r} contains no files" + (" with UTF-8 names" if undecodable else ""))
  return sorted(paths)


def _check(report: SourceReport, path: str) -> bool:
  """Reads `path` only as far as needed: its signature first, the rest only for a known image format of a
  plausible size (a 3 GB video costs 16 bytes)."""
  try:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
      head = f.read(image_checks.SIGNATURE_BYTES)
      if not image_checks.has_image_signature(head):
        return report.check(path, head)
      if size > MAX_FILE_BYTES:
        return report.reject(path, f"{size / 2**20:.0f} MiB, over the {MAX_FILE_BYTES // 2**20} MiB an image "
                             "file may have here")
      return report.check(path, head + f.read())
  except OSError as error:
    return report.reject(path, f"unreadable ({error.strerror})")


def _utf8(path: str) -> bool:
  try:
    path.encode("utf-8")
  except UnicodeEncodeError:  # os.walk keeps undecodable bytes as surrogate escapes
    return False
  return True


@functools.lru_cache(maxsize=8)
def scan_folder(data_dir: str, corrupt_is_fatal: bool = False) -> Tuple[Tuple[str, ...], SourceReport]:
  """(usable image paths, report) of a folder; ValueError if it has no usable image (or a bad one when fatal)."""
  paths = list_files(data_dir)
  report = SourceReport(f"folder {data_dir!r}", corrupt_is_fatal)
  with concurrent.futures.ThreadPoolExecutor(_SCAN_THREADS) as pool:
    usable = [path for path, ok in zip(paths, pool.map(lambda p: _check(report, p), paths)) if ok]
  if not usable:
    raise ValueError(f"no usable image in data_dir {data_dir!r}: {report.summary()}")
  log = logging.warning if report.skipped else logging.info
  log("%s", report.summary())
  return tuple(usable), report


_warned_small = set()


def warn_small_images(data_dir: str, report: SourceReport, image_size: int) -> None:
  """One warning (per folder and size) when images are under half of `image_size` on their shorter side:
  they are upscaled more than 2x (a folder of icons or thumbnails is rarely what a user meant to train on)."""
  count, smallest = report.smaller_than(image_size / 2)
  if count and (data_dir, image_size) not in _warned_small:
    _warned_small.add((data_dir, image_size))
    logging.warning("folder %r: %d of %d images are under %g px on their shorter side (smallest: %d px): they "
                    "are upscaled more than 2x to --image_size=%d", data_dir, count, report.usable,
                    image_size / 2, smallest, image_size)

