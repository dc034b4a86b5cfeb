"""SavedModel export of the generator.

The SavedModel has two endpoints, both returning {"images": float32 in the training range,
"images_uint8": uint8 in [0, 255]} of shape [n, S, S, C]:
  generate(z: float32 [n, z_dim])
  sample(num_samples: int32 [], seed: int64 [])   (z drawn as in training, seeded)
It loads with `tf.saved_model.load` in a process that never imported this project, and with
`saved_model_cli run`. `mmd_gan_tf.json` beside it records the config it was trained with.

An export removes nothing it did not write: the export path must be new, an empty folder or an earlier
export of this project (`check_export_dir`; a run's workdir, a folder holding it, a file or any other folder
is refused in one line). The write goes to `<export>.tmp`, then the old export is renamed to `<export>.old`,
the new one into place and the old one removed; a process killed between those steps leaves folders that the
next export recognises and settles first (`recover_interrupted_export`).
"""

import json
import os
import shutil
from typing import Optional

import keras
import tensorflow as tf

from mmd_gan_tf import checkpointing
from mmd_gan_tf import config as config_lib
from mmd_gan_tf import files
from mmd_gan_tf import images as images_lib
from mmd_gan_tf import models
from mmd_gan_tf.models import common as model_common
from mmd_gan_tf import noise

METADATA_FILE = "mmd_gan_tf.json"
STEP_KEY = "exported_step"  # in METADATA_FILE beside the config: the training step of the exported generator
# What a SavedModel folder written by `export_generator` holds; a folder with anything else is not ours.
KERAS_FILE = "generator.keras"  # the same generator as a Keras file: keras.saving.load_model(path)
_EXPORT_ENTRIES = frozenset({"saved_model.pb", "variables", "assets", "fingerprint.pb", METADATA_FILE, KERAS_FILE})


def is_export(path: str, finished: bool = True) -> bool:
  """Whether `path` is a folder that only an export of this project could have written (or an empty one).

  A finished export (the export path itself, `<export>.old`) carries this project's metadata file; another
  SavedModel, or a folder that merely has export-like names (`assets/`, `variables/`), does not. An unfinished
  `<export>.tmp` (`finished=False`) may lack it: a kill can come before it is written.
  """
  if not os.path.isdir(path) or os.path.islink(path):
    return False
  names = set(os.listdir(path))
  if not names <= _EXPORT_ENTRIES:
    return False
  return not finished or not names or _has_our_metadata(path)


def _damaged_metadata(path: str) -> bool:
  """A folder of export entries only, whose metadata file is there but does not read as ours."""
  if not os.path.isdir(path) or os.path.islink(path) or not set(os.listdir(path)) <= _EXPORT_ENTRIES:
    return False
  return os.path.isfile(os.path.join(path, METADATA_FILE)) and not _has_our_metadata(path)


def _has_our_metadata(path: str) -> bool:
  try:
    with open(os.path.join(path, METADATA_FILE), encoding="utf-8") as f:
      metadata = json.load(f)
  except (OSError, ValueError):
    return False
  return isinstance(metadata, dict) and ("model" in metadata or STEP_KEY in metadata)


def export_folder_name(export_dir: str, workdir: str) -> str:
  """How an error names the export folder: `--export_dir=X`, or `the export folder <workdir>/export` for the
  default (which the user may not have given)."""
  if os.path.abspath(export_dir) == os.path.join(os.path.abspath(workdir), "export"):
    return f"the export folder {os.path.abspath(export_dir)}"
  return f"--export_dir={export_dir}"


def check_export_dir(export_dir: str, workdir: str) -> None:
  """ValueError (one line, naming --export_dir) unless writing an export to `export_dir` can only replace an
  earlier export: it must not be the run's workdir or hold it, nor an existing file or a folder with other
  contents; a leftover `<export>.tmp` / `<export>.old` must be an export too."""
  export_dir, workdir = os.path.abspath(export_dir), os.path.abspath(workdir)
  name = export_folder_name(export_dir, workdir)
  if export_dir == workdir or workdir.startswith(export_dir.rstrip(os.sep) + os.sep):
    raise ValueError(f"{name} is the run's workdir or holds it ({workdir}); an export "
                     "replaces its folder: give a path of its own, e.g. the default <workdir>/export")
  inside = os.path.relpath(export_dir, workdir).split(os.sep)[0]
  real_inside = os.path.relpath(os.path.realpath(export_dir), os.path.realpath(workdir)).split(os.sep)[0]
  if real_inside in checkpointing.RUN_ENTRIES:  # also through a linked parent folder
    inside = real_inside
  if inside in checkpointing.RUN_ENTRIES:
    raise ValueError(f"{name} is inside the run's own {inside} (which the run writes and "
                     "rotates); give a path of its own, e.g. the default <workdir>/export")
  if inside == os.pardir:  # inside the workdir, the workdir's own checks name what is wrong with it
    _check_export_path_usable(export_dir)
  for path in (export_dir, export_dir + ".tmp", export_dir + ".old"):
    if os.path.lexists(path) and not is_export(path, finished=not path.endswith(".tmp")):
      if _damaged_metadata(path):
        raise ValueError(f"{name}: {path} looks like an export but its {METADATA_FILE} is "
                         "damaged (emptied or cut short), so it cannot be told from someone else's folder: if it "
                         "is this run's export, delete that folder and export again; else give a new path")
      if os.path.isdir(path) and not os.path.islink(path) and os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ValueError(f"{name}: {path} holds a SavedModel without the {METADATA_FILE} of this project's "
                         "exports, so it cannot be told from someone else's model: if it is this run's export "
                         "(its metadata deleted), delete that folder and export again; else give a new path")
      kind = ("a symbolic link" if os.path.islink(path) else
              "a folder with other contents" if os.path.isdir(path) else "a file")
      raise ValueError(f"{name}: {path} exists and is {kind}, not an earlier export; an "
                       "export would replace it: give a new path or move it away")
  if os.path.ismount(export_dir):
    raise ValueError(f"{name} is a mount point, which an export cannot replace (it writes "
                     "beside the folder and renames): give a folder inside it")
  other = _run_of(export_dir)
  if other and export_dir != os.path.join(workdir, "export") and os.path.realpath(other) != os.path.realpath(
      workdir):
    gone = "" if os.path.exists(other) else (
        ", a folder that no longer exists: if this run was moved from there, move that export away first")
    raise ValueError(f"{name} holds the export of another run ({other}{gone}); give this run "
                     "an export folder of its own")
  existing = export_dir
  while not os.path.lexists(existing):  # the folder the export will be created in
    existing = os.path.dirname(existing)
  if os.path.isdir(existing) and not os.access(existing, os.W_OK | os.X_OK):  # (a file: named elsewhere)
    raise ValueError(f"{name}: {existing} is not writable, so the run could not export at "
                     "its end: give a writable path")


def _check_export_path_usable(export_dir: str) -> None:
  """What would fail only when the export is written, after training: a name too long for the file system (with
  the `.tmp` the export writes first), a file or a symbolic-link loop among the folders above, a folder that
  does not take new entries (/proc, /sys)."""
  folder = os.path.dirname(export_dir)
  while not os.path.lexists(folder):
    folder = os.path.dirname(folder)
  try:
    os.stat(folder)
  except OSError as error:
    raise ValueError(f"--export_dir={export_dir}: {folder} cannot be read ({error.strerror})") from None
  if not os.path.isdir(folder):
    raise ValueError(f"--export_dir={export_dir}: {folder} is a file, not a folder")
  limit = os.pathconf(folder, "PC_NAME_MAX")
  for name in os.path.relpath(export_dir + ".tmp", folder).split(os.sep):
    if len(os.fsencode(name)) > limit:
      raise ValueError(f"--export_dir={export_dir}: the name {name[:40]}... is longer than the {limit} bytes "
                       "this file system allows")
  if folder.split(os.sep)[1:2] in (["proc"], ["sys"]):
    raise ValueError(f"--export_dir={export_dir} is under /{folder.split(os.sep)[1]}, which holds no files")


def _run_of(export_dir: str) -> Optional[str]:
  """The workdir of the run an existing export came from (its metadata), or None."""
  try:
    with open(os.path.join(export_dir, METADATA_FILE), encoding="utf-8") as f:
      workdir = json.load(f).get("workdir")
  except (OSError, ValueError, AttributeError):
    return None
  return workdir if isinstance(workdir, str) else None


def recover_interrupted_export(export_dir: str) -> None:
  """Settles what an export killed midway left: the previous export back in place when only `.old` is
  there, a stale `.old` (the new export is in place) and an unfinished `.tmp` removed. Only folders that
  `is_export` recognises are touched."""
  tmp_dir, old_dir = export_dir + ".tmp", export_dir + ".old"
  if is_export(old_dir):
    if os.path.lexists(export_dir):
      _remove_export(old_dir)
    else:
      os.replace(old_dir, export_dir)
  if is_export(tmp_dir, finished=False):
    shutil.rmtree(tmp_dir)


def _remove_export(path: str) -> None:
  """Deletes a finished export with its metadata file last, so that a kill midway leaves a folder that
  `is_export` still recognises (and the next export settles), never one that looks like someone else's."""
  for name in os.listdir(path):
    if name != METADATA_FILE:
      entry = os.path.join(path, name)
      if os.path.isdir(entry) and not os.path.islink(entry):
        shutil.rmtree(entry)
      else:
        os.remove(entry)
  if os.path.lexists(os.path.join(path, METADATA_FILE)):
    os.remove(os.path.join(path, METADATA_FILE))
  os.rmdir(path)


def _plain_copy(generator: keras.Model, model_cfg: config_lib.ModelConfig) -> keras.Model:
  """A copy of `generator` with plain (not distributed) variables and Keras' own layers, for a portable
  SavedModel and Keras file."""
  if tf.distribute.has_strategy():
    raise RuntimeError("export_generator must be called outside strategy.scope()")
  with model_common.keras_batch_norm():  # generator.keras loads in plain Keras
    copy = models.build_generator(model_cfg)
  copy.set_weights(generator.get_weights())
  return copy


def exported_step(export_dir: str) -> Optional[int]:
  """The training step of the generator in an export (from its metadata); None when unknown."""
  try:
    with open(os.path.join(export_dir, METADATA_FILE), encoding="utf-8") as f:
      step = json.load(f).get(STEP_KEY)
  except (OSError, ValueError, AttributeError):
    return None
  return step if isinstance(step, int) else None


def export_generator(generator: keras.Model, cfg: config_lib.Config, export_dir: str,
                     step: Optional[int] = None) -> str:
  """Writes the SavedModel (endpoints `generate(z)`, `sample(num_samples, seed)`), its config (and `step`, the
  training step of `generator`) and the same generator as `generator.keras` to `export_dir` atomically (a
  crash, or an error while writing, leaves the old export intact and no unfinished copy)."""
  model = _plain_copy(generator, cfg.model)
  image_range = cfg.data.image_range
  empty_shape = [0, cfg.model.image_size, cfg.model.image_size, cfg.model.channels]

  def outputs(z):
    # An empty batch gets its own branch: TF's conv kernels return [0, S, S, C_in] for n = 0 (and grappler
    # drops a reshape that is a no-op by static shape).
    images = tf.cond(tf.shape(z)[0] > 0, lambda: tf.cast(model(z, training=False), tf.float32),
                     lambda: tf.zeros(empty_shape, tf.float32))
    return {"images": images, "images_uint8": images_lib.to_uint8(images, image_range)}

  def sample(num_samples, seed):
    check = tf.debugging.assert_non_negative(num_samples, message="sample: num_samples must be >= 0")
    with tf.control_dependencies([check]):  # before the random op that would fail with a vaguer message
      num_samples = tf.identity(num_samples)
    return outputs(noise.sample_z(cfg.model, num_samples, seed))

  archive = keras.export.ExportArchive()
  archive.track(model)
  archive.add_endpoint("generate", outputs,
                       input_signature=[tf.TensorSpec([None, cfg.model.z_dim], tf.float32, name="z")])
  archive.add_endpoint("sample", sample,
                       input_signature=[tf.TensorSpec([], tf.int32, name="num_samples"),
                                        tf.TensorSpec([], tf.int64, name="seed")])
  export_dir = os.path.abspath(export_dir)
  check_export_dir(export_dir, cfg.workdir)
  recover_interrupted_export(export_dir)
  newer = exported_step(export_dir)
  if step is not None and newer is not None and newer > step:
    raise ValueError(f"{export_dir} holds the generator of step {newer}, newer than this one (step {step}): it "
                     "is kept; give another --export_dir")
  tmp_dir, old_dir = export_dir + ".tmp", export_dir + ".old"
  metadata = dict(cfg.to_dict(), **({STEP_KEY: int(step)} if step is not None else {}))
  # The run it came from, as an absolute path: a relative --workdir names different runs from different
  # folders (another run of that name must not take this export over; this one resumed elsewhere must).
  metadata["workdir"] = os.path.abspath(cfg.workdir)
  try:
    archive.write_out(tmp_dir, verbose=False)
    files.atomic_write_text(os.path.join(tmp_dir, METADATA_FILE),
                            json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    model.save(os.path.join(tmp_dir, KERAS_FILE))
  except BaseException:  # a full disk, a signal: no unfinished copy left behind
    if is_export(tmp_dir, finished=False):
      shutil.rmtree(tmp_dir, ignore_errors=True)
    raise
  if os.path.exists(export_dir):
    os.replace(export_dir, old_dir)
  os.replace(tmp_dir, export_dir)
  if os.path.lexists(old_dir):
    _remove_export(old_dir)
  return export_dir
