"""An export removes nothing it did not write, and settles what a killed export left."""

import functools
import json
import os

import pytest

from helpers import main_in_process
from flags import build as config_builder
from mmd_gan_tf import export
from mmd_gan_tf import trainer


def _fake_export(path, marker="old"):
  os.makedirs(os.path.join(path, "variables"))
  for name in ("saved_model.pb", "fingerprint.pb"):
    with open(os.path.join(path, name), "w", encoding="utf-8") as f:
      f.write(marker)
  with open(os.path.join(path, export.METADATA_FILE), "w", encoding="utf-8") as f:
    f.write('{"model": {}, "exported_step": 1, "marker": "%s"}' % marker)


def _run(tmp_path):
  """A workdir with what a run writes, beside a sibling run."""
  runs = tmp_path / "runs"
  for name in ("a", "b"):
    for part in ("checkpoints", "tensorboard", "samples"):
      os.makedirs(runs / name / part)
    (runs / name / "config.json").write_text('{"data": {}, "model": {}, "loss": {}, "train": {}}')
  return runs, runs / "a"


def test_check_export_dir_refuses_what_an_export_would_destroy(tmp_path):
  runs, workdir = _run(tmp_path)
  (tmp_path / "notes.txt").write_text("mine")
  os.makedirs(tmp_path / "photos")
  (tmp_path / "photos" / "cat.png").write_bytes(b"x")
  refused = {str(workdir): "is the run's workdir or holds it", str(runs): "is the run's workdir or holds it",
             str(tmp_path): "is the run's workdir or holds it",
             str(tmp_path / "notes.txt"): "is a file, not an earlier export",
             str(tmp_path / "photos"): "is a folder with other contents",
             str(workdir / "checkpoints"): "is inside the run's own checkpoints"}
  os.makedirs(workdir / "checkpoints" / "ckpt-1.index")
  for path, reason in refused.items():
    with pytest.raises(ValueError, match=reason):
      export.check_export_dir(path, str(workdir))
  os.symlink(workdir, tmp_path / "alias")  # the same checkpoints/ through a linked parent folder
  with pytest.raises(ValueError, match="is inside the run's own checkpoints"):
    export.check_export_dir(str(tmp_path / "alias" / "checkpoints" / "x"), str(workdir))
  # A user's folder where the export would put its temporary or old copy is refused too.
  os.makedirs(tmp_path / "out.old")
  (tmp_path / "out.old" / "thesis.tex").write_text("x")
  with pytest.raises(ValueError, match="out.old exists and is a folder with other contents"):
    export.check_export_dir(str(tmp_path / "out"), str(workdir))
  # Allowed: a new path, an empty folder, an earlier export (the default <workdir>/export among them).
  export.check_export_dir(str(tmp_path / "new"), str(workdir))
  os.makedirs(tmp_path / "empty")
  export.check_export_dir(str(tmp_path / "empty"), str(workdir))
  _fake_export(workdir / "export")
  export.check_export_dir(str(workdir / "export"), str(workdir))
  # An export whose metadata was emptied or cut short is named as such (not "a folder with other contents").
  for damaged in ("", '{"model": {'):
    (workdir / "export" / export.METADATA_FILE).write_text(damaged)
    with pytest.raises(ValueError, match=r"export looks like an export but its mmd_gan_tf.json is damaged"):
      export.check_export_dir(str(workdir / "export"), str(workdir))
  # The default folder (which the user may not have given) is not named as a --export_dir they gave.
  (workdir / "export" / export.METADATA_FILE).unlink()
  with pytest.raises(ValueError, match=f"^the export folder {workdir / 'export'}: .* holds a SavedModel without"):
    export.check_export_dir(str(workdir / "export"), str(workdir))


def test_a_refused_export_dir_stops_the_run_before_anything_is_written(tmp_path):
  runs, workdir = _run(tmp_path)
  before = sorted(str(p) for p in tmp_path.rglob("*"))
  with pytest.raises(ValueError, match=r"^--export_dir=.* is the run's workdir or holds it"):
    config_builder.build_config({"workdir": str(workdir), "export_dir": str(runs), "steps": 2})
  for mode in ("train", "export"):
    result = main_in_process(f"--mode={mode}", f"--workdir={workdir}", f"--export_dir={workdir}", "--steps=2")
    assert result.returncode != 0 and "is the run's workdir or holds it" in result.stderr
  assert sorted(str(p) for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("leftover", ["old_beside_export", "old_only", "tmp"])
def test_an_export_killed_midway_is_settled_by_the_next(tmp_path, leftover):
  cfg = config_builder.build_config(dict(dataset="shapes", loss="rep", arch="li", width=0.0625, batch_size=4,
                                         workdir=str(tmp_path / "run")))
  export_dir = str(tmp_path / "run" / "export")
  if leftover == "old_beside_export":  # killed after the second rename
    _fake_export(export_dir, "previous")
    _fake_export(export_dir + ".old", "older")
  elif leftover == "old_only":  # killed between the two renames: the previous export comes back first
    _fake_export(export_dir + ".old", "previous")
  else:  # killed while writing
    _fake_export(export_dir, "previous")
    os.makedirs(export_dir + ".tmp" + "/variables")
  generator = trainer.build_networks(cfg).generator
  export.export_generator(generator, cfg, export_dir)
  assert sorted(os.listdir(tmp_path / "run")) == ["export"]
  with open(os.path.join(export_dir, export.METADATA_FILE), encoding="utf-8") as f:
    assert '"loss"' in f.read()  # the new export, not a leftover


def _deleting(*args, real, calls, cut, **kwargs):
  """os.unlink / os.remove / os.rmdir that raise KeyboardInterrupt (a kill) at the `cut`-th deletion."""
  calls.append(args[0])
  if len(calls) == cut:
    raise KeyboardInterrupt
  return real(*args, **kwargs)


def test_an_export_killed_while_it_deletes_the_previous_one_is_settled_by_the_next(tmp_path, monkeypatch):
  """A kill at any point of deleting `<export>.old` (after the new export is in place) leaves a folder the next
  export still recognises as an earlier export, and settles; it is never refused as someone else's folder."""
  real = {name: getattr(os, name) for name in ("unlink", "remove", "rmdir")}
  for cut in range(1, 6):  # the fake export's 5 deletions: 3 files, variables/, the folder itself
    workdir = tmp_path / f"cut{cut}"
    export_dir = str(workdir / "export")
    _fake_export(export_dir, "new")
    _fake_export(export_dir + ".old", "previous")
    with monkeypatch.context() as patch:
      calls = []
      for name in real:
        patch.setattr(os, name, functools.partial(_deleting, real=real[name], calls=calls, cut=cut))
      with pytest.raises(KeyboardInterrupt):
        export.recover_interrupted_export(export_dir)
    export.check_export_dir(export_dir, str(workdir))  # not refused
    export.recover_interrupted_export(export_dir)
    assert sorted(os.listdir(workdir)) == ["export"], cut
    assert export.exported_step(export_dir) == 1 and "new" in (workdir / "export" / "saved_model.pb").read_text()


def test_the_export_names_its_run_by_absolute_path(tmp_path, monkeypatch):
  """A relative --workdir names another run from another folder: that run must not take this export over,
  and this run resumed from another folder keeps it."""
  monkeypatch.chdir(tmp_path)
  os.makedirs("first")
  cfg = config_builder.build_config(dict(dataset="shapes", loss="rep", arch="li", width=0.0625, batch_size=4,
                                         workdir="rel", export_dir=str(tmp_path / "shared_export")))
  monkeypatch.chdir(tmp_path / "first")
  export.export_generator(trainer.build_networks(cfg).generator, cfg, cfg.export_dir, step=2)
  with open(tmp_path / "shared_export" / export.METADATA_FILE, encoding="utf-8") as f:
    assert json.load(f)["workdir"] == str(tmp_path / "first" / "rel")
  export.check_export_dir(str(tmp_path / "shared_export"), str(tmp_path / "first" / "rel"))  # its own
  monkeypatch.chdir(tmp_path)
  export.check_export_dir(str(tmp_path / "shared_export"), "first/rel")  # the same run, from elsewhere
  os.makedirs("second")
  monkeypatch.chdir(tmp_path / "second")
  with pytest.raises(ValueError, match=r"holds the export of another run \(.*first/rel"):
    export.check_export_dir(str(tmp_path / "shared_export"), "rel")  # another run named rel


@pytest.mark.end_to_end
def test_an_export_refuses_a_workdir_in_training_and_a_full_disk_is_one_line(trained_run, tmp_path,
                                                                              monkeypatch):
  from helpers import copy_of_trained_run  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import checkpointing  # pylint: disable=import-outside-toplevel
  workdir = copy_of_trained_run(trained_run, tmp_path / "run")
  # A run training in the workdir: refused in one line (its own end exports), nothing touched.
  lock = checkpointing.WorkdirLock(str(workdir))
  try:
    result = main_in_process("--mode=export", f"--workdir={workdir}")
  finally:
    lock.release()
  assert result.returncode == 2 and "is in use by PID" in result.stderr
  assert "exports its generator itself when it ends" in result.stderr and "Traceback" not in result.stderr
  # No run there: one line, no directory created.
  for dry_run in ((), ("--dry_run",)):  # the dry run says what the export would say
    result = main_in_process("--mode=export", f"--workdir={tmp_path / 'missing'}", *dry_run)
    assert result.returncode == 2 and "has no checkpoint to export" in result.stderr
  assert not (tmp_path / "missing").exists()
  # A full disk while writing: one line, exit 1, the unfinished copy removed, the earlier export kept.
  earlier = (workdir / "export" / "saved_model.pb").read_bytes()
  real_export = export.export_generator

  def export_on_a_full_disk(generator, cfg, export_dir, step=None):
    os.makedirs(export_dir + ".tmp/variables")
    (tmp_path / "run" / "export.tmp" / "saved_model.pb").write_bytes(b"half")
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(export, "export_generator", export_on_a_full_disk)
  result = main_in_process("--mode=export", f"--workdir={workdir}")
  assert result.returncode == 1, result.stderr
  assert "no space left to export the generator" in result.stderr and "Traceback" not in result.stderr
  assert not (workdir / "export.tmp").exists()
  assert (workdir / "export" / "saved_model.pb").read_bytes() == earlier
  monkeypatch.setattr(export, "export_generator", real_export)
  for dry_run in ((), ("--dry_run",)):  # training flags with an export: refused, not ignored
    result = main_in_process("--mode=export", f"--workdir={workdir}", "--steps=9", "--critic_lr=0.1", *dry_run)
    assert result.returncode == 2, result.stderr[-1000:]
    assert ("--mode=export exports the run's generator as it was trained: --critic_lr --steps would have no "
            "effect; leave them out" in result.stderr.splitlines()[-1])
  assert (workdir / "export" / "saved_model.pb").read_bytes() == earlier
  result = main_in_process("--mode=export", f"--workdir={workdir}")
  assert result.returncode == 0, result.stderr[-1000:]


@pytest.mark.end_to_end
def test_an_export_from_an_older_checkpoint_never_replaces_a_newer_export(trained_run, tmp_path):
  from helpers import copy_of_trained_run  # pylint: disable=import-outside-toplevel
  workdir = copy_of_trained_run(trained_run, tmp_path / "run")  # export of step 4
  assert export.exported_step(str(workdir / "export")) == 4
  data = [p for p in os.listdir(workdir / "checkpoints") if p.startswith("ckpt-4.data")][0]
  path = workdir / "checkpoints" / data
  path.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])  # the newest checkpoint is damaged
  earlier = (workdir / "export" / "saved_model.pb").read_bytes()
  result = main_in_process("--mode=export", f"--workdir={workdir}")
  assert result.returncode == 2, result.stderr[-1000:]
  assert "holds the generator of step 4, newer than the newest readable checkpoint (ckpt-2, step 2)" in result.stderr
  assert (workdir / "export" / "saved_model.pb").read_bytes() == earlier
  result = main_in_process("--mode=export", f"--workdir={workdir}", f"--export_dir={tmp_path / 'step2'}")
  assert result.returncode == 0 and export.exported_step(str(tmp_path / "step2")) == 2


def test_the_export_dir_must_be_writable_and_the_workdir_outside_the_data(tmp_path, monkeypatch):
  runs, workdir = _run(tmp_path)
  os.makedirs(tmp_path / "locked")
  real_access = os.access
  monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(tmp_path / "locked")
                      else real_access(path, mode))
  with pytest.raises(ValueError, match=r"locked is not writable, so the run could not export at its end"):
    export.check_export_dir(str(tmp_path / "locked" / "new" / "export"), str(workdir))
  monkeypatch.undo()
  os.symlink(tmp_path / "locked", tmp_path / "link")
  with pytest.raises(ValueError, match="link exists and is a symbolic link"):
    export.check_export_dir(str(tmp_path / "link"), str(workdir))
  images = tmp_path / "images"
  os.makedirs(images)
  for workdir_flag in (images, images / "runs" / "a"):
    with pytest.raises(ValueError, match=f"--workdir={workdir_flag} is inside --data_dir={images}: the run"):
      config_builder.build_config({"dataset": "folder", "data_dir": str(images), "workdir": str(workdir_flag)})
  # The other way round: the run's own samples/ as its data folder.
  os.makedirs(workdir / "samples" / "more")
  with pytest.raises(ValueError, match=f"--data_dir={workdir}/samples is inside --workdir={workdir}: the run"):
    config_builder.build_config({"dataset": "folder", "data_dir": str(workdir / "samples"),
                                 "workdir": str(workdir)})


def test_an_export_of_another_run_or_a_newer_step_is_never_replaced(tmp_path, monkeypatch):
  import json  # pylint: disable=import-outside-toplevel
  runs, workdir = _run(tmp_path)
  other = tmp_path / "elsewhere"
  _fake_export(other)
  (other / export.METADATA_FILE).write_text(json.dumps({"workdir": str(runs / "b"), "exported_step": 4}))
  with pytest.raises(ValueError, match=r"holds the export of another run \(.*runs/b\)"):
    export.check_export_dir(str(other), str(workdir))
  with pytest.raises(ValueError, match="holds the export of another run"):  # at the start of a run, too
    config_builder.build_config({"workdir": str(workdir), "export_dir": str(other), "steps": 2})
  (other / export.METADATA_FILE).write_text(json.dumps({"workdir": str(tmp_path / "moved"), "exported_step": 4}))
  with pytest.raises(ValueError, match=r"another run \(.*moved, a folder that no longer exists: if this run was "
                                       "moved from there, move that export away first\)"):
    export.check_export_dir(str(other), str(workdir))
  (other / export.METADATA_FILE).write_text(json.dumps({"workdir": str(runs / "b"), "exported_step": 4}))
  # The run's own export of a newer step is kept, whoever asks (the end of a run, --mode=export).
  cfg = config_builder.build_config(dict(dataset="shapes", loss="rep", arch="li", width=0.0625, batch_size=4,
                                         workdir=str(workdir)))
  _fake_export(workdir / "export")
  (workdir / "export" / export.METADATA_FILE).write_text(json.dumps({"workdir": str(workdir), "exported_step": 4}))
  generator = trainer.build_networks(cfg).generator
  with pytest.raises(ValueError, match="holds the generator of step 4, newer than this one \\(step 2\\)"):
    export.export_generator(generator, cfg, str(workdir / "export"), step=2)
  assert export.exported_step(str(workdir / "export")) == 4
  export.export_generator(generator, cfg, str(workdir / "export"), step=6)
  assert export.exported_step(str(workdir / "export")) == 6
  # A run that could never reach that step is refused at its start, not after training.
  with pytest.raises(ValueError, match=r"holds the generator of step 6, past this run's --steps=2: no export"):
    config_builder.build_config({"workdir": str(workdir), "steps": 2})
  config_builder.build_config({"workdir": str(workdir), "steps": 6})
  # A mount point cannot be replaced by a rename: refused before the run.
  monkeypatch.setattr(os.path, "ismount", lambda path: str(path) == str(tmp_path / "mnt"))
  with pytest.raises(ValueError, match="is a mount point"):
    export.check_export_dir(str(tmp_path / "mnt"), str(workdir))


def test_an_export_path_inside_another_run_is_refused_and_a_moved_runs_export_moves_with_it(tmp_path):
  from mmd_gan_tf import checkpointing  # pylint: disable=import-outside-toplevel
  runs, workdir = _run(tmp_path)
  with pytest.raises(ValueError, match=r"^--export_dir=.*runs/b/mine is inside another run \(.*runs/b\)"):
    config_builder.build_config({"workdir": str(workdir), "export_dir": str(runs / "b" / "mine"), "steps": 2})
  config_builder.build_config({"workdir": str(workdir), "export_dir": str(workdir / "mine"), "steps": 2})  # its own
  # A run moved from runs/a to moved/a: an export path inside its old folder follows it; one outside stays.
  saved = config_builder.build_config({"workdir": str(workdir), "export_dir": str(workdir / "gen"), "steps": 2},
                                      check_library=False)
  moved = str(tmp_path / "moved" / "a")
  assert checkpointing.at_workdir(saved, moved).export_dir == os.path.join(moved, "gen")
  assert checkpointing.at_workdir(saved, moved).workdir == moved
  outside = config_builder.build_config({"workdir": str(workdir), "export_dir": str(tmp_path / "gen"), "steps": 2},
                                        check_library=False)
  assert checkpointing.at_workdir(outside, moved).export_dir == str(tmp_path / "gen")
  assert checkpointing.at_workdir(saved, str(workdir)).export_dir == str(workdir / "gen")


def test_a_folder_with_export_like_names_or_another_savedmodel_is_not_an_earlier_export(tmp_path):
  runs, workdir = _run(tmp_path)
  site = tmp_path / "site"  # a user's folder that happens to have an assets/ folder
  os.makedirs(site / "assets")
  (site / "assets" / "logo.txt").write_text("precious")
  foreign = tmp_path / "classifier"  # a SavedModel of something else: no mmd_gan_tf.json
  os.makedirs(foreign / "variables")
  (foreign / "saved_model.pb").write_bytes(b"someone's model")
  with pytest.raises(ValueError, match=f"{site} exists and is a folder with other contents, not an earlier"):
    export.check_export_dir(str(site), str(workdir))
  with pytest.raises(ValueError, match=f"{foreign} holds a SavedModel without the mmd_gan_tf.json of this "
                     "project's exports, so it cannot be told from someone else's model"):
    export.check_export_dir(str(foreign), str(workdir))
  os.rename(foreign, tmp_path / "gan.old")  # beside a new export path: not taken for our interrupted export
  with pytest.raises(ValueError, match="gan.old holds a SavedModel without the mmd_gan_tf.json"):
    export.check_export_dir(str(tmp_path / "gan"), str(workdir))
  export.recover_interrupted_export(str(tmp_path / "gan"))
  assert (tmp_path / "gan.old" / "saved_model.pb").read_bytes() == b"someone's model"
  assert not (tmp_path / "gan").exists()
  os.makedirs(tmp_path / "new.tmp" / "variables")  # an export killed before its metadata: still ours to remove
  export.check_export_dir(str(tmp_path / "new"), str(workdir))



def test_an_export_path_that_could_only_fail_after_training_is_refused_at_the_start(tmp_path):
  runs, workdir = _run(tmp_path)
  (tmp_path / "afile").write_text("x")
  os.symlink(tmp_path / "loop_b", tmp_path / "loop_a")
  os.symlink(tmp_path / "loop_a", tmp_path / "loop_b")
  refused = {str(workdir / "checkpoints"): "is inside the run's own checkpoints",
             str(workdir / "samples" / "gen"): "is inside the run's own samples",
             str(tmp_path / "afile" / "x"): "afile is a file, not a folder",
             str(tmp_path / "loop_a" / "x"): "loop_a cannot be read",
             str(tmp_path / ("e" * 253)): "is longer than the 255 bytes",
             "/proc/mmd_gan_export": "is under /proc, which holds no files"}
  for path, reason in refused.items():
    with pytest.raises(ValueError, match=reason):
      export.check_export_dir(path, str(workdir))
  export.check_export_dir(str(tmp_path / ("e" * 200)), str(workdir))
