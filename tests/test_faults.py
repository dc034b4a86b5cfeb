"""Faults and bad input: symlink loops, empty and negative sample counts, a rerun at the final step."""

import dataclasses
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from helpers import ROOT, TINY_RUN, copy_of_trained_run, main_in_process, make_two_replica_strategy, tool_env
from flags import build as config_builder
from mmd_gan_tf import checkpointing
from mmd_gan_tf import files
from mmd_gan_tf import summaries
from mmd_gan_tf import trainer
from mmd_gan_tf.data import folder

TINY = TINY_RUN  # the session's tiny run (conftest.trained_run) has this config


def _images(root, count=3):
  os.makedirs(root, exist_ok=True)
  for index in range(count):
    Image.fromarray(np.full((8, 8, 3), index, np.uint8)).save(os.path.join(root, f"{index}.png"))


@pytest.mark.parametrize("links", [("self",), ("a", "b")])
def test_symlink_loops_are_listed_once_without_hanging(tmp_path, links, caplog):
  root = tmp_path / "images"
  _images(root / "sub")
  for name in links:
    os.symlink(".", root / name)
  os.symlink("..", root / "sub" / "up")
  start = time.monotonic()
  with caplog.at_level(logging.WARNING):
    files = folder.list_files(str(root))
  assert time.monotonic() - start < 5
  assert [os.path.basename(f) for f in files] == ["0.png", "1.png", "2.png"]
  assert any("symbolic links" in r.getMessage() for r in caplog.records)
  # Links to nothing are counted in a warning (they were skipped without a word).
  os.symlink(tmp_path / "nowhere.png", root / "sub" / "gone.png")
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    assert len(folder.list_files(str(root))) == 3
  assert any("skipped 1 symbolic link(s) to nothing" in r.getMessage() for r in caplog.records)



def test_special_files_in_the_data_folder_are_named_not_silently_skipped(tmp_path, caplog):
  """A FIFO was skipped without a word and a link to /dev/zero was called a link to nothing."""
  root = tmp_path / "images"
  _images(root)
  os.mkfifo(root / "pipe.png")
  os.symlink("/dev/zero", root / "zero.png")
  with caplog.at_level(logging.WARNING):
    assert [os.path.basename(f) for f in folder.list_files(str(root))] == ["0.png", "1.png", "2.png"]
  messages = [r.getMessage() for r in caplog.records]
  assert any("skipped 2 special file(s) (FIFOs, devices or sockets" in m and "pipe.png" in m for m in messages)
  assert not any("to nothing" in m for m in messages), messages


def test_a_run_reached_through_a_link_in_the_data_folder_is_not_data(trained_run, tmp_path, caplog):
  """A workdir linked from inside --data_dir added the run's own sample grids to its training images."""
  root = tmp_path / "images"
  _images(root)
  run = copy_of_trained_run(trained_run, tmp_path / "run")
  os.symlink(run, root / "runlink")
  fresh = tmp_path / "fresh"  # a run that has only taken its lock so far
  fresh.mkdir()
  (fresh / ".lock").write_text("PID 1\n")
  _images(fresh / "samples")
  os.symlink(fresh, root / "freshlink")
  with caplog.at_level(logging.WARNING):
    files = folder.list_files(str(root))
  assert [os.path.relpath(f, root) for f in files] == ["0.png", "1.png", "2.png"]
  assert any("skipped 2 training run folder(s)" in r.getMessage() for r in caplog.records)


@pytest.fixture
def exported(trained_run):
  """The run directory of the session's tiny trained run (helpers.TINY_RUN: one channel, 32 px)."""
  return trained_run[0]


def test_empty_batches_keep_the_image_shape(exported):
  loaded = tf.saved_model.load(str(exported / "export"))
  empty = loaded.signatures["sample"](num_samples=tf.constant(0), seed=tf.constant(1, tf.int64))
  assert empty["images"].shape == (0, 32, 32, 1) and empty["images_uint8"].shape == (0, 32, 32, 1)
  z = tf.zeros([0, 128])
  assert loaded.signatures["generate"](z=z)["images"].shape == (0, 32, 32, 1)


def test_negative_sample_counts_are_a_clear_error(exported):
  loaded = tf.saved_model.load(str(exported / "export"))
  with pytest.raises(tf.errors.InvalidArgumentError, match="num_samples must be >= 0"):
    loaded.signatures["sample"](num_samples=tf.constant(-3), seed=tf.constant(1, tf.int64))


@pytest.mark.end_to_end
def test_a_second_run_on_a_locked_workdir_stops_at_once_and_a_rerun_at_the_final_step_exports(tmp_path):
  import shutil  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import checkpointing  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / "run"
  os.makedirs(workdir)
  holder = checkpointing.WorkdirLock(str(workdir))
  try:
    cfg = config_builder.build_config(dict(TINY, workdir=str(workdir), steps=2))
    with pytest.raises(ValueError, match=f"in use by PID {os.getpid()} on "):
      trainer.train(cfg, strategy=make_two_replica_strategy())
    assert sorted(os.listdir(workdir)) == [".lock"]  # nothing written by the refused run
  finally:
    holder.release()
  # The lock of a dead holder is taken over: a lock file left behind does not block.
  trainer.train(cfg, strategy=make_two_replica_strategy())
  export = workdir / "export"
  assert (export / "saved_model.pb").exists()
  # kill -9 between the last checkpoint and the export: the same command again must export.
  shutil.rmtree(export)
  trainer.train(cfg, strategy=make_two_replica_strategy())
  assert (export / "saved_model.pb").exists()


@pytest.mark.end_to_end
def test_ctrl_c_saves_the_interrupted_step_and_the_rerun_continues(tmp_path, caplog, no_export):
  """`python main.py` with XLA (`--jit_compile=true`, one CPU replica) and 2 generator steps per compiled call,
  Ctrl-C'd: exit code 75 after a checkpoint of the step it stopped at; the same config continues from it
  (the trainer in this process: a fresh main.py start is 5-6 s more on one core). Li's 4-layer networks:
  with XLA their first step came 11.5 s after tracing began, against 16 s for Wang's SN-DCGAN."""
  workdir = tmp_path / "run"
  # Loops stop where the host logs: log every 2nd step for loops of 2 to run.
  flags = dict(arch="li", width=0.125, batch_size=8, steps_per_loop=2, jit_compile="true", log_every=2,
               checkpoint_every=100000, sample_every=100000)
  command = [sys.executable, str(ROOT / "main.py"), f"--workdir={workdir}", "--steps=100000"]
  command += [f"--{name}={value}" for name, value in flags.items()]
  log = tmp_path / "log.txt"
  with open(log, "w", encoding="utf-8") as out:
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=str(tmp_path))
    deadline = time.monotonic() + 240
    while "step 4/" not in log.read_text() and time.monotonic() < deadline and process.poll() is None:
      time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=120)
  text = log.read_text()
  assert code == 75, text[-2000:]
  assert "checkpoint saved; run the same command again" in text
  step = int(tf.train.latest_checkpoint(str(workdir / "checkpoints")).rsplit("-", 1)[1])
  assert step >= 4 and step % 2 == 0
  cfg = config_builder.build_config(dict(flags, workdir=str(workdir), steps=step + 1))
  with caplog.at_level(logging.INFO, logger="absl"):
    trainer.train(cfg, strategy=tf.distribute.MirroredStrategy(["/cpu:0"]))
  messages = " | ".join(r.getMessage() for r in caplog.records)
  assert f"at step {step}" in messages and "XLA compilation of the training steps: on" in messages
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith(f"ckpt-{step + 1}")


@pytest.mark.end_to_end
def test_sigterm_saves_the_interrupted_step_and_the_rerun_continues(tmp_path, monkeypatch, caplog, no_export):
  """The trainer in this process on 2 replicas (one step per call), SIGTERM'd by itself after its 3rd step:
  it saves that step and raises Interrupted; the same config resumes there."""
  # The signal handler is installed by the main thread only (as in main.py); without it SIGTERM would kill
  # this test process.
  assert threading.current_thread() is threading.main_thread()
  real_iteration, calls = trainer.iteration, []

  def iteration(*args):
    metrics = real_iteration(*args)
    calls.append(len(calls) + 1)
    if len(calls) == 3:
      os.kill(os.getpid(), signal.SIGTERM)
    return metrics

  monkeypatch.setattr(trainer, "iteration", iteration)
  cfg = config_builder.build_config(dict(TINY, arch="li", workdir=str(tmp_path / "run"), steps=100,
                                         checkpoint_every=100))
  with pytest.raises(trainer.Interrupted, match="SIGTERM at step 3: checkpoint saved"):
    trainer.train(cfg, strategy=make_two_replica_strategy())
  assert calls == [1, 2, 3]
  assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-3")
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the trainer's handler is gone again
  with caplog.at_level(logging.INFO, logger="absl"):
    trainer.train(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=4)),
                  strategy=make_two_replica_strategy())
  assert any("at step 3" in r.getMessage() for r in caplog.records)
  assert calls == [1, 2, 3, 4]


@pytest.mark.end_to_end
def test_sigterm_during_an_evaluation_saves_that_step_at_once(tmp_path, monkeypatch, no_export):
  """A signal that arrives while KID is computed: no further step, no second evaluation, the step saved."""
  assert threading.current_thread() is threading.main_thread()
  evaluated = []

  class Evaluator:
    def __call__(self, generator, step):
      evaluated.append(step)
      os.kill(os.getpid(), signal.SIGTERM)
      return {"eval/kid": 0.5}

    def log(self, *args):
      pass

    def after_restore(self, step):
      pass

  monkeypatch.setattr(trainer.evaluation, "make_evaluation", lambda *args: (Evaluator(), None))
  cfg = config_builder.build_config(dict(TINY, arch="li", workdir=str(tmp_path / "run"), steps=100,
                                         eval_every=2, checkpoint_every=100))
  cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, eval_at_start=False))
  with pytest.raises(trainer.Interrupted, match="SIGTERM at step 2: checkpoint saved"):
    trainer.train(cfg, strategy=make_two_replica_strategy())
  assert evaluated == [2]
  assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-2")


@pytest.mark.parametrize("flags, message", [
    (["--batch_size=1"], "--batch_size=1 must be >= 2"),
    (["--batch_size=3", "--cpu_devices=2"], "divisible by --cpu_devices=2"),
    (["--workdir="], "--workdir must not be empty"),
    (["--kid_subset_size=500", "--eval_num_samples=100"], "--kid_subset_size=500 exceeds"),
])
def test_dry_run_rejects_what_the_run_rejects(flags, message):
  result = main_in_process("--dry_run", *flags)
  assert result.returncode == 2
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and message in errors[0], result.stderr[-1000:]


def test_result_files_are_readable_by_others_and_partial_saves_are_removed(tmp_path):
  from mmd_gan_tf import checkpointing  # pylint: disable=import-outside-toplevel
  old = os.umask(0o022)
  try:
    path = tmp_path / "config.json"
    files.atomic_write_text(str(path), "{}\n")
    assert os.stat(path).st_mode & 0o777 == 0o644
  finally:
    os.umask(old)
  partial = tmp_path / "checkpoints" / "ckpt-30_temp" / "part-0"
  os.makedirs(partial)
  os.makedirs(tmp_path / "checkpoints" / "keep")
  (tmp_path / "checkpoints" / "checkpoint").write_text("kept")
  stale = "checkpoint.tmp" + "0123456789abcdef" * 2  # the state file's atomic write, killed before its rename
  (tmp_path / "checkpoints" / stale).write_text("half")
  assert checkpointing.remove_partial_saves(str(tmp_path)) == [stale, "ckpt-30_temp"]
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["checkpoint", "keep"]


def test_a_second_ctrl_c_is_one_line_naming_what_is_kept(tmp_path, monkeypatch):
  def interrupted_at_once(cfg, strategy=None):
    raise KeyboardInterrupt  # what the stop handler raises on a second Ctrl-C

  monkeypatch.setattr(trainer, "train", interrupted_at_once)
  result = main_in_process(f"--workdir={tmp_path / 'run'}", "--steps=2")
  assert result.returncode == 130 and "Traceback" not in result.stderr
  [line] = [line for line in result.stderr.splitlines() if "Ctrl-C" in line]
  assert "Ctrl-C (a second one, or one during start-up) before the first checkpoint" in line
  assert "run the same command again" in line


def test_sigterm_before_training_began_exits_to_be_run_again(tmp_path, monkeypatch):
  """A scheduler's SIGTERM during start-up (before the trainer's handler): one line and exit 75, which a requeue
  loop runs again (it was a silent 143 during the imports), also after the imports (here in this process)."""
  from mmd_gan_tf import startup  # pylint: disable=import-outside-toplevel

  def stopped_while_starting(cfg, strategy=None):
    startup._stop(signal.SIGTERM, None)  # pylint: disable=protected-access  # main.py's handler until the trainer's

  monkeypatch.setattr(startup, "SIGNALS", [])
  monkeypatch.setattr(trainer, "train", stopped_while_starting)
  result = main_in_process(f"--workdir={tmp_path / 'run'}", "--steps=2")
  assert result.returncode == 75 and "Traceback" not in result.stderr
  assert "stopped by SIGTERM during start-up, before training: run the same command again" in result.stderr


@pytest.mark.end_to_end
@pytest.mark.parametrize("program, args, stop", [
    ("main.py", ["--steps=2"], signal.SIGTERM),
    ("main.py", ["--steps=2"], signal.SIGHUP),
    ("tools/evaluate.py", ["--real=r", "--fake=f"], signal.SIGTERM),
    ("tools/evaluate.py", ["--real=r", "--fake=f"], signal.SIGINT),
    ("tools/prepare_dataset.py", ["--source=folder", "--data_dir=d"], signal.SIGTERM),
    ("tools/sample.py", ["--model=m"], signal.SIGHUP),
    ("tools/quality.py", ["--losses=rep_b"], signal.SIGTERM),
], ids=lambda value: value.name if isinstance(value, signal.Signals) else "" if isinstance(value, list) else value)
def test_a_stop_during_the_imports_is_one_line(tmp_path, program, args, stop):
  """SIGTERM / SIGHUP: exit 75, which a requeue loop runs again (it was a silent 143 / 129); Ctrl-C: 130 (it was a
  traceback of the import in the tools)."""
  out = tmp_path / "out"
  process = subprocess.Popen([sys.executable, str(ROOT / program), f"--{'workdir' if program == 'main.py' else 'out'}"
                              f"={out}", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=str(tmp_path), env=tool_env(),
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
  time.sleep(1.0)  # TensorFlow's import takes several seconds
  process.send_signal(stop)
  stdout, stderr = process.communicate(timeout=120)
  interrupted = stop != signal.SIGINT
  assert process.returncode == (75 if interrupted else 130), stderr[-2000:]
  assert stderr.strip().splitlines()[-1] == (f"stopped by {stop.name} while starting: nothing was written; run the "
                                             "same command again" if interrupted else
                                             "stopped by Ctrl-C while starting: nothing was written")
  assert not out.exists() and not stdout


def test_sample_tool_checks_its_input(exported, tmp_path):
  """tools/sample.py's checks, before any TensorFlow work (its one-line errors as a process: test_cli.py; its
  batched grid: test_train.py)."""
  sys.path.insert(0, str(ROOT))
  from tools import sample  # pylint: disable=import-outside-toplevel
  with pytest.raises(ValueError, match=f"--model={tmp_path / 'missing'} is not a SavedModel directory"):
    sample.check_args(str(tmp_path / "missing"), 4, 4)
  with pytest.raises(ValueError, match=f"--model={tmp_path} has no saved_model.pb: not a SavedModel export"):
    sample.check_args(str(tmp_path), 4, 4)
  for num in (-3, 0, sample.MAX_GRID + 1):
    with pytest.raises(ValueError, match=rf"--num={num} must be in \[1, {sample.MAX_GRID}\]"):
      sample.check_args(str(exported / "export"), num, 4)
  with pytest.raises(ValueError, match="--batch_size=0 must be positive"):
    sample.check_args(str(exported / "export"), 4, 0)
  sample.check_args(str(exported / "export"), 10, 3)  # accepted
  with pytest.raises(ValueError, match="--out=grid.jpg must name a .png file"):
    sample.check_args(str(exported / "export"), 4, 4, "grid.jpg")  # it would write PNG bytes to a .jpg
  (tmp_path / "grids.png").mkdir()
  with pytest.raises(ValueError, match="is a directory"):
    sample.check_args(str(exported / "export"), 4, 4, str(tmp_path / "grids.png"))
  sample.check_args(str(exported / "export"), 4, 4, str(tmp_path / "GRID.PNG"))  # accepted
  # An existing file is replaced only if it is a grid of this tool (its PNG mark), never a user's image.
  from PIL import Image  # pylint: disable=import-outside-toplevel
  Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "photo.png")
  with pytest.raises(ValueError, match=r"--out=.*photo.png exists and is not a grid this tool wrote"):
    sample.check_args(str(exported / "export"), 4, 4, str(tmp_path / "photo.png"))
  summaries.write_png(str(tmp_path / "old_grid.png"), np.zeros((4, 4, 3), np.uint8), text={"Software": sample.SOFTWARE})
  sample.check_args(str(exported / "export"), 4, 4, str(tmp_path / "old_grid.png"))  # its own: replaced
  # Not into a run's own folders or an export: that run's resume or export would be refused afterwards.
  for inside, why in ((exported / "export" / "g.png", "is inside the exported generator"),
                      (exported / "samples" / "g.png", r"is inside the run .* \(its samples/\)")):
    with pytest.raises(ValueError, match=rf"--out={inside} {why}"):
      sample.check_args(str(exported / "export"), 4, 4, str(inside))
  sample.check_args(str(exported / "export"), 4, 4, str(exported / "grid.png"))  # beside them is fine
  # A folder that cannot be written is named before the generator runs, not after.
  (tmp_path / "locked").mkdir()
  real_access = os.access
  try:
    os.access = lambda path, mode: False if str(path) == str(tmp_path / "locked") else real_access(path, mode)
    with pytest.raises(ValueError, match=r"--out=.*locked/new/g.png cannot be written: .*locked is not writable"):
      sample.check_args(str(exported / "export"), 4, 4, str(tmp_path / "locked" / "new" / "g.png"))
  finally:
    os.access = real_access
  (tmp_path / "afile").write_text("")
  with pytest.raises(ValueError, match=r"--out=.*afile/g.png cannot be written: .*afile is not a folder"):
    sample.check_args(str(exported / "export"), 4, 4, str(tmp_path / "afile" / "g.png"))
  os.symlink(exported / "samples" / "g.png", tmp_path / "into_run.png")  # a link into a run: its target counts
  with pytest.raises(ValueError, match=r"--out=.*into_run.png is inside the run .* \(its samples/\)"):
    sample.check_args(str(exported / "export"), 4, 4, str(tmp_path / "into_run.png"))


def test_sample_tool_writes_through_a_link_given_as_out(tmp_path):
  """--out=<a link to an earlier grid> replaced the link with a file (the link's target kept the old grid)."""
  sys.path.insert(0, str(ROOT))
  from tools import sample  # pylint: disable=import-outside-toplevel
  (tmp_path / "grids").mkdir()
  summaries.write_png(str(tmp_path / "grids" / "g.png"), np.zeros((4, 4, 3), np.uint8), text={"Software": sample.SOFTWARE})
  os.symlink(tmp_path / "grids" / "g.png", tmp_path / "latest.png")
  sample.write_grid(str(tmp_path / "latest.png"), np.full((1, 4, 4, 3), 255, np.uint8))
  assert os.path.islink(tmp_path / "latest.png")
  assert np.asarray(Image.open(tmp_path / "grids" / "g.png")).min() == 255  # the target holds the new grid
  assert summaries.png_text(str(tmp_path / "grids" / "g.png"))["Software"] == sample.SOFTWARE
  with pytest.raises(ValueError, match=r"^--out=.*afile/g.png cannot be written"):
    (tmp_path / "afile").write_text("")
    sample.write_grid(str(tmp_path / "afile" / "g.png"), np.zeros((1, 4, 4, 3), np.uint8))


@pytest.mark.end_to_end
def test_a_truncated_latest_checkpoint_falls_back_to_the_previous_one(trained_run, tmp_path, caplog, no_export):
  workdir = copy_of_trained_run(trained_run, tmp_path / "run")  # TINY, 4 steps
  data = [p for p in os.listdir(workdir / "checkpoints") if p.startswith("ckpt-4.data")][0]
  path = workdir / "checkpoints" / data
  path.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])  # cut short, as by a full disk
  # Export (`main.py --mode=export`) falls back (and says so; to a folder of its own, since the run's export
  # holds the newer step 4, which it does not replace: test_export_safety.py) ...
  export = main_in_process("--mode=export", f"--workdir={workdir}", f"--export_dir={tmp_path / 'step2'}")
  assert export.returncode == 0, export.stderr[-2000:]
  assert "ckpt-4 is unreadable" in export.stderr and "(step 2)" in export.stdout
  assert (workdir / "checkpoints" / "corrupt" / data).exists()  # kept for inspection
  # ... and so does training, which then continues to the end.
  cfg = config_builder.build_config(dict(TINY, workdir=str(workdir), steps=6))
  with caplog.at_level(logging.INFO, logger="absl"):
    trainer.train(cfg, strategy=make_two_replica_strategy())
  assert any("at step 2" in r.getMessage() for r in caplog.records)
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-6")


def _snapshot(root):
  """{relative path: (size, mtime)} of every file under `root` but the lock (each run takes it)."""
  return {os.path.relpath(os.path.join(d, f), root): (os.path.getsize(os.path.join(d, f)),
                                                         os.path.getmtime(os.path.join(d, f)))
          for d, _, files in os.walk(root) for f in files if f != ".lock"}


@pytest.mark.end_to_end
def test_the_run_identity_lives_in_the_checkpoint_and_a_refused_resume_writes_nothing(trained_run, tmp_path,
                                                                                      no_export):
  from mmd_gan_tf import checkpointing  # pylint: disable=import-outside-toplevel
  workdir = copy_of_trained_run(trained_run, tmp_path / "run")  # TINY, 4 steps
  original = dict(TINY, workdir=str(workdir), steps=4)
  os.remove(workdir / "config.json")
  # Export and tools still know the run: the checkpoint carries its config.
  assert checkpointing.load_config(str(workdir)).loss.name == "rep"
  before = _snapshot(workdir)
  lock = workdir / checkpointing.LOCK_FILE  # an earlier run's: its content and times come back too
  lock.write_text("PID 12 on elsewhere since 2026-01-02 03:04:05\n")
  os.utime(lock, ns=(10**18, 10**18))
  lock_before = (lock.read_text(), os.stat(lock).st_mtime_ns)
  # rep_b has the same variables as rep: only the stored identity can tell them apart. hinge's critic
  # differs too. Either way: refused before anything is written.
  for loss in ("rep_b", "hinge"):
    changed = config_builder.build_config(dict(original, loss=loss, steps=6))
    with pytest.raises(ValueError, match=f"loss.name: checkpoint has 'rep', this run asks for '{loss}'"):
      trainer.train(changed, strategy=make_two_replica_strategy())
    assert _snapshot(workdir) == before
    assert (lock.read_text(), os.stat(lock).st_mtime_ns) == lock_before
  # An edited config.json does not fool it either: the checkpoint's copy wins.
  (workdir / "config.json").write_text(config_builder.build_config(dict(original, loss="rep_b")).to_json())
  with pytest.raises(ValueError, match="checkpoint has 'rep'"):
    trainer.train(config_builder.build_config(dict(original, loss="rep_b", steps=6)),
                  strategy=make_two_replica_strategy())
  # The user's original command still resumes, and config.json is rewritten once the restore succeeded.
  trainer.train(config_builder.build_config(dict(original, steps=6)), strategy=make_two_replica_strategy())
  assert checkpointing.load_config(str(workdir)).loss.name == "rep"
  assert '"name": "rep"' in (workdir / "config.json").read_text()


@pytest.mark.end_to_end
@pytest.mark.parametrize("error", [
    tf.errors.ResourceExhaustedError(None, None, "SaveV2: No space left on device"),
    OSError(28, "No space left on device"),
])
def test_a_full_disk_is_one_clear_error_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, error):
  workdir = tmp_path / "run"
  real_save = tf.train.CheckpointManager.save

  def save(self, checkpoint_number=None, **kwargs):
    if checkpoint_number == 4:
      os.makedirs(workdir / "checkpoints" / "ckpt-4_temp", exist_ok=True)  # what a cut-short save leaves
      raise error
    return real_save(self, checkpoint_number=checkpoint_number, **kwargs)

  monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
  cfg = config_builder.build_config(dict(TINY, workdir=str(workdir), steps=6))
  with pytest.raises(trainer.DiskFullError, match=f"step 4 in --workdir={workdir}.*ckpt-2") as raised:
    trainer.train(cfg, strategy=make_two_replica_strategy())
  assert "\n" not in str(raised.value)
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-2")
  assert not (workdir / "checkpoints" / "ckpt-4_temp").exists()


@pytest.mark.end_to_end
def test_a_refused_resume_leaves_the_run_as_it_was(tmp_path, no_export):
  """A setting refused at resume (XLA on 2 CPU replicas) is refused before config.json or TensorBoard change,
  and the lock file keeps what it held (it named the refused process)."""
  cfg = config_builder.build_config(dict(TINY, arch="li", workdir=str(tmp_path / "run"), steps=2))
  trainer.train(cfg, strategy=tf.distribute.MirroredStrategy(["/cpu:0"]))
  (tmp_path / "run" / ".lock").write_text("PID 1 on elsewhere since 2026-01-01 00:00:00\n")  # an earlier holder
  before = {path.relative_to(tmp_path): path.read_bytes() for path in (tmp_path / "run").rglob("*") if path.is_file()}
  refused = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=4, jit_compile="true"))
  with pytest.raises(ValueError, match="--jit_compile=true needs a single replica"):
    trainer.train(refused, strategy=make_two_replica_strategy())
  after = {path.relative_to(tmp_path): path.read_bytes() for path in (tmp_path / "run").rglob("*") if path.is_file()}
  assert after == before
  (tmp_path / "run" / ".lock").unlink()  # a run folder without a lock file (copied without it) stays without
  with pytest.raises(ValueError, match="--jit_compile=true needs a single replica"):
    trainer.train(refused, strategy=make_two_replica_strategy())
  assert not (tmp_path / "run" / ".lock").exists()


@pytest.mark.end_to_end
@pytest.mark.parametrize("damage", ["missing", "garbled"])
def test_a_lost_checkpoint_state_file_is_rebuilt_from_the_checkpoints_on_disk(trained_run, tmp_path, caplog,
                                                                            damage, no_export):
  """Without its `checkpoint` file TensorFlow sees no checkpoint: a run would start again at step 0 over
  them. The state is rebuilt from ckpt-N on disk first, so the resume is checked and continues."""
  workdir = copy_of_trained_run(trained_run, tmp_path / "run")  # TINY (rep), checkpoints at steps 2 and 4
  state = workdir / "checkpoints" / "checkpoint"
  if damage == "missing":
    os.remove(state)
  else:
    state.write_text("model_checkpoint_path: \x00\x01 not a state {{")
  before = _snapshot(workdir / "checkpoints")
  with pytest.raises(ValueError, match="loss.name: checkpoint has 'rep', this run asks for 'hinge'"):
    trainer.train(config_builder.build_config(dict(TINY, loss="hinge", workdir=str(workdir), steps=6)),
                  strategy=make_two_replica_strategy())
  assert {k: v for k, v in _snapshot(workdir / "checkpoints").items() if k != "checkpoint"} == {
      k: v for k, v in before.items() if k != "checkpoint"}  # the checkpoints themselves untouched
  with caplog.at_level(logging.INFO, logger="absl"):
    trainer.train(config_builder.build_config(dict(TINY, workdir=str(workdir), steps=6)),
                  strategy=make_two_replica_strategy())
  messages = " ".join(r.getMessage() for r in caplog.records)
  assert "was missing or damaged: rebuilt from the checkpoints on disk (ckpt-2, ckpt-4)" in messages
  assert "at step 4" in messages
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-6")


@pytest.mark.parametrize("damage", ["emptied state file", "emptied newest index", "newest index cut short",
                                    "emptied newest data file"])
def test_a_runs_own_settings_are_found_past_a_damaged_state_file_or_newest_checkpoint(trained_run, tmp_path,
                                                                                      damage):
  """An emptied state file hid the checkpoints (the rerun took the preset's batch size and learning rates); an
  emptied or cut-short newest index crashed the rerun, --dry_run and --mode=export before the run could move
  it aside. The settings come from the newest checkpoint that reads back, config.json or not."""
  workdir = copy_of_trained_run(trained_run, tmp_path / "run")  # TINY (rep, batch 8), checkpoints 2 and 4
  expected = checkpointing.load_config(str(workdir)).to_dict()
  os.remove(workdir / "config.json")  # only the checkpoints can say
  index = workdir / "checkpoints" / "ckpt-4.index"
  if damage == "emptied state file":
    (workdir / "checkpoints" / "checkpoint").write_text("")
  elif damage == "emptied newest index":
    index.write_bytes(b"")
  elif damage == "emptied newest data file":  # an IndexError inside TensorFlow's reader, not an OpError
    for data in (workdir / "checkpoints").glob("ckpt-4.data-*"):
      data.write_bytes(b"")
  else:
    index.write_bytes(index.read_bytes()[:len(index.read_bytes()) // 2])
  assert checkpointing.load_config(str(workdir)).to_dict() == expected
  if damage == "emptied state file":
    result = main_in_process(f"--workdir={workdir}", "--dry_run")
    assert result.returncode == 0 and "resuming" in result.stderr, result.stderr[-800:]
    assert json.loads(result.stdout)["train"]["batch_size"] == TINY["batch_size"] == 8


@pytest.mark.end_to_end
def test_another_runs_checkpoints_are_never_resumed_through_the_state_file_or_a_link(trained_run, tmp_path):
  other = copy_of_trained_run(trained_run, tmp_path / "b")  # checkpoints at steps 2 and 4
  before = _snapshot(other / "checkpoints")
  # A state file naming the other run's checkpoints: rebuilt from this run's own where it has some ...
  run = copy_of_trained_run(trained_run, tmp_path / "c")
  state = run / "checkpoints" / "checkpoint"
  state.write_text(state.read_text().replace('"ckpt-', f'"{other}/checkpoints/ckpt-'))
  line = checkpointing.repair_checkpoint_state(str(run / "checkpoints"))
  assert line.endswith("named checkpoints outside this run's folder: rebuilt from the checkpoints on disk "
                       "(ckpt-2, ckpt-4)")
  assert tf.train.latest_checkpoint(str(run / "checkpoints")) == str(run / "checkpoints" / "ckpt-4")
  # ... and refused in one line where it has none (nothing of the other run is touched).
  empty = tmp_path / "e" / "checkpoints"
  empty.mkdir(parents=True)
  (empty / "checkpoint").write_text(f'model_checkpoint_path: "{other}/checkpoints/ckpt-4"\n')
  result = main_in_process(*[f"--{k}={v}" for k, v in TINY.items()], f"--workdir={empty.parent}", "--steps=6")
  assert result.returncode == 2 and "names checkpoints outside this run" in result.stderr, result.stderr[-800:]
  (empty / "checkpoint").write_text('model_checkpoint_path: "ckpt-6"\n')  # its own, deleted by hand
  result = main_in_process(*[f"--{k}={v}" for k, v in TINY.items()], f"--workdir={empty.parent}", "--steps=6")
  assert result.returncode == 2 and "names ckpt-6, but no checkpoint of this run is on disk" in result.stderr
  # A checkpoints/ folder that is a link into the other run is refused before anything is written.
  linked = tmp_path / "d"
  linked.mkdir()
  os.symlink(other / "checkpoints", linked / "checkpoints")
  with pytest.raises(ValueError, match=r"checkpoints/ is a link into the run .*/b: this run would resume"):
    config_builder.build_config(dict(TINY, workdir=str(linked), steps=6))
  assert _snapshot(other / "checkpoints") == before
  # So is any other entry of a run linked into the other run: its sample grids, TensorBoard logs, config.
  for entry in ("samples", "tensorboard", "config.json"):
    linked = tmp_path / f"d_{entry}"
    linked.mkdir()
    os.symlink(other / entry, linked / entry)
    with pytest.raises(ValueError, match=rf"{entry}/? is a link into the run .*/b: this run would write into "):
      config_builder.build_config(dict(TINY, workdir=str(linked), steps=6))


@pytest.mark.end_to_end
def test_when_no_checkpoint_reads_back_the_run_is_refused_and_nothing_is_moved(trained_run, tmp_path, no_export):
  workdir = copy_of_trained_run(trained_run, tmp_path / "run")
  for name in os.listdir(workdir / "checkpoints"):
    if ".data" in name:
      path = workdir / "checkpoints" / name
      path.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])
  before = _snapshot(workdir)
  with pytest.raises(ValueError, match="no checkpoint in .* reads back .*to train this run again from step 0"):
    trainer.train(config_builder.build_config(dict(TINY, workdir=str(workdir), steps=6)),
                  strategy=make_two_replica_strategy())
  assert _snapshot(workdir) == before
  result = main_in_process("--mode=export", f"--workdir={workdir}")
  assert result.returncode == 2 and "reads back" in result.stderr and _snapshot(workdir) == before


@pytest.mark.end_to_end
def test_a_rerun_past_its_steps_and_an_ignored_init_from_say_so(trained_run, tmp_path, caplog, monkeypatch):
  workdir = copy_of_trained_run(trained_run, tmp_path / "run")  # at step 4
  monkeypatch.setattr(trainer.export_lib, "export_generator", lambda generator, cfg, export_dir, step=None: None)
  with caplog.at_level(logging.INFO, logger="absl"):
    metrics = trainer.train(config_builder.build_config(dict(TINY, workdir=str(workdir), steps=2,
                                                             init_from=str(tmp_path / "elsewhere"))),
                            strategy=make_two_replica_strategy())
  messages = " ".join(r.getMessage() for r in caplog.records)
  assert metrics == {} and "at step 4, not below --steps=2: nothing to train" in messages
  assert "--init_from=" in messages and "is ignored: --workdir=" in messages
  assert json.loads((workdir / "config.json").read_text())["train"]["init_from"] == ""  # the run's own, kept
  monkeypatch.setattr(trainer, "train", lambda cfg, strategy=None: {})
  assert "final: nothing trained" in main_in_process(f"--workdir={workdir}", "--steps=2").stdout


def test_sighup_asks_the_run_to_stop_like_sigterm():
  """A closed terminal or a dropped ssh connection: the run saves and stops instead of dying unsaved."""
  with trainer._StopRequests() as stop:  # pylint: disable=protected-access
    os.kill(os.getpid(), signal.SIGHUP)
    time.sleep(0.1)
    assert stop.signal_name == "SIGHUP"


def test_a_resume_names_the_settings_it_changes(trained_run):
  from mmd_gan_tf import checkpointing  # pylint: disable=import-outside-toplevel
  workdir = trained_run[0]
  saved = checkpointing.config_in_checkpoint(tf.train.latest_checkpoint(str(workdir / "checkpoints")))
  changed = config_builder.build_config(dict(TINY, workdir=str(workdir), steps=6, sigmas=["2.0"], rep_lambda=-1.0,
                                             critic_lr=2e-4))
  cfg, line = checkpointing.settled_config(saved, changed, idle=False)
  assert cfg is changed and line.startswith("resuming with changed settings (this run's own from here on): ")
  assert "loss.sigmas: [1.0] -> [2.0]" in line and "loss.rep_lambda: 1.0 -> -1.0" in line
  assert "train.steps" not in line and "workdir" not in line and "critic_lr" not in line  # logged when applied
  same = config_builder.build_config(dict(TINY, workdir=str(workdir), steps=6))
  assert checkpointing.settled_config(saved, same, idle=False) == (same, None)
  # Nothing to train: the recorded settings stay (they would apply to no step), and the line says so.
  cfg, line = checkpointing.settled_config(saved, changed, idle=True)
  assert json.loads(cfg.to_json()) == dict(saved, workdir=str(workdir), export_dir=changed.export_dir)
  assert line.startswith("nothing to train: the run keeps the settings it was trained with; not applied: ")
  assert "loss.sigmas: [1.0] -> [2.0]" in line and "optim.critic_lr: 0.0005 -> 0.0002" in line
  assert "train.steps" not in line and "workdir" not in line  # the budget was applied: nothing to train


@pytest.mark.end_to_end
def test_a_resume_with_nothing_to_train_records_no_new_settings(trained_run, tmp_path, caplog, no_export):
  """A run at --steps given other settings: config.json and the checkpoint keep the ones it was trained with
  (recording the new ones would claim what no step used, and the next resume would restore the old ones)."""
  workdir = copy_of_trained_run(trained_run, tmp_path / "run")  # at step 4
  before = dict(json.loads((workdir / "config.json").read_text()), workdir=str(workdir))  # the run is here now
  cfg = config_builder.build_config(dict(TINY, workdir=str(workdir), steps=3, rep_lambda=-1.0, critic_lr=2e-4))
  with caplog.at_level(logging.WARNING, logger="absl"):
    assert trainer.train(cfg, strategy=make_two_replica_strategy()) == {}
  assert json.loads((workdir / "config.json").read_text()) == before
  [line] = [r.getMessage() for r in caplog.records if "not applied" in r.getMessage()]
  assert "loss.rep_lambda: 1.0 -> -1.0" in line and "optim.critic_lr: 0.0005 -> 0.0002" in line
  assert "train.steps" not in line
  assert not any("this run's own from here on" in r.getMessage() for r in caplog.records)


def test_a_workdir_that_cannot_hold_a_run_is_refused_before_anything_is_created(tmp_path):
  from mmd_gan_tf import checkpointing  # pylint: disable=import-outside-toplevel
  too_long = tmp_path.joinpath(*["d" * 200] * 22)  # ~4.4 KB: over PATH_MAX with the run's own files
  with pytest.raises(ValueError, match="--workdir is too long for this file system"):
    checkpointing.prepare_workdir(str(too_long))
  with pytest.raises(ValueError, match="too long"):
    checkpointing.prepare_workdir(str(tmp_path / ("n" * 300)))  # one name over NAME_MAX
  assert os.listdir(tmp_path) == []  # no parent folders left behind
  os.symlink(tmp_path / "s3", tmp_path / "s4")
  os.symlink(tmp_path / "nowhere", tmp_path / "s3")
  with pytest.raises(ValueError, match="is a symbolic link to nothing"):
    checkpointing.prepare_workdir(str(tmp_path / "s4"))


@pytest.mark.end_to_end
@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_workdir_deleted_or_replaced_mid_run_stops_the_run_without_recreating_it(tmp_path, monkeypatch, how):
  workdir = tmp_path / "run"
  real_log = trainer._log_step  # pylint: disable=protected-access

  def log_then_remove(run, writer, progress, values, current, seconds_left):
    real_log(run, writer, progress, values, current, seconds_left)
    if current == 2:
      import shutil  # pylint: disable=import-outside-toplevel
      shutil.rmtree(workdir)
      if how == "replaced":
        (workdir / "checkpoints").mkdir(parents=True)
        (workdir / checkpointing.LOCK_FILE).write_text("someone else\n")

  monkeypatch.setattr(trainer, "_log_step", log_then_remove)
  cfg = config_builder.build_config(dict(TINY, workdir=str(workdir), steps=6))
  with pytest.raises(trainer.WorkdirLost, match=f"--workdir={workdir} was deleted, moved or replaced.*step 2"):
    trainer.train(cfg, strategy=make_two_replica_strategy())
  if how == "deleted":
    assert not workdir.exists()
  else:
    assert sorted(p.name for p in workdir.iterdir()) == [checkpointing.LOCK_FILE, "checkpoints"]
    assert not list((workdir / "checkpoints").iterdir())


def test_a_resume_keeps_the_runs_own_settings_and_changes_only_the_flags_given(trained_run, tmp_path):
  """`python main.py --workdir=RUN` continues RUN as it was trained (not with the preset's settings)."""
  workdir = copy_of_trained_run(trained_run, tmp_path / "run")
  saved = json.loads((workdir / "config.json").read_text())
  result = main_in_process("--dry_run", f"--workdir={workdir}")
  assert result.returncode == 0, result.stderr
  resumed = json.loads(result.stdout)
  assert resumed == dict(saved, workdir=str(workdir))  # TINY_RUN's loss, width, batch, not the preset's
  changed = json.loads(main_in_process("--dry_run", f"--workdir={workdir}", "--critic_lr=0.01").stdout)
  assert changed == dict(saved, workdir=str(workdir), optim=dict(saved["optim"], critic_lr=0.01))
  fresh = json.loads(main_in_process("--dry_run", f"--workdir={tmp_path / 'new'}").stdout)
  assert (fresh["loss"]["name"], fresh["train"]["batch_size"]) == ("rep_b", 32)  # a new run: the preset
  refused = main_in_process("--dry_run", f"--workdir={workdir}", "--width=0.5")  # what the run would refuse
  assert refused.returncode == 2 and refused.stdout == ""
  assert "holds a checkpoint of a different run" in refused.stderr and "model.width" in refused.stderr


@pytest.mark.end_to_end
def test_a_folder_that_loses_write_permission_is_one_line_and_a_failed_sample_grid_only_a_warning(
    tmp_path, monkeypatch, caplog):
  workdir = tmp_path / "run"
  real_save, real_samples = tf.train.CheckpointManager.save, trainer._write_samples  # pylint: disable=protected-access

  def save(self, checkpoint_number=None, **kwargs):
    if checkpoint_number == 4:
      raise tf.errors.PermissionDeniedError(None, None, f"{workdir}/checkpoints/ckpt-4_temp; Operation not permitted")
    return real_save(self, checkpoint_number=checkpoint_number, **kwargs)

  def samples(nets, cfg, fixed_z, workdir_, writer, step):
    if step == 2:  # TensorFlow's file writer raises its own error (an unwritable samples/ killed the run)
      raise tf.errors.PermissionDeniedError(None, None, f"{workdir_}/samples/step_0000002.png.tmp; Permission denied")
    if step == 4:
      raise PermissionError(13, "Permission denied", f"{workdir_}/samples/step_0000004.png.tmp")
    return real_samples(nets, cfg, fixed_z, workdir_, writer, step)

  monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
  monkeypatch.setattr(trainer, "_write_samples", samples)
  cfg = config_builder.build_config(dict(TINY, workdir=str(workdir), steps=6))
  with caplog.at_level(logging.WARNING):
    with pytest.raises(trainer.DiskFullError, match=r"cannot checkpoint step 4 .*Operation not permitted.*ckpt-2"):
      trainer.train(cfg, strategy=make_two_replica_strategy())
  assert any("step 2: no sample grid written" in r.getMessage() for r in caplog.records)
  assert any("step 4: no sample grid written" in r.getMessage() for r in caplog.records)
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-2")  # trained on after step 2


def test_a_state_file_naming_a_checkpoint_without_its_index_says_so(trained_run, tmp_path):
  from mmd_gan_tf import checkpointing as checkpointing_lib  # pylint: disable=import-outside-toplevel
  workdir = copy_of_trained_run(trained_run, tmp_path / "run")  # checkpoints at steps 2 and 4
  os.remove(workdir / "checkpoints" / "ckpt-4.index")
  line = checkpointing_lib.repair_checkpoint_state(str(workdir / "checkpoints"))
  assert line.endswith("checkpoint names ckpt-4, whose index file is missing: rebuilt from the checkpoints on "
                       "disk (ckpt-2)")
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-2")


def test_a_garbled_state_file_is_rebuilt_without_tensorflows_warning_lines(tmp_path):
  """TensorFlow logs a ParseError and "Checkpoint ignored" (each twice on the console) for a garbled state file,
  at every look at it: only the project's own line names it."""
  from mmd_gan_tf import checkpointing as checkpointing_lib  # pylint: disable=import-outside-toplevel
  checkpoint_dir = tmp_path / "checkpoints"
  tf.train.Checkpoint(v=tf.Variable(1.0)).save(str(checkpoint_dir / "ckpt"))
  (checkpoint_dir / "checkpoint").write_bytes(b"garbage\x00\x01")
  records = []
  handler = logging.Handler(logging.DEBUG)
  handler.emit = records.append
  tf.get_logger().addHandler(handler)
  try:
    checkpointing_lib.refuse_outside_state(str(checkpoint_dir))  # main.py --mode=export looks first
    line = checkpointing_lib.repair_checkpoint_state(str(checkpoint_dir))
  finally:
    tf.get_logger().removeHandler(handler)
  assert line.endswith("checkpoint was missing or damaged: rebuilt from the checkpoints on disk (ckpt-1)")
  assert [r.getMessage() for r in records] == []
  assert tf.train.latest_checkpoint(str(checkpoint_dir)).endswith("ckpt-1")


@pytest.mark.end_to_end
def test_init_from_with_another_optimizer_says_so_in_one_line(trained_run, tmp_path, caplog, no_export):
  cfg = config_builder.build_config(dict(TINY, workdir=str(tmp_path / "run"), steps=6, optimizer="sgd",
                                         init_from=str(trained_run[0])))
  with caplog.at_level(logging.WARNING):
    trainer.train(cfg, strategy=make_two_replica_strategy())
  lines = [r.getMessage() for r in caplog.records if "optimizer state" in r.getMessage()]
  assert lines == [f"--init_from={trained_run[0]} trained with --optimizer=adam: its optimizer state is left out, "
                   "--optimizer=sgd starts from a fresh state"]
  assert not [r for r in caplog.records if "could not be found" in r.getMessage()]


@pytest.mark.end_to_end
def test_a_signal_during_the_final_export_lets_the_run_finish(tmp_path, monkeypatch, caplog):
  assert threading.current_thread() is threading.main_thread()
  real_export = trainer.export

  def export(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return real_export(*args, **kwargs)

  monkeypatch.setattr(trainer, "export", export)
  cfg = config_builder.build_config(dict(TINY, workdir=str(tmp_path / "run"), steps=2))
  with caplog.at_level(logging.WARNING):
    trainer.train(cfg, strategy=make_two_replica_strategy())  # no Interrupted: every step was saved
  assert any("SIGTERM received after the last step" in r.getMessage() for r in caplog.records)
  assert (tmp_path / "run" / "export" / "saved_model.pb").exists()


@pytest.mark.parametrize("name, folder", [("samples", False), ("eval.jsonl", True), ("checkpoints", False)])
def test_a_file_or_folder_in_the_way_of_the_runs_own_is_named_before_anything_is_written(tmp_path, name, folder):
  from mmd_gan_tf import checkpointing as checkpointing_lib  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / name).mkdir() if folder else (workdir / name).write_text("mine")
  with pytest.raises(ValueError, match=f"{workdir / name} is {'' if folder else 'not '}a folder, where the run "
                                       f"writes its {name}"):
    checkpointing_lib.prepare_workdir(str(workdir))
  assert sorted(p.name for p in workdir.iterdir()) == [name]


@pytest.mark.parametrize("seconds", ["NaN", "-1e9", "Infinity"])
def test_a_training_time_record_that_is_not_a_time_counts_from_zero_with_a_warning(tmp_path, caplog, seconds):
  (tmp_path / checkpointing.PROGRESS_FILE).write_text('{"step": 6, "train_seconds": %s}' % seconds)
  with caplog.at_level(logging.WARNING):
    assert checkpointing.read_train_seconds(str(tmp_path), 6) == 0.0
  assert "not a time" in caplog.text and "counts from 0 again" in caplog.text
  (tmp_path / checkpointing.PROGRESS_FILE).write_text('{"step": 6, "train_seconds": 12.5}')
  assert checkpointing.read_train_seconds(str(tmp_path), 6) == 12.5
  # Deleted: a resumed run says so too (it counted from 0 without a word); a run started with --init_from has
  # no record of its own yet.
  (tmp_path / checkpointing.PROGRESS_FILE).unlink()
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    assert checkpointing.read_train_seconds(str(tmp_path), 6, resumed=False) == 0.0
    assert not caplog.text
    assert checkpointing.read_train_seconds(str(tmp_path), 6) == 0.0
  assert "has no training time for step 6 (it is missing): the training time counts from 0 again" in caplog.text



def test_a_second_ctrl_c_stops_at_once_only_until_the_stop_is_saved():
  stop = trainer._StopRequests()  # pylint: disable=protected-access
  stop._handle(signal.SIGINT, None)  # pylint: disable=protected-access
  assert stop.signal_name == "SIGINT"
  with pytest.raises(KeyboardInterrupt):
    stop._handle(signal.SIGINT, None)  # pylint: disable=protected-access
  stop.saved = True  # the loop saved the interrupted step: a late Ctrl-C changes nothing (exit 75, not 130)
  stop._handle(signal.SIGINT, None)  # pylint: disable=protected-access


def test_signals_during_one_tensorflow_call_are_taken_in_their_order_and_each_counts():
  """Python runs its handlers between calls, once per kind and in signal-number order: a SIGTERM then a Ctrl-C
  during one long step ran as Ctrl-C then SIGTERM (a stop saved, exit 75), and a second Ctrl-C in that step was
  lost. The wakeup pipe holds them as they came."""
  assert threading.current_thread() is threading.main_thread()
  with trainer._StopRequests() as stop:  # pylint: disable=protected-access
    os.kill(os.getpid(), signal.SIGTERM)  # a real signal reaches the handler through the pipe
    time.sleep(0.1)
    assert stop.signal_name == "SIGTERM"
  for first in (signal.SIGTERM, signal.SIGINT):
    with trainer._StopRequests() as stop:  # pylint: disable=protected-access
      os.write(stop._pipe[1], bytes([first, signal.SIGINT]))  # pylint: disable=protected-access
      with pytest.raises(KeyboardInterrupt):  # the Ctrl-C after the first signal: stop at once
        stop._handle(signal.SIGINT, None)  # pylint: disable=protected-access
      assert stop.signal_name == first.name
      stop._handle(signal.SIGTERM, None)  # pylint: disable=protected-access  # already taken: nothing more
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and signal.set_wakeup_fd(-1) == -1


def test_a_lock_that_is_a_symbolic_link_is_refused_and_its_target_kept(tmp_path):
  """Writing the holder's name through a `.lock` link overwrote the file it pointed to."""
  precious = tmp_path / "precious.txt"
  precious.write_text("data\n")
  for name, target in (("run", precious), ("dangling", tmp_path / "nothing")):
    workdir = tmp_path / name
    workdir.mkdir()
    (workdir / ".lock").symlink_to(target)
    with pytest.raises(ValueError, match=rf"--workdir=.*{name}: its \.lock is a symbolic link"):
      checkpointing.WorkdirLock(str(workdir))
  assert precious.read_text() == "data\n" and not (tmp_path / "nothing").exists()


def test_a_users_file_named_lock_is_refused_and_kept(tmp_path):
  """A `.lock` with other contents is not a run's lock: refused, not overwritten with the holder's name."""
  workdir = tmp_path / "notes"
  workdir.mkdir()
  (workdir / ".lock").write_text("my precious\n")
  with pytest.raises(ValueError, match=r"--workdir=.*notes: its \.lock is not a run's lock \(it holds 'my precious'"):
    checkpointing.WorkdirLock(str(workdir))
  assert (workdir / ".lock").read_text() == "my precious\n"
  result = main_in_process(f"--workdir={workdir}", "--steps=2", "--inception_weights=none")
  assert result.returncode == 2 and "is not a run's lock" in result.stderr, result.stderr[-2000:]
  assert (workdir / ".lock").read_text() == "my precious\n" and sorted(os.listdir(workdir)) == [".lock"]
  # A run's own lock (left by a killed run, or emptied) is taken over as before.
  for left in ("PID 12 on host since 2026-12-07 01:02:03\n", ""):
    (workdir / ".lock").write_text(left)
    checkpointing.WorkdirLock(str(workdir)).release()


def test_a_users_best_kid_folder_is_not_taken_for_a_run(tmp_path):
  """The evaluation writes best_kid/checkpoint whatever is there: a user's file of that name was overwritten."""
  workdir = tmp_path / "mine"
  (workdir / "best_kid").mkdir(parents=True)
  (workdir / "best_kid" / "checkpoint").write_text("my notes\n")
  with pytest.raises(ValueError, match=r"holds best_kid/ but no config.json and no checkpoint"):
    config_builder.build_config(dict(TINY, workdir=str(workdir), steps=2))
  assert (workdir / "best_kid" / "checkpoint").read_text() == "my notes\n"


@pytest.mark.parametrize("files, message", [
    ({"config.json": '{"notes": "mine"}'}, "holds a config.json that is not a run's config and no checkpoint"),
    ({"config.json": "[1]"}, "holds a config.json that is not a run's config"),
    ({"config.json": '{"data": {"image_size": 48}}'}, "holds a config.json that is not a run's config"),
    ({"progress.json": "mine"}, "holds progress.json but no config.json and no checkpoint"),
    ({"eval.jsonl": "notes"}, "holds eval.jsonl but no config.json"),
])
def test_a_users_folder_is_not_taken_for_a_run_and_its_files_are_kept(tmp_path, files, message):
  """A folder with a config.json of the user's (or progress.json, eval.jsonl) and no checkpoint was "resumed"
  and its files overwritten; a non-object config.json was a traceback."""
  workdir = tmp_path / "mine"
  workdir.mkdir()
  for name, text in files.items():
    (workdir / name).write_text(text)
  with pytest.raises(ValueError, match=message):
    config_builder.build_config(dict(TINY, workdir=str(workdir), steps=2))
  with pytest.raises(ValueError, match=message):
    checkpointing.prepare_workdir(str(workdir))
  result = main_in_process(f"--workdir={workdir}", "--dry_run") if "notes" in files.get("config.json", "") else None
  assert result is None or (result.returncode == 2 and message in result.stderr
                            and "resuming" not in result.stderr), result and result.stderr[-600:]
  assert {p.name: p.read_text() for p in workdir.iterdir()} == files
  # A run's own config.json (a run stopped before its first checkpoint) is resumed as before.
  config_builder.build_config(dict(TINY, workdir=str(tmp_path / "fresh"), steps=2))
  own = tmp_path / "own"
  own.mkdir()
  (own / "config.json").write_text(config_builder.build_config(dict(TINY, workdir=str(own))).to_json())
  checkpointing.refuse_foreign_files(str(own))


def test_sigterm_during_an_export_is_one_line_and_resumable(trained_run, monkeypatch):
  """SIGTERM during --mode=export killed it with 143 and nothing said."""
  sys.path.insert(0, str(ROOT))
  import main  # pylint: disable=import-outside-toplevel

  def export_until_signalled(cfg, mode, export_dir):  # pylint: disable=unused-argument
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)  # the handler interrupts this

  monkeypatch.setattr(main, "_export", export_until_signalled)
  before = signal.getsignal(signal.SIGTERM)
  result = main_in_process("--mode=export", f"--workdir={trained_run[0]}")
  assert result.returncode == 75, result.stderr[-600:]
  assert "interrupted: the export of" in result.stderr and "run the same command again" in result.stderr
  assert signal.getsignal(signal.SIGTERM) == before  # the process's own handling comes back


def test_a_damaged_data_file_mid_run_is_one_line():
  """A TFRecord shard with flipped bytes (its size unchanged) was a DataLossError traceback at step 1."""
  cfg = config_builder.build_config(dict(TINY, workdir="/tmp/unused"), check_library=False)

  def advance(current):
    raise tf.errors.DataLossError(None, None, "corrupted record at 1024\nmore lines")

  with pytest.raises(ValueError, match=r"^step 5: a data file is damaged \(corrupted record at 1024\); prepare "
                                       r"the data again .* it resumes from the last checkpoint$"):
    trainer._files_gone_is_one_line(advance, cfg)(4)  # pylint: disable=protected-access


def test_a_hard_linked_copy_of_a_run_never_appends_to_the_originals_eval_log(tmp_path):
  """`cp -al A B` then resuming B with KID appended B's record to A's eval.jsonl (one inode, two names)."""
  from mmd_gan_tf import evaluation  # pylint: disable=import-outside-toplevel
  original, copy = tmp_path / "a" / "eval.jsonl", tmp_path / "b" / "eval.jsonl"
  original.parent.mkdir()
  copy.parent.mkdir()
  original.write_text('{"step": 2, "kid": 0.5}\n')
  os.link(original, copy)
  evaluator = evaluation.Evaluator.__new__(evaluation.Evaluator)  # only its log: no Inception network needed
  evaluator._log_path, evaluator._num_real = str(copy), 4  # pylint: disable=protected-access
  evaluator._cfg = config_builder.build_config(dict(TINY, workdir=str(tmp_path / "b")), check_library=False)  # pylint: disable=protected-access
  evaluator.log(4, 1.0, {"eval/kid": 0.25})
  assert original.read_text() == '{"step": 2, "kid": 0.5}\n'
  assert [json.loads(line)["step"] for line in copy.read_text().splitlines()] == [2, 4]
  assert os.stat(copy).st_nlink == 1 and os.stat(original).st_nlink == 1
  files.unshare(str(tmp_path / "missing"))  # nothing there: nothing to do


def test_a_hard_linked_copy_of_a_run_takes_a_lock_of_its_own(tmp_path):
  """`cp -al A B` shared A's .lock: B was refused as "in use" by A's own process."""
  original, copy = tmp_path / "a", tmp_path / "b"
  original.mkdir()
  copy.mkdir()
  holder = checkpointing.WorkdirLock(str(original))
  try:
    os.link(original / ".lock", copy / ".lock")
    checkpointing.WorkdirLock(str(copy)).release()  # not refused
    assert holder.held() and os.stat(original / ".lock").st_nlink == 1
    with pytest.raises(ValueError, match="is in use by PID"):  # the original is still locked
      checkpointing.WorkdirLock(str(original))
  finally:
    holder.release()


def test_a_folder_with_only_a_runs_folder_names_or_a_run_without_its_checkpoints_is_refused(trained_run, tmp_path):
  """A user's checkpoints/ and samples/ files were overwritten; a run whose checkpoints/ was deleted restarted
  at step 0 saying it resumed, with a second history in eval.jsonl."""
  user = tmp_path / "user"
  (user / "checkpoints").mkdir(parents=True)
  (user / "samples").mkdir()
  (user / "checkpoints" / "checkpoint").write_text("mine")
  (user / "samples" / "step_0000002.png").write_text("mine")
  with pytest.raises(ValueError, match=r"holds samples/ but no config.json and no checkpoint"):
    config_builder.build_config(dict(TINY, workdir=str(user), steps=2))
  assert (user / "checkpoints" / "checkpoint").read_text() == "mine"
  run = copy_of_trained_run(trained_run, tmp_path / "run")
  for path in (run / "checkpoints").iterdir():
    if path.is_file():
      path.unlink()
  with pytest.raises(ValueError, match=r"has no checkpoint, but its progress.json says it trained to step 4: its "
                                       r"checkpoints were deleted or moved"):
    config_builder.build_config(dict(TINY, workdir=str(run), steps=6))


def test_unreadable_checkpoints_are_set_aside_beside_a_users_file_named_corrupt(tmp_path):
  """A file (or a link) already named checkpoints/corrupt is kept: the unreadable checkpoint goes to
  corrupt-2/ instead of failing with 'File exists'."""
  directory = tmp_path / "checkpoints"
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable([1.0, 2.0])), str(directory), 3)
  manager.save(checkpoint_number=2)
  newest = manager.save(checkpoint_number=4)
  data = pathlib.Path(newest + ".data-00000-of-00001")
  data.write_bytes(data.read_bytes()[:3])  # cut short
  (directory / "corrupt").write_text("the user's notes")
  os.symlink(tmp_path, directory / "corrupt-2")  # a link is not followed either
  moved = checkpointing.quarantine_unreadable(str(directory))
  assert [(os.path.basename(prefix), folder) for prefix, _, folder in moved] == [("ckpt-4", "corrupt-3")]
  assert (directory / "corrupt").read_text() == "the user's notes"
  assert (directory / "corrupt-3" / data.name).exists() and not data.exists()
  assert tf.train.latest_checkpoint(str(directory)).endswith("ckpt-2")


@pytest.mark.parametrize("folder", ["tensorboard", "lr_adaptation"])
def test_a_users_tensorboard_folder_is_not_taken_for_a_run(tmp_path, folder):
  """A folder holding tensorboard/ event files of the user's (no config.json, no checkpoint) was trained in, and
  the run rewrote those files, dropping their steps after 0 as if they were its own."""
  workdir = tmp_path / "mine"
  (workdir / folder).mkdir(parents=True)
  (workdir / folder / "events.out.tfevents.1.host").write_bytes(b"my experiment")
  with pytest.raises(ValueError, match=rf"holds {folder}/ but no config.json and no checkpoint"):
    config_builder.build_config(dict(TINY, workdir=str(workdir), steps=2))
  assert (workdir / folder / "events.out.tfevents.1.host").read_bytes() == b"my experiment"


def test_fifos_where_files_are_read_are_one_line_not_a_hang(tmp_path):
  """A FIFO as --inception_weights, a checkpoint index, a grid to replace or a run's lock: each read waited
  forever (and main.py then ignored SIGTERM)."""
  from mmd_gan_tf.metrics import inception_weights  # pylint: disable=import-outside-toplevel
  fifo = tmp_path / "w.npz"
  os.mkfifo(fifo)
  with pytest.raises(ValueError, match=r"--inception_weights=.*w.npz is not a regular file"):
    inception_weights.load_inception_weights(str(fifo))
  with pytest.raises(ValueError, match=r"^--inception_weights=.*w.npz is not a regular file"):
    config_builder.build_config(dict(TINY, workdir=str(tmp_path / "run"), inception_weights=str(fifo),
                                     eval_every=2))
  assert not (tmp_path / "run").exists()
  os.mkfifo(tmp_path / "ckpt-2.index")
  assert not checkpointing.readable(str(tmp_path / "ckpt-2"))
  os.mkfifo(tmp_path / "fifo.ckpt")  # the prefix itself (sn_report.py --checkpoint=FIFO)
  assert not checkpointing.readable(str(tmp_path / "fifo.ckpt"))
  os.mkfifo(tmp_path / "grid.png")
  assert summaries.png_text(str(tmp_path / "grid.png")) == {}  # so sample.py --out refuses it as not its own
  (tmp_path / "locked").mkdir()
  os.mkfifo(tmp_path / "locked" / ".lock")
  with pytest.raises(ValueError, match=r"its \.lock is not a regular file"):
    checkpointing.WorkdirLock(str(tmp_path / "locked"))


def test_a_folder_holding_a_run_is_not_a_new_run(trained_run, tmp_path):
  """A run started in a folder that held another run made that run impossible to resume (it was then inside a
  run)."""
  copy_of_trained_run(trained_run, tmp_path / "runs" / "runA")
  with pytest.raises(ValueError, match=r"^--workdir=.*runs holds the run .*runA: a run's folder is its own; give "
                                       r"a new folder \(e\.g\. .*runs/new_run\)$"):
    config_builder.build_config(dict(TINY, workdir=str(tmp_path / "runs"), steps=2))
  config_builder.build_config(dict(TINY, workdir=str(tmp_path / "runs" / "runA"), steps=6))  # it still resumes
