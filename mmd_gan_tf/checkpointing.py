"""Run-directory bookkeeping: the resolved config on disk and resume compatibility."""

import dataclasses
import errno
import glob
import fcntl
import itertools
import json
import math
import os
import re
import shutil
import socket
import time
from typing import Optional, Tuple

from absl import logging as absl_logging

from mmd_gan_tf import config as config_lib
from mmd_gan_tf import files

CONFIG_FILE = "config.json"

# Fields that change what a checkpoint means: a resumed run may not change them.
_MEANING_FIELDS = ("model", "loss.name", "loss.kernel", "data.image_size", "data.channels",
                   "data.image_range", "optim.optimizer")  # another optimizer would drop the moments silently


def remove_partial_saves(workdir: str) -> list:
  """Deletes what a killed save (or a full disk) left in <workdir>/checkpoints: `ckpt-N_temp*` folders and
  `checkpoint.tmp<hex>` files (the checkpoint state's atomic write, before its rename)."""
  directory = os.path.join(workdir, "checkpoints")
  removed = []
  if os.path.isdir(directory):
    for name in sorted(os.listdir(directory)):
      path = os.path.join(directory, name)
      if "_temp" in name and os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(name)
      elif name.startswith("checkpoint.tmp") and os.path.isfile(path):
        os.remove(path)
        removed.append(name)
  return removed


def _readable(prefix: str) -> Optional[str]:
  """None if every tensor of the checkpoint `prefix` reads back, else the error."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  special = [path for path in [prefix] + glob.glob(glob.escape(prefix) + ".*") if files.is_special(path)]
  if special:  # a FIFO named ckpt-N.index: reading it would wait forever
    return f"{special[0]} is not a regular file"
  try:
    reader = tf.train.load_checkpoint(prefix)
    for key in reader.get_variable_to_shape_map():
      reader.get_tensor(key)
  except Exception as error:  # pylint: disable=broad-except  (DataLossError, IndexError, OSError, ...)
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
  return None


def readable(prefix: str) -> bool:
  """Whether every tensor of the checkpoint `prefix` reads back."""
  return _readable(prefix) is None


_CHECKPOINT_INDEX = re.compile(r"^ckpt-(\d+)\.index$")


def checkpoints_on_disk(checkpoint_dir: str) -> list:
  """Prefixes of the `ckpt-N` checkpoints whose index file is in `checkpoint_dir`, oldest first."""
  if not os.path.isdir(checkpoint_dir):
    return []
  numbers = sorted(int(m.group(1)) for m in map(_CHECKPOINT_INDEX.match, os.listdir(checkpoint_dir)) if m)
  return [os.path.join(checkpoint_dir, f"ckpt-{n}") for n in numbers]


def _checkpoint_state(checkpoint_dir: str):
  """tf.train.get_checkpoint_state without TensorFlow's warning lines for a damaged state file (a ParseError and
  "Checkpoint ignored", twice each): None is returned for it, and the caller's own warning names the file."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  logger = tf.get_logger()
  level = logger.level
  logger.setLevel("ERROR")
  try:
    return tf.train.get_checkpoint_state(checkpoint_dir)
  finally:
    logger.setLevel(level)


def _state_paths(checkpoint_dir: str) -> list:
  """The checkpoints the state file (`checkpoint`) lists, oldest first; [] when it is missing, unreadable
  or names a checkpoint that is not there."""
  try:
    state = _checkpoint_state(checkpoint_dir)
  except ValueError:  # a state file without a latest checkpoint
    return []
  if state is None or not os.path.exists(state.model_checkpoint_path + ".index"):
    return []
  if _outside_paths(checkpoint_dir, state):  # a hand-edited or copied state file: not this run's checkpoints
    return []
  return list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]


def _outside_paths(checkpoint_dir: str, state) -> list:
  """The checkpoints a state file names outside `checkpoint_dir` (another run's, e.g. after a copy with
  absolute paths or a hand edit): resuming them would train on, and rotate away, that run's checkpoints."""
  here = os.path.realpath(checkpoint_dir)
  paths = [state.model_checkpoint_path, *state.all_model_checkpoint_paths]
  return [p for p in paths if os.path.dirname(os.path.realpath(p)) != here]


def refuse_outside_state(checkpoint_dir: str) -> None:
  """ValueError when the state file names checkpoints (outside `checkpoint_dir`, or its own that are gone) and
  none of this run's own are on disk to rebuild it from (`repair_checkpoint_state` rebuilds it where there
  are)."""
  try:
    state = _checkpoint_state(checkpoint_dir)
  except ValueError:
    return
  if state is None or not state.model_checkpoint_path or checkpoints_on_disk(checkpoint_dir):
    return
  outside = _outside_paths(checkpoint_dir, state)
  if not outside:  # it names this run's checkpoints, and none is on disk (deleted by hand?)
    raise ValueError(f"{os.path.join(checkpoint_dir, 'checkpoint')} names "
                     f"{os.path.basename(state.model_checkpoint_path)}, but no checkpoint of this run is on disk: "
                     "remove that file to start this run afresh, or put the checkpoints back")
  raise ValueError(f"{os.path.join(checkpoint_dir, 'checkpoint')} names checkpoints outside this run "
                   f"({outside[0]}): resuming would train on, and delete, another run's checkpoints. Remove "
                   "that file to start this run afresh, or start from that run with --init_from")


def checkpoint_list(checkpoint_dir: str) -> list:
  """The run's checkpoints, oldest first: as the state file lists them, or, when that file is missing or
  damaged, every `ckpt-N` on disk (read-only: for another run's directory, e.g. --init_from)."""
  return _state_paths(checkpoint_dir) or checkpoints_on_disk(checkpoint_dir)


def repair_checkpoint_state(checkpoint_dir: str) -> Optional[str]:
  """Rewrites the state file from the `ckpt-N` checkpoints on disk when it is missing, damaged or names no
  existing checkpoint (else TensorFlow sees no checkpoint, and a run would start again over them). Returns
  a warning line when it did."""
  on_disk = checkpoints_on_disk(checkpoint_dir)
  if not on_disk or _state_paths(checkpoint_dir):
    return None
  named = _named_latest(checkpoint_dir)
  _write_state(checkpoint_dir, on_disk)
  why = ("named checkpoints outside this run's folder" if named and os.path.exists(named + ".index") else
         f"names {os.path.basename(named)}, whose index file is missing" if named else "was missing or damaged")
  return (f"{os.path.join(checkpoint_dir, 'checkpoint')} {why}: rebuilt from the checkpoints on "
          f"disk ({', '.join(os.path.basename(p) for p in on_disk)})")


def _named_latest(checkpoint_dir: str) -> Optional[str]:
  """The checkpoint the state file names as the latest (whether or not it exists), or None."""
  try:
    state = _checkpoint_state(checkpoint_dir)
  except ValueError:
    return None
  return state.model_checkpoint_path if state and state.model_checkpoint_path else None


def _write_state(checkpoint_dir: str, paths: list) -> None:
  """Writes the state file listing `paths` (the last one the latest), without TensorFlow's deprecation lines."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  logger = tf.get_logger()
  level = logger.level
  logger.setLevel("ERROR")  # update_checkpoint_state is "deprecated" (six lines), though CheckpointManager uses it
  try:
    tf.compat.v1.train.update_checkpoint_state(checkpoint_dir, paths[-1], all_model_checkpoint_paths=paths)
  finally:
    logger.setLevel(level)


def set_aside(directory: str, prefix: str) -> str:
  """Moves the files of checkpoint `prefix` into <directory>/corrupt/ (kept for inspection, not deleted), or
  corrupt-2/, corrupt-3/, ... where a file or a link already has that name; returns that folder's name."""
  for index in itertools.count(1):
    name = "corrupt" if index == 1 else f"corrupt-{index}"
    folder = os.path.join(directory, name)
    if not os.path.lexists(folder) or (os.path.isdir(folder) and not os.path.islink(folder)):
      break
  os.makedirs(folder, exist_ok=True)
  for file_name in os.listdir(directory):
    if file_name.startswith(os.path.basename(prefix) + "."):
      os.replace(os.path.join(directory, file_name), os.path.join(folder, file_name))
  return name


def quarantine_unreadable(checkpoint_dir: str) -> list:
  """Moves unreadable newest checkpoints to <checkpoint_dir>/corrupt/ until the newest one reads back.

  Returns [(checkpoint prefix, error, the folder's name: corrupt or corrupt-N)] of the moved ones; the checkpoint state then names the newest
  readable checkpoint, so a resume (or an export) falls back to it. The bad files are kept, not deleted.

  Raises:
    ValueError: not one checkpoint reads back (nothing is moved: a rerun would otherwise start again from
      step 0 over a directory whose checkpoints were all set aside).
  """
  paths = _state_paths(checkpoint_dir)
  if not paths:
    return []
  errors = {}  # read newest first, and only until one reads back
  for path in reversed(paths):
    errors[path] = _readable(path)
    if errors[path] is None:
      break
  else:
    raise ValueError(f"no checkpoint in {checkpoint_dir} reads back (newest: {os.path.basename(paths[-1])}: "
                     f"{errors[paths[-1]]}); to train this run again from step 0, move that folder away, or "
                     "use another --workdir")
  moved = []
  while paths:
    error = errors[paths[-1]]
    if error is None:
      break
    bad = paths.pop()
    moved.append((bad, error, set_aside(checkpoint_dir, bad)))
  if moved:
    if paths:
      _write_state(checkpoint_dir, paths)
    else:
      os.remove(os.path.join(checkpoint_dir, "checkpoint"))
  return moved


def resolve_init_from(path: str) -> Tuple[str, list]:
  """The checkpoint prefix `--init_from=path` names: a run directory's newest readable checkpoint, or a
  prefix itself; and [(skipped prefix, error)] of newer ones that do not read back (a truncated save).

  Nothing in the source run is moved or written (it is another run's, perhaps still training).

  Raises:
    ValueError: naming `path`, when it is neither, or no checkpoint of it reads back.
  """
  if os.path.isdir(path):
    for directory in (os.path.join(path, "checkpoints"), path):
      candidates = checkpoint_list(directory)
      if not candidates:
        continue
      skipped = []
      for prefix in reversed(candidates):
        error = _readable(prefix)
        if error is None:
          return prefix, skipped
        skipped.append((prefix, error))
      raise ValueError(f"--init_from={path}: none of its checkpoints reads back (newest: {skipped[0][0]}: "
                       f"{skipped[0][1]})")
    raise ValueError(f"--init_from={path} is a directory without a checkpoint (expected a run directory or "
                     "a checkpoint prefix such as RUN/checkpoints/ckpt-500)")
  if os.path.exists(path + ".index"):
    error = _readable(path)
    if error is not None:
      raise ValueError(f"--init_from={path} does not read back ({error})")
    return path, []
  raise ValueError(f"--init_from={path} is neither a run directory nor a checkpoint prefix (no {path}.index)")


# Room the run's own files need below the workdir (checkpoints/ckpt-N_temp/part-...data-00000-of-00001).
_LONGEST_RUN_PATH = 96


def _check_path_length(workdir: str) -> None:
  """A workdir whose files would exceed the file system's path limits fails at the start, not at the first
  checkpoint (after training)."""
  path = os.path.abspath(workdir)
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  try:
    path_max, name_max = os.pathconf(existing, "PC_PATH_MAX"), os.pathconf(existing, "PC_NAME_MAX")
  except (OSError, ValueError):
    return
  longest = max((len(part.encode()) for part in path.split(os.sep)), default=0)
  if len(path.encode()) + _LONGEST_RUN_PATH >= path_max or longest > name_max:
    raise ValueError(f"--workdir is too long for this file system ({len(path.encode())} bytes, a name of "
                     f"{longest}; limits {path_max} and {name_max}): the run's checkpoint files could not be "
                     "written; give a shorter path")


def prepare_workdir(workdir: str) -> None:
  """Creates `workdir` or fails with one clear message (a file in the way, a dangling link, a path too long,
  no permission)."""
  if os.path.islink(workdir) and not os.path.exists(workdir):
    raise ValueError(f"--workdir={workdir} is a symbolic link to nothing ({os.path.realpath(workdir)} does not "
                     "exist)")
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ValueError(f"--workdir={workdir} exists and is not a directory")
  _check_path_length(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise ValueError(f"--workdir={workdir} cannot be created: {e.strerror}") from e
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise ValueError(f"--workdir={workdir} is not writable")
  refuse_foreign_files(workdir)
  for name, folder in _RUN_ENTRIES.items():
    path = os.path.join(workdir, name)
    if os.path.lexists(path) and os.path.isdir(path) != folder:
      raise ValueError(f"{path} is {'not ' if folder else ''}a folder, where the run writes its {name} "
                       f"{'folder' if folder else 'file'}; move it away")


# What a run writes in its workdir: name -> whether it is a folder.
RUN_ENTRIES = _RUN_ENTRIES = {"checkpoints": True, "samples": True, "tensorboard": True, "best_kid": True,
                "lr_adaptation": True, "config.json": False, "progress.json": False, "eval.jsonl": False,
                ".lock": False}


LOCK_FILE = ".lock"


_HOLDER_LINE = re.compile(r"PID \d+ on .* since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n?$")  # what a lock holds


class WorkdirLock:
  """An exclusive lock on a run directory, held while one run trains in it.

  `flock` on `<workdir>/.lock`: the kernel releases it when the holder exits or dies, so a lock left by a
  killed run is simply taken over. The file names the holder, for the error the next run prints.
  """

  def __init__(self, workdir: str, advice: str = "wait for that run to end, or use another --workdir"):
    path = self._path = os.path.join(workdir, LOCK_FILE)
    if os.path.islink(path):  # writing the holder's name would overwrite whatever the link points to
      raise ValueError(f"--workdir={workdir}: its {LOCK_FILE} is a symbolic link (to {os.readlink(path)}); a "
                       f"run's lock is a plain file: remove the link")
    if os.path.exists(path) and not os.path.isfile(path):
      raise ValueError(f"--workdir={workdir}: its {LOCK_FILE} is not a regular file; a run's lock is a plain file: "
                       "move it away")
    files.unshare(path)  # a run copied with `cp -al` shares the original's lock file: lock a file of its own
    self._created = not os.path.lexists(path)
    try:  # O_NOFOLLOW: a link put there after the check is refused too
      descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_APPEND, 0o644)
    except OSError as e:
      if e.errno != errno.ELOOP:
        raise
      raise ValueError(f"--workdir={workdir}: its {LOCK_FILE} is a symbolic link; a run's lock is a plain "
                       "file: remove the link") from None
    self._file = os.fdopen(descriptor, "a+", encoding="utf-8")
    try:
      fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      self._file.seek(0)
      holder = self._file.read().strip() or "another process"
      self._file.close()
      raise ValueError(f"--workdir={workdir} is in use by {holder}; {advice}") from None
    self._file.seek(0)
    content = self._file.read(4096)
    if content.strip() and not _HOLDER_LINE.match(content):  # a file of the user's that happens to be named so
      self.release()
      raise ValueError(f"--workdir={workdir}: its {LOCK_FILE} is not a run's lock (it holds "
                       f"{content.strip().splitlines()[0][:60]!r}...); a run would overwrite it: move it away or "
                       "use another --workdir")
    self._previous = content  # what a refused run puts back (`release(restore=True)`), with its times
    stat = os.fstat(descriptor)
    self._previous_times = (stat.st_atime_ns, stat.st_mtime_ns)
    self.writing = False  # set by the run at its first write: from then on the lock names this process
    self._file.seek(0)
    self._file.truncate()
    self._file.write(f"PID {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    self._file.flush()

  def held(self) -> bool:
    """Whether `<workdir>/.lock` is still this lock's file: False once the workdir was deleted, moved or
    replaced while the run trained (a run must not recreate, or write into, a directory it no longer owns)."""
    try:
      return os.stat(self._path).st_ino == os.fstat(self._file.fileno()).st_ino
    except (OSError, ValueError):
      return False

  def release(self, restore: bool = False) -> None:
    """Unlocks; with `restore` (a run refused before its first write) the lock file gets back what it held,
    so that a refused run leaves the folder byte for byte as it was."""
    if not self._file.closed:
      if restore and self.held() and self._created:
        os.remove(self._path)  # still locked: no other run took it meanwhile
      elif restore and self.held():
        self._file.seek(0)
        self._file.truncate()
        self._file.write(self._previous)
        self._file.flush()
        os.utime(self._file.fileno(), ns=self._previous_times)
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()


def remove_unused_workdir(workdir: str) -> bool:
  """Removes `workdir` if it holds nothing but this run's lock file (a run refused before its first write,
  in a directory it created). Returns whether it did."""
  try:
    if set(os.listdir(workdir)) - {LOCK_FILE}:
      return False
    lock = os.path.join(workdir, LOCK_FILE)
    if os.path.exists(lock):
      os.remove(lock)
    os.rmdir(workdir)
  except OSError:
    return False
  return True


def _lookup(values: dict, dotted: str):
  for key in dotted.split("."):
    values = values.get(key) if isinstance(values, dict) else None
  return values


def incompatibilities(saved: dict, cfg: config_lib.Config) -> list:
  """Human-readable differences between a saved config and `cfg` that forbid resuming."""
  new = json.loads(cfg.to_json())
  defaults = json.loads(config_lib.Config().to_json())
  problems = []
  for dotted in _MEANING_FIELDS:
    old_value, new_value = _lookup(saved, dotted), _lookup(new, dotted)
    if isinstance(old_value, dict):
      # A field added after the checkpoint was written had its default value then.
      default = _lookup(defaults, dotted) or {}
      old_value = {k: old_value.get(k, default.get(k)) for k in new_value}
      problems += [f"{dotted}.{k}: checkpoint has {old_value.get(k)!r}, this run asks for {v!r}"
                   for k, v in new_value.items() if old_value.get(k) != v]
    elif old_value != new_value:
      problems.append(f"{dotted}: checkpoint has {old_value!r}, this run asks for {new_value!r}")
  return problems


# Where the checkpoint keeps its own copy of the resolved config (the `run_config` string variable), so
# that a run's identity survives a missing or edited config.json.
_CONFIG_KEY = "run_config/.ATTRIBUTES/VARIABLE_VALUE"


def config_in_checkpoint(prefix: str) -> Optional[dict]:
  """The resolved config stored inside checkpoint `prefix`, or None (a checkpoint written before it was kept)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  reader = tf.train.load_checkpoint(prefix)
  if not reader.has_tensor(_CONFIG_KEY):
    return None
  value = reader.get_tensor(_CONFIG_KEY)
  return json.loads(value.decode() if isinstance(value, bytes) else value)


def saved_config(workdir: str, checkpoint_prefix: Optional[str]) -> Optional[dict]:
  """The config a run directory was trained with: the checkpoint's own copy first, then config.json."""
  if checkpoint_prefix:
    stored = config_in_checkpoint(checkpoint_prefix)
    if stored is not None:
      return stored
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      saved = json.load(f)
  except ValueError as e:
    raise ValueError(f"{path} is not valid JSON ({e}); restore it or use a new --workdir") from None
  if not is_run_config(saved):
    raise ValueError(f"{path} is not a run's config (no {', '.join(_RUN_CONFIG_SECTIONS)} sections): this folder "
                     "is not a run of this project; use another --workdir")
  return saved


_RUN_CONFIG_SECTIONS = ("data", "model", "loss", "train")


def is_run_config(saved) -> bool:
  """Whether `saved` (parsed JSON) is a run's config as `save_config` writes it (not a user's own file)."""
  return isinstance(saved, dict) and all(isinstance(saved.get(k), dict) for k in _RUN_CONFIG_SECTIONS)


def _recorded_step(workdir: str) -> int:
  """The step progress.json records (0 when it is missing or unreadable)."""
  try:
    with open(os.path.join(workdir, PROGRESS_FILE), encoding="utf-8") as f:
      step = json.load(f).get("step")
  except (OSError, ValueError, AttributeError):
    return 0
  return step if isinstance(step, int) and step > 0 else 0


def refuse_foreign_files(workdir: str) -> None:
  """A folder without checkpoints whose config.json is not a run's config, or that holds progress.json,
  eval.jsonl or files in a run's folders (samples/, tensorboard/, ...) without a config.json, is someone's
  folder, not a run: a run would overwrite or rewrite those files (a run writes config.json before anything
  else)."""
  if checkpoints_on_disk(os.path.join(workdir, "checkpoints")):
    return
  inner = _run_inside(workdir)
  if inner:  # that run could never resume: it would be inside this one
    raise ValueError(f"--workdir={workdir} holds the run {inner}: a run's folder is its own; give a new folder "
                     f"(e.g. {os.path.join(workdir, 'new_run')})")
  config_path = os.path.join(workdir, CONFIG_FILE)
  if os.path.isfile(config_path):
    try:
      with open(config_path) as f:
        own = is_run_config(json.load(f))
    except (ValueError, OSError, UnicodeDecodeError):
      own = False
    if own:
      trained = _recorded_step(workdir)
      if trained:  # a restart from step 0 would append a second history to eval.jsonl and best_kid/
        raise ValueError(f"--workdir={workdir} has no checkpoint, but its {PROGRESS_FILE} says it trained to "
                         f"step {trained}: its checkpoints were deleted or moved; put them back to resume, or use "
                         "a new --workdir")
      return
    raise ValueError(f"--workdir={workdir} holds a {CONFIG_FILE} that is not a run's config and no checkpoint: "
                     "not a run of this project, and a run would overwrite that file; use another --workdir")
  present = [name for name in ("progress.json", "eval.jsonl") if os.path.isfile(os.path.join(workdir, name))]
  present += [name + "/" for name in ("checkpoints", "samples", "tensorboard", "lr_adaptation")
              if os.path.isdir(os.path.join(workdir, name))  # (a lone state file is checked by the resume)
              and set(os.listdir(os.path.join(workdir, name))) - {"checkpoint"}]
  best = os.path.join(workdir, "best_kid")  # the evaluation writes its state file there, whatever is in it
  if os.path.isdir(best) and os.listdir(best):
    present.append("best_kid/")
  if present:
    raise ValueError(f"--workdir={workdir} holds {' and '.join(present)} but no {CONFIG_FILE} and no checkpoint: "
                     "not a run of this project, and a run would overwrite them; use another --workdir")


def refuse_incompatible(saved: dict, cfg: config_lib.Config, workdir: str) -> None:
  """ValueError naming every difference between `saved` (a run's config) and `cfg` that would change what the
  run's checkpoints mean; `main.py --dry_run` calls it too, so a dry run refuses what the run would."""
  problems = incompatibilities(saved, cfg)
  if problems:
    raise ValueError(f"--workdir={workdir} holds a checkpoint of a different run; resuming it with this "
                     "config would change what the checkpoint means. Use a new --workdir or the old "
                     "settings. Differences: " + "; ".join(problems))


def check_resume(cfg: config_lib.Config, workdir: str, checkpoint_prefix: Optional[str]) -> Optional[str]:
  """Refuses to resume `checkpoint_prefix` with a config of another meaning. Writes nothing.

  Returns:
    None, or a warning when the checkpoint's identity cannot be checked (an old checkpoint without its
    config and no config.json).
  """
  if not checkpoint_prefix:
    return None
  saved = saved_config(workdir, checkpoint_prefix)
  if saved is None:
    return (f"{checkpoint_prefix} carries no config and --workdir={workdir} has no {CONFIG_FILE}: "
            "cannot check that this run's settings match the checkpoint")
  refuse_incompatible(saved, cfg, workdir)
  return None


# Not settings of the training: where the run is and writes, and the names it was asked by.
_PATHS = ("workdir", "export_dir", "train.init_from", "preset")
# Settings whose change on resume is expected and logged elsewhere (the learning rates when applied).
_UNLOGGED = _PATHS + ("train.steps", "optim.critic_lr", "optim.generator_lr")


def changed_settings(saved: dict, new: config_lib.Config, unlisted: tuple = _UNLOGGED) -> list:
  """["section.field: old -> new", ...] for the settings a resume changes, but those `unlisted` (by default:
  paths, the step budget and the learning rates, which are logged when applied)."""
  def flat(values, prefix=""):
    for key, value in values.items():
      if isinstance(value, dict):
        yield from flat(value, f"{prefix}{key}.")
      else:
        yield f"{prefix}{key}", (list(value) if isinstance(value, tuple) else value)
  old = dict(flat(saved))
  return [f"{key}: {old[key]!r} -> {value!r}" for key, value in flat(new.to_dict())
          if key in old and old[key] != value and key not in unlisted]


def settled_config(saved: dict, cfg: config_lib.Config, idle: bool) -> Tuple[config_lib.Config, Optional[str]]:
  """(the config a resumed run goes on with, a warning line or None); `saved` is its checkpoint's config.

  A run that trains takes the settings it is given as its own (the warning lists the changes). A run with
  nothing to train (at the --steps or --max_train_minutes given) keeps its recorded settings, only this
  command's paths apply: the settings given would be recorded as the run's own but apply to no step, and the
  next resume would restore the checkpoint's anyway (the warning lists what was not applied).
  """
  if not idle:
    changed = changed_settings(saved, cfg)
    return cfg, ("resuming with changed settings (this run's own from here on): " + "; ".join(changed)
                 if changed else None)
  kept = dataclasses.replace(config_lib.config_from_dict(saved), workdir=cfg.workdir, export_dir=cfg.export_dir)
  # The budget (--steps, --max_train_minutes) was applied: it is what says there is nothing to train.
  ignored = changed_settings(saved, cfg, unlisted=_PATHS + ("train.steps", "train.max_train_minutes"))
  return kept, ("nothing to train: the run keeps the settings it was trained with; not applied: " +
                "; ".join(ignored) if ignored else None)


def save_config(cfg: config_lib.Config, workdir: str) -> None:
  """Writes config.json; called only once the checkpoint (if any) was restored into this config."""
  files.atomic_write_text(os.path.join(workdir, CONFIG_FILE), cfg.to_json() + "\n")


PROGRESS_FILE = "progress.json"


def write_train_seconds(workdir: str, step: int, train_seconds: float) -> None:
  """Records the training time (evaluation excluded) up to the checkpoint of `step`."""
  files.atomic_write_text(os.path.join(workdir, PROGRESS_FILE),
                    json.dumps({"step": step, "train_seconds": round(train_seconds, 3)}) + "\n")


def read_train_seconds(workdir: str, step: int, resumed: bool = True) -> float:
  """Training seconds recorded with the checkpoint of `step`; 0 for a fresh run or an unknown record (a run
  `resumed` from its own checkpoint whose record is missing, damaged or of another step says so:
  --max_train_minutes counts from 0). A run started with --init_from has no record of its own yet."""
  if not step:
    return 0.0
  path = os.path.join(workdir, PROGRESS_FILE)
  if not resumed and not os.path.exists(path):
    return 0.0
  try:
    with open(path, encoding="utf-8") as f:
      record = json.load(f)
    seconds = float(record["train_seconds"]) if record.get("step") == step else None
    if seconds is not None and math.isfinite(seconds) and seconds >= 0:
      return seconds
    problem = (f"it is of step {record.get('step')}" if seconds is None else
               f"its train_seconds is {record['train_seconds']!r}, not a time")
  except FileNotFoundError:
    problem = "it is missing"
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
    problem = f"{type(error).__name__}: {error}"
  absl_logging.warning("%s has no training time for step %d (%s): the training time counts from 0 again "
                       "(--max_train_minutes, eval/ time axes)", path, step, problem)
  return 0.0


def load_config(workdir: str) -> config_lib.Config:
  """The config a run directory was trained with: the copy in its newest checkpoint that reads back, else
  config.json. The checkpoints are found as `checkpoint_list` finds them (a missing or emptied state file does
  not hide them), and one cut short or emptied is passed over (the run moves it aside when it starts)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  saved = None
  for prefix in reversed(checkpoint_list(os.path.join(workdir, "checkpoints"))):
    try:
      saved = config_in_checkpoint(prefix)
    except (tf.errors.OpError, ValueError, IndexError, OSError):  # IndexError: a data file emptied or nearly
      continue
    break
  saved = saved or saved_config(workdir, None)
  if saved is None:
    raise ValueError(f"--workdir={workdir} has no {CONFIG_FILE} and no checkpoint carrying its config: "
                     "not a training run directory")
  return config_lib.config_from_dict(saved)


def at_workdir(saved: config_lib.Config, workdir: str) -> config_lib.Config:
  """A run's own config where the run is now: `workdir` replaces the recorded one (a run may have been moved or
  copied), and an export path that was inside the recorded workdir moves with it (it must not point into the
  folder the run came from)."""
  export_dir = saved.export_dir
  old = os.path.abspath(saved.workdir)
  if export_dir and os.path.abspath(workdir) != old:
    path = os.path.abspath(export_dir)
    if path == old or path.startswith(old.rstrip(os.sep) + os.sep):
      export_dir = os.path.normpath(os.path.join(workdir, os.path.relpath(path, old)))
  return dataclasses.replace(saved, workdir=workdir, export_dir=export_dir)


def refuse_inside_runs(flag: str, path: str, shown: Optional[str] = None) -> None:
  """ValueError naming `flag` when a tool would write `path` inside a run's own folders (`export/`,
  `checkpoints/`, `samples/`, ...) or inside an export of this project: that run's resume or export would then
  find a folder with other contents and be refused."""
  from mmd_gan_tf import export  # pylint: disable=import-outside-toplevel  (export imports this module)
  shown = shown or path  # the flag's value, where `path` is something the tool writes below it
  real = os.path.realpath(path)
  folder = os.path.dirname(real)
  while folder != os.path.dirname(folder):
    if os.path.isdir(folder) and os.listdir(folder) and export.is_export(folder):
      raise ValueError(f"{flag}={shown} is inside the exported generator {folder}: an export holds only what the "
                       "export wrote; write it elsewhere")
    folder = os.path.dirname(folder)
  run = enclosing_run(real)
  if run:
    entry = os.path.relpath(real, run).split(os.sep)[0]
    if entry in RUN_ENTRIES or entry == "export":
      shown_entry = entry + ("/" if RUN_ENTRIES.get(entry, True) else "")
      raise ValueError(f"{flag}={shown} is inside the run {run} (its {shown_entry}): that run owns what is "
                       "there; write it elsewhere")


def _run_inside(folder: str) -> Optional[str]:
  """A training run (config.json beside checkpoints/) directly inside `folder`, or None."""
  try:
    names = sorted(os.listdir(folder))
  except OSError:
    return None
  for name in names:
    child = os.path.join(folder, name)
    if os.path.isfile(os.path.join(child, CONFIG_FILE)) and os.path.isdir(os.path.join(child, "checkpoints")):
      return child
  return None


def enclosing_run(path: str) -> Optional[str]:
  """The nearest folder above `path` that is a training run (config.json beside checkpoints/), or None."""
  folder = os.path.dirname(os.path.realpath(path))
  while folder != os.path.dirname(folder):
    if os.path.isfile(os.path.join(folder, CONFIG_FILE)) and os.path.isdir(os.path.join(folder, "checkpoints")):
      return folder
    folder = os.path.dirname(folder)
  return None

