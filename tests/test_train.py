"""End-to-end seams on 2 logical CPU devices: train, TensorBoard, checkpoints, resume, export."""

import dataclasses
import glob
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from helpers import ROOT, TINY_RUN, copy_of_trained_run, make_two_replica_strategy
from flags import build as config_builder
from mmd_gan_tf import noise
from mmd_gan_tf import summaries
from mmd_gan_tf import kernel_health
from mmd_gan_tf import trainer

TINY = TINY_RUN


def _cfg(workdir, **flags):
  return config_builder.build_config(dict(TINY, workdir=str(workdir), **flags))


def _env():
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def test_training_reports_finite_losses(trained_run):
  _, metrics = trained_run
  for name in ("loss/critic", "loss/generator", "kernel/real_real", "kernel/fake_fake", "kernel/real_fake"):
    assert np.isfinite(metrics[name]), name


def test_tensorboard_has_the_promised_tags(trained_run):
  workdir, _ = trained_run
  acc = event_accumulator.EventAccumulator(str(workdir / "tensorboard"), size_guidance={"tensors": 0})
  acc.Reload()
  tags = set(acc.Tags()["tensors"])
  for tag in ("loss/critic", "loss/generator", "kernel/real_real", "kernel/fake_fake", "kernel/real_fake",
              "mmd2", "lr/critic", "lr/generator", "perf/steps_per_sec", "samples"):
    assert tag in tags, (tag, sorted(tags))
  steps = [e.step for e in acc.Tensors("loss/critic")]
  assert steps == [2, 4]
  lr = tf.make_ndarray(acc.Tensors("lr/critic")[-1].tensor_proto)
  assert float(lr) == pytest.approx(5e-4)


def test_run_directory_contents(trained_run):
  workdir, _ = trained_run
  assert sorted(os.path.basename(p) for p in glob.glob(str(workdir / "samples" / "*.png"))) == [
      "step_0000002.png", "step_0000004.png"]
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-4")
  assert (workdir / "config.json").exists()
  assert (workdir / "export" / "saved_model.pb").exists()


@pytest.mark.end_to_end
def test_resume_continues_step_optimizer_and_noise(trained_run, tmp_path, no_export):
  strategy = make_two_replica_strategy()
  workdir = copy_of_trained_run(trained_run, tmp_path / "run")  # 4 steps of TINY

  # What the checkpoint holds after the first run. The resumed run asks for other learning rates.
  cfg = _cfg(workdir, steps=6, critic_lr=1e-3, generator_lr=3e-4)
  saved = trainer.build_networks(cfg)
  saved_step = tf.Variable(0, dtype=tf.int64)
  trainer.make_checkpoint(saved, saved_step, critic_count=tf.Variable(0, dtype=tf.int64)).restore(
      tf.train.latest_checkpoint(str(workdir / "checkpoints"))).expect_partial()
  assert int(saved_step.numpy()) == 4
  assert int(saved.generator_optimizer.iterations.numpy()) == 4
  assert float(saved.critic_optimizer.learning_rate.numpy()) == pytest.approx(5e-4)  # Wang's, in the checkpoint
  moments = [v.numpy() for v in saved.generator_optimizer.variables if "momentum" in v.path]
  assert moments and any(np.abs(m).max() > 0 for m in moments)
  # Noise is keyed by the step: the resumed run draws step 4's z, not step 0's again.
  z_resumed = noise.sample_z(cfg.model, 4, noise.step_seed(0, saved_step, noise.GENERATOR))
  z_start = noise.sample_z(cfg.model, 4, noise.step_seed(0, 0, noise.GENERATOR))
  assert not np.allclose(z_resumed.numpy(), z_start.numpy())

  trainer.train(cfg, strategy=strategy)
  resumed = trainer.build_networks(cfg)
  resumed_step = tf.Variable(0, dtype=tf.int64)
  trainer.make_checkpoint(resumed, resumed_step, critic_count=tf.Variable(0, dtype=tf.int64)).restore(
      tf.train.latest_checkpoint(str(workdir / "checkpoints"))).expect_partial()
  assert int(resumed_step.numpy()) == 6
  assert int(resumed.generator_optimizer.iterations.numpy()) == 6  # 4 restored + 2 new, not restarted
  # The command line's rates were used (and are what the new checkpoint holds), not the restored ones.
  assert float(resumed.critic_optimizer.learning_rate.numpy()) == pytest.approx(1e-3)
  assert float(resumed.generator_optimizer.learning_rate.numpy()) == pytest.approx(3e-4)
  acc = event_accumulator.EventAccumulator(str(workdir / "tensorboard"), size_guidance={"tensors": 0})
  acc.Reload()
  assert [e.step for e in acc.Tensors("loss/critic")] == [2, 4, 6]
  lr = {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("lr/critic")}
  assert lr[4] == pytest.approx(5e-4) and lr[6] == pytest.approx(1e-3)


def test_resume_refuses_a_changed_architecture(trained_run):
  """On the session's tiny run: a refused resume writes nothing (test_faults.py checks every file)."""
  workdir, _ = trained_run
  strategy = make_two_replica_strategy()
  with pytest.raises(ValueError, match="model.width: checkpoint has 0.125, this run asks for 0.25"):
    trainer.train(_cfg(workdir, steps=6, width=0.25), strategy=strategy)
  with pytest.raises(ValueError, match="loss.name"):
    trainer.train(_cfg(workdir, steps=6, loss="hinge", width=0.125), strategy=strategy)
  # Another optimizer would drop Adam's moments without a word.
  with pytest.raises(ValueError, match="optim.optimizer: checkpoint has 'adam', this run asks for 'rmsprop'"):
    trainer.train(_cfg(workdir, steps=6, optimizer="rmsprop"), strategy=strategy)
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-4")


@pytest.mark.end_to_end
def test_init_from_starts_a_new_run_from_another_runs_variables(trained_run, tmp_path, no_export, caplog):
  source, _ = trained_run
  strategy = make_two_replica_strategy()
  cfg = _cfg(tmp_path, steps=5, loss="rep_b", init_from=str(source), generator_lr=1e-5)
  with caplog.at_level(logging.WARNING):
    trainer.train(cfg, strategy=strategy)
  assert "has no training time" not in caplog.text  # a new run: no training-time record of its own yet
  latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
  assert latest.endswith("ckpt-5")
  nets = trainer.build_networks(cfg)
  restored_step = tf.Variable(0, dtype=tf.int64)
  trainer.make_checkpoint(nets, restored_step, critic_count=tf.Variable(0, dtype=tf.int64)).restore(
      latest).expect_partial()
  assert int(restored_step.numpy()) == 5
  assert int(nets.generator_optimizer.iterations.numpy()) == 5  # 4 taken over + 1 new
  assert float(nets.generator_optimizer.learning_rate.numpy()) == pytest.approx(1e-5)  # this run's rate
  # The new run is its own: its config (in the checkpoint and config.json) says rep_b, and the source is
  # untouched.
  from mmd_gan_tf import checkpointing  # pylint: disable=import-outside-toplevel
  assert checkpointing.config_in_checkpoint(latest)["loss"]["name"] == "rep_b"
  assert checkpointing.load_config(str(tmp_path)).loss.name == "rep_b"
  assert tf.train.latest_checkpoint(str(source / "checkpoints")).endswith("ckpt-4")
  # Networks that do not fit: one error naming the flag.
  with pytest.raises(ValueError, match=r"--init_from=.*does not fit the networks of this config \(\S+ has shape "
                                       r"\([\d, ]+\) here, \([\d, ]+\) in the checkpoint\); give the architecture"):
    trainer.train(_cfg(tmp_path.parent / f"{tmp_path.name}_wider", steps=5, width=0.25, init_from=str(source)),
                  strategy=strategy)  # beside the run above: a workdir inside a run is refused


def _files(root):
  return {os.path.relpath(os.path.join(d, f), root): os.path.getmtime(os.path.join(d, f))
          for d, _, names in os.walk(root) for f in names}


@pytest.mark.end_to_end
def test_init_from_skips_what_does_not_read_back_and_refuses_a_source_at_steps(trained_run, tmp_path, caplog,
                                                                               monkeypatch, no_export):
  source = copy_of_trained_run(trained_run, tmp_path / "source")  # checkpoints at steps 2 and 4
  data = [p for p in os.listdir(source / "checkpoints") if p.startswith("ckpt-4.data")][0]
  path = source / "checkpoints" / data
  path.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])  # cut short, as by a full disk
  before = _files(source)
  strategy = make_two_replica_strategy()
  # The kernel-stall warning is wired to the logged kernel means (here: every state counts as stuck at once).
  watch = kernel_health.StallWatch
  monkeypatch.setattr(trainer.kernel_health, "StallWatch", lambda loss: watch(loss, patience=0))
  monkeypatch.setattr(kernel_health, "kernel_state", lambda *means: "saturated")
  with caplog.at_level(logging.INFO, logger="absl"):
    trainer.train(_cfg(tmp_path / "new", steps=3, init_from=str(source)), strategy=strategy)
  messages = " ".join(r.getMessage() for r in caplog.records)
  assert "ckpt-4 does not read back" in messages and "ckpt-2 (--init_from) at step 2" in messages
  assert "--loss=rep: kernel means saturated (real_real " in messages and "--loss=rep_b" in messages
  assert tf.train.latest_checkpoint(str(tmp_path / "new" / "checkpoints")).endswith("ckpt-3")
  assert _files(source) == before  # another run's files: nothing moved, nothing written
  # A checkpoint that goes away while it is read (the source still trains and rotates them) is looked up
  # again instead of being blamed on the networks.
  real_restore = trainer._restore  # pylint: disable=protected-access
  calls = []

  def restore_after_rotation(checkpoint, prefix, advice, source=""):
    calls.append(prefix)
    if len(calls) == 1:
      for name in os.listdir(tmp_path / "source2" / "checkpoints"):
        if name.startswith("ckpt-4."):
          os.remove(tmp_path / "source2" / "checkpoints" / name)
    return real_restore(checkpoint, prefix, advice, source)

  copy_of_trained_run(trained_run, tmp_path / "source2")
  monkeypatch.setattr(trainer, "_restore", restore_after_rotation)
  caplog.clear()
  with caplog.at_level(logging.INFO, logger="absl"):
    trainer.train(_cfg(tmp_path / "raced", steps=3, init_from=str(tmp_path / "source2")), strategy=strategy)
  assert [os.path.basename(p) for p in calls] == ["ckpt-4", "ckpt-2"]
  assert "went away while being read" in " ".join(r.getMessage() for r in caplog.records)
  monkeypatch.undo()
  # A source already at --steps: nothing to train, refused in one line, no run directory left.
  with pytest.raises(ValueError, match=r"ckpt-2 is at step 2, not below --steps=2: nothing to train"):
    trainer.train(_cfg(tmp_path / "short", steps=2, init_from=str(source / "checkpoints" / "ckpt-2")),
                  strategy=strategy)
  assert not (tmp_path / "short").exists()
  with pytest.raises(ValueError, match=r"ckpt-4 does not read back"):  # a truncated prefix named directly
    trainer.train(_cfg(tmp_path / "bad", steps=6, init_from=str(source / "checkpoints" / "ckpt-4")),
                  strategy=strategy)


def test_init_from_names_a_bad_path(tmp_path):
  from mmd_gan_tf import checkpointing  # pylint: disable=import-outside-toplevel
  with pytest.raises(ValueError, match=f"--init_from={tmp_path} is a directory without a checkpoint"):
    checkpointing.resolve_init_from(str(tmp_path))
  with pytest.raises(ValueError, match="neither a run directory nor a checkpoint prefix"):
    checkpointing.resolve_init_from(str(tmp_path / "ckpt-7"))


def test_export_round_trip_in_a_fresh_process(trained_run, tmp_path):
  workdir, _ = trained_run
  cfg = _cfg(workdir, steps=4)
  nets = trainer.build_networks(cfg)
  trainer.make_checkpoint(nets, tf.Variable(0, dtype=tf.int64), critic_count=tf.Variable(0, dtype=tf.int64)
                          ).restore(tf.train.latest_checkpoint(str(workdir / "checkpoints"))).expect_partial()
  z = np.random.default_rng(1).normal(size=(5, cfg.model.z_dim)).astype(np.float32)
  live = nets.generator(z, training=False).numpy()
  np.save(tmp_path / "z.npy", z)
  script = (
      "import sys, numpy as np, tensorflow as tf\n"
      f"m = tf.saved_model.load({str(workdir / 'export')!r})\n"
      f"out = m.generate(tf.constant(np.load({str(tmp_path / 'z.npy')!r})))\n"
      f"np.save({str(tmp_path / 'out.npy')!r}, out['images'].numpy())\n"
      f"np.save({str(tmp_path / 'u8.npy')!r}, out['images_uint8'].numpy())\n"
      "s = m.sample(tf.constant(3), tf.constant(7, tf.int64))['images_uint8']\n"
      "assert s.shape[0] == 3 and s.dtype == tf.uint8\n"
      "assert not any(k.startswith('mmd_gan_tf') or k in ('flags', 'main') for k in sys.modules)\n")
  result = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env=_env(), timeout=300)
  assert result.returncode == 0, result.stderr
  exported = np.load(tmp_path / "out.npy")
  np.testing.assert_allclose(exported, live, atol=1e-5)
  assert np.load(tmp_path / "u8.npy").dtype == np.uint8


def test_saved_model_cli_runs_the_export(trained_run, tmp_path):
  workdir, _ = trained_run
  cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  np.save(tmp_path / "z.npy", np.zeros((2, _cfg(workdir).model.z_dim), np.float32))
  result = subprocess.run(
      [cli, "run", "--dir", str(workdir / "export"), "--tag_set", "serve", "--signature_def", "generate",
       "--inputs", f"z={tmp_path / 'z.npy'}"],
      capture_output=True, text=True, env=_env(), timeout=300)
  assert result.returncode == 0, result.stderr
  assert "images_uint8" in result.stdout


def test_sample_tool_writes_a_grid(trained_run, tmp_path):
  workdir, _ = trained_run
  out = tmp_path / "grid.png"
  result = subprocess.run([sys.executable, str(ROOT / "tools" / "sample.py"), f"--model={workdir / 'export'}",
                           "--num=10", "--batch_size=3", f"--out={out}"], capture_output=True, text=True,
                          env=_env(), timeout=300)  # 4 batches of at most 3
  assert result.returncode == 0, result.stderr
  grid = tf.io.decode_png(tf.io.read_file(str(out))).numpy()
  assert grid.shape == (3 * 32, 4 * 32, 1)  # the built-in digits are one channel: a grey PNG
  sys.path.insert(0, str(ROOT))
  from tools import sample  # pylint: disable=import-outside-toplevel
  assert summaries.png_text(str(out)) == {"Software": sample.SOFTWARE}  # its mark: a rerun may replace it


@pytest.mark.end_to_end
def test_sigkill_then_rerun_resumes(tmp_path, caplog, no_export):
  """`python main.py` on 2 logical CPU devices (MirroredStrategy) with 2 generator steps per compiled call
  (`--steps_per_loop`; the loops stop at every checkpoint), killed; the same run continued in this process
  (a re-run of main.py is tested after Ctrl-C in test_faults.py)."""
  flags = dict(arch="li", width=0.125, batch_size=8, checkpoint_every=2, log_every=2, sample_every=1000,
               cpu_devices=2, steps_per_loop=2)
  args = [sys.executable, str(ROOT / "main.py"), f"--workdir={tmp_path}"]
  args += [f"--{name}={value}" for name, value in flags.items()]
  process = subprocess.Popen(args + ["--steps=100000"], cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  try:
    while time.time() < deadline and not glob.glob(str(tmp_path / "checkpoints" / "ckpt-*.index")):
      time.sleep(0.5)
    time.sleep(1.0)
  finally:
    process.send_signal(signal.SIGKILL)
    process.wait()
  killed_at = int(tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).rsplit("-", 1)[1])
  assert killed_at >= 2
  target = killed_at + 2
  with caplog.at_level(logging.INFO, logger="absl"):
    trainer.train(config_builder.build_config(dict(flags, workdir=str(tmp_path), steps=target)),
                  strategy=make_two_replica_strategy())
  assert any(f"at step {killed_at}" in r.getMessage() for r in caplog.records)
  assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith(f"ckpt-{target}")


@pytest.mark.end_to_end
def test_lr_adaptation_runs_in_training_and_resumes_its_state(tmp_path, fake_inception, no_export):
  """The adaptation's seams (tests every step, decays, logs, checkpoints, resumes) on a stand-in network;
  the real Inception features in training are checked in test_eval_default.py."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  flags = dict(lr_adaptation=True, lr_adaptation_every=1, lr_adaptation_lag=1, lr_adaptation_samples=6,
               lr_adaptation_patience=1)
  cfg = _cfg(tmp_path / "run", steps=3, **flags)
  cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, feature_cache_dir=str(tmp_path / "cache")))
  trainer.train(cfg, strategy=make_two_replica_strategy())
  acc = event_accumulator.EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"tensors": 0})
  acc.Reload()
  read = lambda tag: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
  p_values = read("lr_adaptation/p_value")
  assert [s for s, _ in p_values] == [2, 3] and all(0 <= p <= 1 for _, p in p_values)
  factor = read("lr_adaptation/lr_factor")[-1][1]
  # patience 1: every failure halves the rates; what is logged is what the optimizer uses.
  failures = sum(v for _, v in read("lr_adaptation/failed"))
  assert factor == 0.5 ** failures
  assert read("lr/critic")[-1][1] == pytest.approx(cfg.optim.critic_lr * factor)
  # A resumed run restores the factor and applies it before its first step.
  cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=4))
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")))
  saved = [k for k in reader.get_variable_to_shape_map() if k.startswith("lr_adaptation/lr_factor")]
  assert saved and reader.get_tensor(saved[0]) == factor
  trainer.train(cfg, strategy=make_two_replica_strategy())
  acc.Reload()
  assert [s for s, _ in read("lr_adaptation/p_value")] == [2, 3, 4]


@pytest.mark.end_to_end
def test_trains_and_exports_on_an_image_folder(tmp_path):
  """The folder pipeline (mixed formats, one corrupt file skipped) feeding a 2-replica run and its export."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  folder = tmp_path / "images"
  os.makedirs(folder / "sub")
  rng = np.random.default_rng(0)
  for index in range(12):
    image = Image.fromarray(rng.integers(0, 256, [40, 48, 3], dtype=np.uint8))
    image.save(folder / ("sub" if index % 2 else "") / f"{index}.{('png', 'jpg', 'webp')[index % 3]}")
  (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
  cfg = _cfg(tmp_path / "run", dataset="folder", data_dir=str(folder), image_size=32, steps=2)
  metrics = trainer.train(cfg, strategy=make_two_replica_strategy())
  assert all(np.isfinite(v) for v in metrics.values())
  loaded = tf.saved_model.load(str(tmp_path / "run" / "export"))
  images = loaded.sample(num_samples=tf.constant(3), seed=tf.constant(1, tf.int64))["images_uint8"]
  assert images.shape == (3, 32, 32, 3)
  # Images deleted while a run trains (the folder's scan is done; here: cached in this process) are one line.
  for path in (folder / "sub").iterdir():
    path.unlink()
  with pytest.raises(ValueError, match=r"^step 3: a file the run reads is gone \(.*sub/.*; restore the data"):
    trainer.train(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=12)),
                  strategy=make_two_replica_strategy())


@pytest.mark.end_to_end
def test_trains_grayscale_mnist_with_one_channel(tmp_path):
  """MNIST through its TFDS pipeline (mock data, never a download): a 1-channel generator and critic."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  cfg = _cfg(tmp_path / "run", dataset="mnist", steps=2, tfds_data_dir=str(tmp_path / "tfds"))
  assert cfg.data.channels == 1
  with tfds.testing.mock_data(num_examples=32):
    metrics = trainer.train(cfg, strategy=make_two_replica_strategy())
  assert all(np.isfinite(v) for v in metrics.values())
  loaded = tf.saved_model.load(str(tmp_path / "run" / "export"))
  assert loaded.generate(tf.zeros([2, cfg.model.z_dim]))["images"].shape == (2, 32, 32, 1)


def test_the_same_seed_builds_the_same_networks():
  """Weights and spectral-norm power vectors come from --seed, not from the process's random state."""
  def variables(seed):
    nets = trainer.build_networks(_cfg("/tmp/unused", seed=seed))
    return [v.numpy() for v in nets.generator.variables + nets.critic.variables]
  first, again, other = variables(3), variables(3), variables(4)
  assert len(first) > 10 and any("power_vector" in v.path for v in
                                 trainer.build_networks(_cfg("/tmp/unused")).critic.variables)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b) for a, b in zip(first, other))
