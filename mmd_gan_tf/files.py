"""Writing result files safely: atomically (a crash leaves the old file or the new one) and readable by
colleagues (mode 0666 minus the umask, where `tempfile` would leave 0600)."""

import json
import os
import shutil
import stat
import tempfile


def atomic_write_text(path: str, text: str) -> None:
  """Writes `text` to `path` (UTF-8) via a temporary file and a rename, so a crash leaves old or new."""
  atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` via a temporary file and a rename, so a crash leaves old or new."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp_")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are for colleagues too
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def is_special(path) -> bool:
  """Whether `path` (links followed) is a FIFO, socket or device: opening one to read can wait forever."""
  try:
    mode = os.stat(path).st_mode
  except OSError:
    return False
  return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def unshare(path: str) -> None:
  """Gives `path` an inode of its own when other names share it (a run copied with `cp -al`), so that a file
  appended in place changes only this name's copy."""
  try:
    if os.stat(path).st_nlink <= 1:
      return
  except FileNotFoundError:
    return
  with open(path, "rb") as f:
    content = f.read()
  temporary = f"{path}.unshare.tmp"
  with open(temporary, "wb") as f:
    f.write(content)
  shutil.copymode(path, temporary)
  os.replace(temporary, path)


def read_json(path: str):
  """The JSON value in `path`, or None when it is missing, unreadable or not JSON (a tool then refuses to
  replace a file it cannot tell for one of its own results)."""
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError):
    return None
