"""--steps_per_loop: K generator steps per call of the compiled function leave the weights of K calls."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from helpers import make_two_replica_strategy
from flags import build as config_builder
from mmd_gan_tf import trainer

pytestmark = pytest.mark.usefixtures("no_export")  # the runs are read for their checkpoints only

# Li's 4-layer networks (with conv spectral norm): the loops, not the networks, are under test here.
TINY = dict(dataset="shapes", arch="li", width=0.0625, batch_size=4, log_every=100, sample_every=100,
            checkpoint_every=100)


def _cfg(workdir, **flags):
  return config_builder.build_config(dict(TINY, workdir=str(workdir), **flags))


def _weights(workdir) -> dict:
  """Every float variable of the latest checkpoint (networks, optimizer slots, power vectors), by name."""
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(workdir / "checkpoints")))
  names = [n for n, dtype in reader.get_variable_to_dtype_map().items() if dtype.is_floating]
  return {n: reader.get_tensor(n) for n in names}


def _assert_same_weights(a, b):
  first, second = _weights(a), _weights(b)
  assert first.keys() == second.keys() and len(first) > 10
  for name in first:
    np.testing.assert_allclose(first[name], second[name], rtol=2e-5, atol=1e-6, err_msg=name)


def _with_li_warmup(cfg):
  # Li's schedule, shortened: 3 critic steps while g < 2 and every 3rd step, else 2, clipped at 0.01.
  return dataclasses.replace(cfg, train=dataclasses.replace(
      cfg.train, n_critic=2, n_critic_warmup=3, n_critic_warmup_steps=2, n_critic_warmup_every=3))


@pytest.mark.end_to_end
@pytest.mark.parametrize("loss", ["mmd"])  # rep (simultaneous) is covered by the resume test below
def test_a_loop_of_steps_leaves_the_weights_of_single_steps(tmp_path, loss):
  """rep: simultaneous updates; mmd: Li's alternating schedule with warm-up counts and weight clipping."""
  runs = {}
  for loop_length in (1, 3):
    cfg = _cfg(tmp_path / f"k{loop_length}", loss=loss, steps=5, steps_per_loop=loop_length)
    if loss == "mmd":
      cfg = _with_li_warmup(cfg)
      assert cfg.optim.weight_clip and cfg.train.schedule == "alternating"
    runs[loop_length] = trainer.train(cfg, strategy=make_two_replica_strategy())
  _assert_same_weights(tmp_path / "k1", tmp_path / "k3")
  for name, value in runs[1].items():
    assert runs[3][name] == pytest.approx(value, rel=1e-4, abs=1e-6), name


@pytest.mark.end_to_end
def test_resume_with_a_loop_matches_resume_without(tmp_path):
  """Checkpoint at 4 inside a 3-step loop, resume to 9: the same weights as the one-step-per-call path."""
  for loop_length in (1, 3):
    workdir = tmp_path / f"k{loop_length}"
    for steps in (4, 9):
      cfg = _cfg(workdir, steps=steps, steps_per_loop=loop_length, checkpoint_every=4, log_every=4)
      trainer.train(cfg, strategy=make_two_replica_strategy())
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-9")
  _assert_same_weights(tmp_path / "k1", tmp_path / "k3")


@pytest.mark.parametrize("loss, replicas, setting, avx512, onednn, expected", [
    ("rep_b", 1, "auto", False, False, True),  # measured faster than TensorFlow's own kernels on AVX2
    ("mmd", 1, "auto", False, False, True),
    ("rep_b", 1, "auto", False, True, False),  # measured 2.5x slower than oneDNN's kernels on AVX2
    ("rep", 1, "auto", True, False, False),  # measured 1.4-1.9x slower on an AVX-512 CPU
    ("rep", 1, "auto", True, True, False),
    ("mmd_gp", 1, "auto", False, False, False),  # gradients of gradients: measured 13.6x slower under XLA
    ("wgan_gp", 1, "auto", False, False, False),
    ("smmd", 1, "auto", False, False, False),
    ("flow", 1, "auto", False, False, False),
    ("mmd_gp", 1, "true", True, True, True),  # asked for: given
    ("rep", 1, "false", False, False, False),
    ("rep", 2, "auto", False, False, False),  # XLA cannot place logical-CPU replicas
])
def test_when_the_steps_are_xla_compiled(monkeypatch, loss, replicas, setting, avx512, onednn, expected):
  monkeypatch.setattr(trainer, "cpu_has_avx512", lambda: avx512)
  monkeypatch.setattr(trainer.onednn, "enabled", lambda: onednn)
  strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])
  cfg = _cfg("/tmp/unused", loss=loss, jit_compile=setting)
  assert trainer.use_xla(cfg, strategy) is expected


def test_avx512_is_read_from_the_cpu_flags(tmp_path):
  with_avx512, without = tmp_path / "a", tmp_path / "b"
  with_avx512.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
  without.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n")
  assert trainer.cpu_has_avx512(str(with_avx512)) is True
  assert trainer.cpu_has_avx512(str(without)) is False
  assert trainer.cpu_has_avx512(str(tmp_path / "missing")) is False


def test_loops_stop_at_every_interval_the_host_acts_on():
  cfg = _cfg("/tmp/unused", steps=20, log_every=4, sample_every=6, checkpoint_every=10, eval_every=0)
  boundaries, current = [], 0
  while current < cfg.train.steps:
    current = trainer.next_boundary(cfg, current, first_eval=True)
    boundaries.append(current)
  assert boundaries == [1, 4, 6, 8, 10, 12, 16, 18, 20]
  assert trainer.next_boundary(cfg, 0, first_eval=False) == 4
  adapting = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, lr_adaptation=True,
                                                               lr_adaptation_every=3))
  # Code sets after steps 1, 4, 7, ... (the reference codes' scorers run after their 0-based step 0, 3, 6).
  boundaries, current = [], 0
  while current < cfg.train.steps:
    current = trainer.next_boundary(adapting, current, first_eval=False)
    boundaries.append(current)
  assert boundaries == [1, 4, 6, 7, 8, 10, 12, 13, 16, 18, 19, 20]


def test_the_periodic_actions_due_after_a_step():
  cfg = config_builder.build_config(dict(dataset="shapes", loss="rep", log_every=2, checkpoint_every=4,
                                         sample_every=3, steps=12), check_library=False)
  due = {step: trainer.due_at(cfg, step, last=False, interrupted=False) for step in range(1, 13)}
  assert [s for s, d in due.items() if d.log] == [2, 4, 6, 8, 10, 12]
  assert [s for s, d in due.items() if d.save] == [4, 8, 12]
  assert [s for s, d in due.items() if d.samples] == [3, 6, 9, 12]
  stopped = trainer.due_at(cfg, 5, last=False, interrupted=True)  # a stop request logs and saves, no samples
  assert (stopped.log, stopped.save, stopped.samples) == (True, True, False)
  end = trainer.due_at(cfg, 5, last=True, interrupted=False)  # e.g. the time limit: everything
  assert (end.log, end.save, end.samples) == (True, True, True)


@pytest.mark.parametrize("flags, gpu_capability, expected", [
    ("flags : fpu avx2 amx_bf16 avx512_bf16", None, True), ("flags : fpu avx2 avx512f avx512_bf16", None, True),
    ("flags : fpu avx2 avx512f", None, False), ("flags : fpu avx2", None, False),
    ("flags : fpu avx2", (8, 0), True), ("flags : fpu avx2 amx_bf16", (7, 5), False)])
def test_mixed_precision_auto_follows_the_bfloat16_units(monkeypatch, tmp_path, flags, gpu_capability, expected):
  (tmp_path / "cpuinfo").write_text(f"processor : 0\n{flags}\n")
  real_cpu_flags = trainer.cpu_flags
  monkeypatch.setattr(trainer, "cpu_flags", lambda: real_cpu_flags(str(tmp_path / "cpuinfo")))
  gpus = ["GPU:0"] if gpu_capability else []
  monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
  monkeypatch.setattr(tf.config.experimental, "get_device_details",
                      lambda device: {"compute_capability": gpu_capability})
  on, why = trainer.bfloat16_pays()
  assert on is expected and why
  assert trainer.use_mixed_precision("auto") is expected
  assert trainer.use_mixed_precision("true") and not trainer.use_mixed_precision("false")
  assert trainer.use_mixed_precision(True) and not trainer.use_mixed_precision(False)


def test_mixed_precision_is_a_boolean_flag_with_auto(tmp_path):
  from helpers import main_in_process  # pylint: disable=import-outside-toplevel
  import json  # pylint: disable=import-outside-toplevel
  for argv, value in ((["--mixed_precision"], "true"), (["--nomixed_precision"], "false"),
                      (["--mixed_precision=auto"], "auto"), ([], "auto")):
    result = main_in_process("--dry_run", *argv)
    assert result.returncode == 0 and json.loads(result.stdout)["train"]["mixed_precision"] == value
    assert ("--mixed_precision=auto on a" in result.stderr) == (value == "auto")
  assert "should be one of <auto|true|false>" in main_in_process("--dry_run", "--mixed_precision=maybe").stderr
  from mmd_gan_tf import config as config_lib  # pylint: disable=import-outside-toplevel
  old = config_builder.build_config({}).to_dict()
  old["train"]["mixed_precision"] = True  # a config.json of before auto existed
  assert config_lib.config_from_dict(old).train.mixed_precision == "true"
  del old["train"]["mixed_precision"]  # a config.json of before mixed precision: it trained in float32
  assert config_lib.config_from_dict(old).train.mixed_precision == "false"
