"""KID during training by default: best effort without weights, held-out real images, eval.jsonl, time budgets."""

import dataclasses
import json
import logging
import os
import urllib.error

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from helpers import asset_path, make_two_replica_strategy
from flags import build as config_builder
from mmd_gan_tf import trainer

TINY = dict(dataset="shapes", loss="rep", width=0.125, batch_size=8, log_every=2, sample_every=2,
            checkpoint_every=2)


def _cfg(workdir, **flags):
  return config_builder.build_config(dict(TINY, workdir=str(workdir), **flags))


def test_presets_turn_kid_on_as_best_effort():
  cfg = _cfg("/tmp/unused")
  assert cfg.eval.eval_every == 500 and cfg.eval.optional and cfg.eval.num_samples == 256
  paper = config_builder.build_config({"dataset": "cifar10", "loss": "rep"})
  assert paper.eval.eval_every == 5000 and paper.eval.optional and paper.eval.num_samples == 2000
  # Asking for evaluation (or naming weights) makes missing weights an error instead.
  assert not _cfg("/tmp/unused", eval_every=10).eval.optional
  assert not _cfg("/tmp/unused", inception_weights="w.npz").eval.optional
  assert not _cfg("/tmp/unused", eval_every_minutes=1.0).eval.optional


def test_inception_weights_none_turns_kid_off_or_is_refused_where_kid_is_asked_for():
  cfg = _cfg("/tmp/unused", inception_weights="none")
  assert cfg.eval.eval_every == 0 and cfg.eval.eval_every_minutes == 0 and not cfg.eval.lr_adaptation
  with pytest.raises(ValueError, match="--eval_every=10 needs the Inception weights"):
    _cfg("/tmp/unused", inception_weights="none", eval_every=10)
  with pytest.raises(ValueError, match="add --lr_adaptation=false"):
    _cfg("/tmp/unused", inception_weights="none", loss="smmd")
  assert not _cfg("/tmp/unused", inception_weights="none", loss="smmd", lr_adaptation=False).eval.lr_adaptation


@pytest.mark.end_to_end
def test_missing_weights_one_line_and_training_goes_on_to_its_time_limit_and_exports(tmp_path, caplog,
                                                                                   monkeypatch):
  # The preset's best-effort KID (the test cache is empty) tries the download once; offline (a fake download
  # that fails as urllib does without a network), one line says how to get the weights and training goes on.
  # 6 ms of training: it stops after the first step.
  from mmd_gan_tf.metrics import inception_weights  # pylint: disable=import-outside-toplevel
  tried = []

  def offline(url, destination):
    tried.append((url, destination))
    raise urllib.error.URLError("Temporary failure in name resolution")

  monkeypatch.delenv(inception_weights.NO_DOWNLOAD_ENV)
  monkeypatch.setattr(inception_weights, "_download", offline)
  # An earlier in-process main.py (the session's trained run) may have left absl's verbosity at WARNING.
  from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
  verbosity = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.INFO)
  cfg = _cfg(tmp_path / "run", steps=1000, max_train_minutes=1e-4)
  try:
    with caplog.at_level(logging.INFO):
      trainer.train(cfg, strategy=make_two_replica_strategy())
  finally:
    absl_logging.set_verbosity(verbosity)
  assert [url for url, _ in tried] == [inception_weights.INCEPTION_URL]
  lines = [r.getMessage() for r in caplog.records if "KID evaluation" in r.getMessage()]
  assert len(lines) == 1 and "--inception_weights" in lines[0] and "\n" not in lines[0]
  assert any("--max_train_minutes=0.0001 reached: stopping" in r.getMessage() for r in caplog.records)
  assert not os.path.exists(tmp_path / "run" / "eval.jsonl")
  progress = json.load(open(tmp_path / "run" / "progress.json", encoding="utf-8"))
  assert progress["step"] == 1
  assert os.path.exists(tmp_path / "run" / "export" / "saved_model.pb")


def test_lr_adaptation_without_weights_is_one_line_naming_the_file(tmp_path):
  """Arbel's smmd recipe adapts its rates from KID: without weights it stops instead of training at constant
  rates (the preset's KID being best effort does not make the adaptation optional)."""
  cfg = _cfg(tmp_path / "run", steps=2, loss="smmd", arch="li", width=0.0625)
  assert cfg.eval.optional and cfg.eval.lr_adaptation
  with pytest.raises(ValueError, match=r"inception-2015-12-05\.tgz.*--lr_adaptation=false") as error:
    trainer.train(cfg, strategy=make_two_replica_strategy())
  assert "\n" not in str(error.value)
  assert not (tmp_path / "run").exists()  # refused before its first write: no empty run directory left


def test_asked_for_kid_without_weights_is_an_error(tmp_path):
  cfg = _cfg(tmp_path / "run", steps=2, eval_every=1)
  with pytest.raises(ValueError, match=r"^--eval_every=1 computes KID .*not cached.*--eval_every=0") as error:
    trainer.train(cfg, strategy=make_two_replica_strategy())
  assert "\n" not in str(error.value)  # main.py prints a ValueError as its one line
  assert not (tmp_path / "run").exists()
  (tmp_path / "kept").mkdir()  # a directory the run did not create stays, lock file aside
  with pytest.raises(ValueError, match="not cached"):
    trainer.train(dataclasses.replace(cfg, workdir=str(tmp_path / "kept")), strategy=make_two_replica_strategy())
  assert (tmp_path / "kept").is_dir()


@pytest.mark.end_to_end
def test_kid_against_held_out_images_is_logged_per_step(tmp_path, no_export):
  """Real Inception features in a 2-replica run: KID of held-out images in eval.jsonl and TensorBoard, the
  best-KID checkpoint, the real features cached once."""
  weights = asset_path("inception/fid_inception_v3_2015_12_05.npz")
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
  np.savez(tmp_path / "data.npz", x_train=images, x_test=255 - images)
  cfg = _cfg(tmp_path / "run", dataset="npz", data_dir=str(tmp_path / "data.npz"), eval_split="test",
             steps=4, eval_every=2, eval_num_samples=8, kid_subset_size=4, kid_subsets=2,
             inception_weights=str(weights))
  cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, feature_cache_dir=str(tmp_path / "cache")))
  assert cfg.eval.real_split == "test" and cfg.eval.eval_at_start
  trainer.train(cfg, strategy=make_two_replica_strategy())
  records = [json.loads(line) for line in open(tmp_path / "run" / "eval.jsonl", encoding="utf-8")]
  assert [r["step"] for r in records] == [1, 2, 4]  # the baseline after step 1, then every 2 steps
  seconds = [r["train_seconds"] for r in records]
  assert all(s > 0 for s in seconds) and seconds == sorted(seconds)
  assert all(np.isfinite(r["kid"]) and r["kid_std"] >= 0 and r["num_real"] == 8 for r in records)
  progress = json.load(open(tmp_path / "run" / "progress.json", encoding="utf-8"))
  assert progress["step"] == 4 and progress["train_seconds"] >= seconds[-1]
  # TensorBoard has the same scores and the best so far; the best checkpoint is kept.
  acc = event_accumulator.EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"tensors": 0})
  acc.Reload()
  read = lambda tag: [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
  kids = read("eval/kid")
  assert kids == pytest.approx([r["kid"] for r in records])
  assert read("eval/best_kid")[-1] == pytest.approx(min(kids))
  assert tf.train.latest_checkpoint(str(tmp_path / "run" / "best_kid")) is not None
  assert len(os.listdir(tmp_path / "cache" / "features")) == 1  # the real features, cached once


def test_eval_clock_is_due_once_per_crossed_interval():
  clock = trainer._EvalClock(60.0, train_seconds=90.0)  # resumed at 1.5 min: next at 2 min
  assert [clock.due(s) for s in (100, 119, 121, 130, 185, 250)] == [False, False, True, False, True, True]
  never = trainer._EvalClock(0.0, 0.0)
  assert not any(never.due(s) for s in (0, 1e6))


@pytest.mark.end_to_end
def test_a_damaged_best_kid_checkpoint_or_eval_log_is_repaired_on_resume(tmp_path, fake_inception, caplog,
                                                                         monkeypatch, no_export):
  """A crash can cut eval.jsonl's last line, and best_kid/ can be damaged or deleted: the resumed run sets an
  unreadable best checkpoint aside, tracks the best KID anew (so the next evaluation saves one) and keeps each
  eval.jsonl record on a line of its own."""
  cfg = _cfg(tmp_path / "run", steps=2, eval_every=2, eval_num_samples=8, kid_subset_size=4, kid_subsets=2,
             eval_at_start=False)
  trainer.train(cfg, strategy=make_two_replica_strategy())
  best = tmp_path / "run" / "best_kid"
  data = next(best.glob("ckpt-2.data-*"))
  data.write_bytes(data.read_bytes()[:10])  # truncated
  log = tmp_path / "run" / "eval.jsonl"
  log.write_text(log.read_text() + '{"step": 3, "tra')  # a line cut by a crash
  from mmd_gan_tf.metrics import training_eval  # pylint: disable=import-outside-toplevel
  worse = {"kid": tf.constant(9.0, tf.float64), "kid_std": tf.constant(0.0, tf.float64)}
  monkeypatch.setattr(training_eval, "generator_scores", lambda *args, **kwargs: worse)  # above the recorded best
  with caplog.at_level(logging.WARNING):
    trainer.train(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=4)),
                  strategy=make_two_replica_strategy())
  messages = " ".join(r.getMessage() for r in caplog.records)
  assert "best-KID checkpoint" in messages and "tracked again" in messages
  assert (best / "corrupt" / "ckpt-2.index").exists()
  assert os.path.basename(tf.train.latest_checkpoint(str(best))) == "ckpt-4"  # the next evaluation saved one
  lines = log.read_text().splitlines()
  assert json.loads(lines[0])["step"] == 2 and json.loads(lines[-1])["step"] == 4 and len(lines) == 3


def test_a_run_trained_without_kid_resumes_with_kid_and_lr_adaptation(tmp_path, fake_inception, no_export):
  """The evaluation's state (best KID, lr adaptation) is not in a KID-less run's checkpoints: it starts afresh."""
  off = _cfg(tmp_path / "run", steps=2, inception_weights="none")
  trainer.train(off, strategy=make_two_replica_strategy())
  on = _cfg(tmp_path / "run", steps=4, eval_every=2, eval_num_samples=8, kid_subset_size=4, kid_subsets=2,
            eval_at_start=False, lr_adaptation=True, lr_adaptation_every=2, lr_adaptation_samples=8)
  trainer.train(on, strategy=make_two_replica_strategy())
  assert os.path.basename(tf.train.latest_checkpoint(str(tmp_path / "run" / "best_kid"))) == "ckpt-4"
  assert [json.loads(line)["step"] for line in (tmp_path / "run" / "eval.jsonl").read_text().splitlines()] == [4]


def test_more_held_out_images_than_there_are_is_one_line_naming_the_flag(tmp_path):
  from helpers import FakeInception, _FakeInceptionWeights  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import evaluation  # pylint: disable=import-outside-toplevel
  path = tmp_path / "few.npz"
  rng = np.random.default_rng(0)
  np.savez(path, x_train=rng.integers(0, 256, (8, 32, 32, 3), np.uint8),
           x_test=rng.integers(0, 256, (6, 32, 32, 3), np.uint8))
  cfg = config_builder.build_config(dict(dataset="npz", data_dir=str(path), eval_split="test", eval_num_samples=8,
                                         eval_num_real=8, kid_subset_size=4, workdir=str(tmp_path / "run"),
                                         eval_every=10, batch_size=8))
  with pytest.raises(ValueError, match=r"^--eval_num_real=8: too many for the held-out real images of KID \(data_dir "
                     r".*few.npz' has 6 images .*fewer than one batch of 8\); lower --eval_num_real"):
    evaluation.Evaluator(cfg, tf.train.Checkpoint(), str(tmp_path / "best"),
                         (_FakeInceptionWeights(), FakeInception()))


@pytest.mark.end_to_end
def test_a_resume_drops_the_logs_of_the_steps_after_its_checkpoint(tmp_path, fake_inception, monkeypatch, caplog,
                                                                   no_export):
  """A run killed after its last checkpoint had logged later steps; the rerun kept them beside its own:
  eval.jsonl held those steps twice, TensorBoard and plot_scalars.py showed steps past the run's end, and a
  better generator of those steps in best_kid/ was replaced by a worse one."""
  from mmd_gan_tf.metrics import training_eval  # pylint: disable=import-outside-toplevel
  scores = lambda *args, seed, **kwargs: {"kid": tf.constant(10.0 - seed, tf.float64),  # the best: the last step
                                          "kid_std": tf.constant(0.0, tf.float64)}
  monkeypatch.setattr(training_eval, "generator_scores", scores)
  workdir = tmp_path / "run"
  cfg = _cfg(workdir, steps=6, checkpoint_every=4, log_every=1, eval_every=1, eval_num_samples=8,
             kid_subset_size=4, kid_subsets=2, eval_at_start=False)
  trainer.train(cfg, strategy=make_two_replica_strategy())
  for path in (workdir / "checkpoints").glob("ckpt-6.*"):  # killed before the checkpoint of step 6
    path.unlink()
  (workdir / "checkpoints" / "checkpoint").unlink()
  (workdir / "samples" / "notes.txt").write_text("mine")
  with caplog.at_level(logging.INFO, logger="absl"):
    trainer.train(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=5)),
                  strategy=make_two_replica_strategy())
  messages = " ".join(r.getMessage() for r in caplog.records)
  assert "Dropped the logs of the steps after 4" in messages and "2 eval.jsonl record(s)" in messages
  assert [json.loads(line)["step"] for line in (workdir / "eval.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5]
  logged = []
  for path in sorted((workdir / "tensorboard").iterdir()):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      logged += [(value.tag, event.step) for value in event.summary.value if value.tag == "loss/critic"]
  assert sorted(logged) == [("loss/critic", step) for step in range(1, 6)]
  assert os.path.basename(tf.train.latest_checkpoint(str(workdir / "best_kid"))) == "ckpt-6"  # KID 4, not 5's 5
  assert sorted(p.name for p in (workdir / "samples").iterdir()) == ["notes.txt"] + [
      f"step_{step:07d}.png" for step in (2, 4, 5)]  # step 6's grid went with its step; another file stays


@pytest.mark.end_to_end
def test_export_best_exports_the_best_kid_generator_beside_the_latest(tmp_path, fake_inception, monkeypatch):
  """The best-KID checkpoint was kept but nothing exported it: `--mode=export_best` writes its generator to
  <workdir>/export_best_kid, and the run's latest export stays as it was."""
  from helpers import main_in_process  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import export  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf.metrics import training_eval  # pylint: disable=import-outside-toplevel
  scores = lambda *args, seed, **kwargs: {"kid": tf.constant(1.0 + (seed - 2.0) ** 2, tf.float64),  # best: step 2
                                          "kid_std": tf.constant(0.0, tf.float64)}
  monkeypatch.setattr(training_eval, "generator_scores", scores)
  workdir = tmp_path / "run"
  trainer.train(_cfg(workdir, steps=4, eval_every=1, eval_num_samples=8, kid_subset_size=4, kid_subsets=2,
                     eval_at_start=False), strategy=make_two_replica_strategy())
  latest = (workdir / "export" / "saved_model.pb").read_bytes()
  assert export.exported_step(str(workdir / "export")) == 4
  for dry_run in (("--dry_run",), ()):
    result = main_in_process("--mode=export_best", f"--workdir={workdir}", *dry_run)
    assert result.returncode == 0, result.stderr[-1000:]
  assert "best_kid/ckpt-2 (step 2, KID 1)" in result.stdout and "export_best_kid" in result.stdout
  assert export.exported_step(str(workdir / "export_best_kid")) == 2
  assert (workdir / "export" / "saved_model.pb").read_bytes() == latest
  # A run whose training evaluated no KID has nothing to export this way: one line, nothing written.
  for dry_run in (("--dry_run",), ()):
    result = main_in_process("--mode=export_best", f"--workdir={tmp_path / 'missing'}", *dry_run)
    assert result.returncode == 2 and "has no best-KID checkpoint (best_kid/)" in result.stderr.splitlines()[-1]
  assert not (tmp_path / "missing").exists()
