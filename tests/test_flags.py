"""The command-line boundary: presets, overrides, --dry_run and clear errors for bad input."""

import json
import os
import subprocess
import sys

import pytest

from flags import build as config_builder
from flags import presets
from conftest import ROOT


def _build(**flags):
  flags.setdefault("dataset", "shapes")
  flags.setdefault("loss", "rep")
  return config_builder.build_config(flags)


def _main(*args, cwd=None):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                        cwd=cwd or ROOT, env=env, timeout=300)


def test_default_is_the_quick_builtin_preset():
  cfg = _build()
  assert cfg.data.dataset == "shapes" and cfg.loss.name == "rep"
  assert cfg.model.width == 0.25 and cfg.model.arch == "dcgan"
  assert cfg.model.image_size == cfg.data.image_size == 32
  assert cfg.workdir == "runs/shapes_rep"


def test_explicit_flags_override_the_preset():
  cfg = _build(dataset="cifar10", loss="rep", critic_lr=1e-3, image_size=64, sigmas=["1", "2"], clipnorm=0.0)
  assert cfg.optim.critic_lr == 1e-3
  assert cfg.optim.generator_lr == 2e-4  # Wang's CIFAR preset kept
  assert cfg.model.image_size == cfg.data.image_size == 64
  assert cfg.loss.sigmas == (1.0, 2.0)
  assert cfg.optim.clipnorm is None


@pytest.mark.parametrize("dataset, critic_lr, generator_lr", [
    ("cifar10", 5e-4, 2e-4), ("stl10", 2e-4, 2e-4), ("celeb_a", 1e-4, 2e-4), ("lsun", 2e-4, 1e-4)])
def test_wang_learning_rates_per_dataset(dataset, critic_lr, generator_lr):
  resolved = presets.resolve_preset(dataset, "rep")
  assert (resolved["optim.critic_lr"], resolved["optim.generator_lr"]) == (critic_lr, generator_lr)


@pytest.mark.parametrize("flags, bad", [
    ({"batch_size": 0}, "--batch_size=0"),
    ({"steps": -3}, "--steps=-3"),
    ({"critic_lr": -1.0}, "--critic_lr=-1.0"),
    ({"channels": 2}, "--channels=2"),
    ({"sigmas": ["1", "x"]}, "--sigmas=1,x"),
    ({"sigmas": ["-1"]}, "--sigmas=-1.0"),
    ({"cpu_devices": -1}, "--cpu_devices=-1"),
    ({"lr_adaptation": True, "lr_adaptation_factor": 1.5}, "--lr_adaptation_factor=1.5"),
    ({"lr_adaptation": True, "lr_adaptation_lag": 0}, "--lr_adaptation_lag=0"),
    ({"lr_adaptation": True, "lr_adaptation_samples": 2}, "--lr_adaptation_samples=2"),
])
def test_bad_values_name_the_flag(flags, bad):
  with pytest.raises(ValueError, match=bad.replace("+", r"\+")):
    _build(**flags)


def test_dry_run_prints_resolved_config():
  result = _main("--dry_run", "--dataset=cifar10", "--loss=rep", "--critic_lr=0.001")
  assert result.returncode == 0, result.stderr
  cfg = json.loads(result.stdout)
  assert cfg["optim"]["critic_lr"] == 0.001 and cfg["optim"]["generator_lr"] == 2e-4
  assert cfg["preset"] == "cifar10/rep"


def test_unknown_flag_value_fails_with_its_name():
  result = _main("--loss=nonsense", "--dry_run")
  assert result.returncode != 0
  assert "nonsense" in result.stderr and "--loss" in result.stderr


def test_workdir_that_is_a_file_fails(tmp_path):
  path = tmp_path / "a_file"
  path.write_text("x")
  result = _main(f"--workdir={path}", "--steps=1")
  assert result.returncode == 2
  assert f"--workdir={path} exists and is not a directory" in result.stderr


def test_unwritable_workdir_fails(tmp_path):
  if os.geteuid() == 0:
    parent = "/proc/mmd_gan_tf_cannot_write_here"  # root can write anywhere else
  else:
    parent = str(tmp_path / "ro" / "run")
    os.makedirs(tmp_path / "ro")
    os.chmod(tmp_path / "ro", 0o500)
  result = _main(f"--workdir={parent}", "--steps=1")
  assert result.returncode == 2
  assert f"--workdir={parent}" in result.stderr and "cannot be created" in result.stderr
