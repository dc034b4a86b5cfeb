"""The command-line boundary: presets, overrides, --dry_run and clear errors for bad input."""

import json
import os
import re
import subprocess
import sys

import pytest
from absl import flags as absl_flags

from flags import build as config_builder
from flags import definitions
from flags import presets
from helpers import ROOT, main_in_process
from mmd_gan_tf import config as config_lib
from mmd_gan_tf import data, kernels, losses, models, optimizers


def _build(**flags):
  flags.setdefault("dataset", "shapes")
  flags.setdefault("loss", "rep")
  return config_builder.build_config(flags)


def _main(*args):
  """A real `python main.py ARGS` process (the in-process tests use `main_in_process`), with TensorFlow's
  C++ log level as main.py sets it (2: errors shown)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                        cwd=ROOT, env=env, timeout=300)


def test_default_is_the_quick_builtin_preset():
  cfg = config_builder.build_config({})
  assert cfg.data.dataset == "shapes" and cfg.loss.name == "rep_b"
  assert cfg.model.width == 0.25 and cfg.model.arch == "dcgan"
  assert cfg.model.image_size == cfg.data.image_size == 32
  assert cfg.data.shapes_style == "digits" and cfg.data.channels == cfg.model.channels == 1
  assert cfg.model.sn_multiplier is None and cfg.model.sn_total_gain == 64.0  # Wang's C = 64^(1/L)
  assert cfg.workdir == "runs/shapes_rep_b"
  # A first run of minutes: 1000 steps of batch 32 at twice Wang's CIFAR-10 rates (BENCHMARKS, "Default run").
  assert (cfg.train.steps, cfg.train.batch_size, cfg.eval.eval_every) == (1000, 32, 500)
  assert (cfg.optim.critic_lr, cfg.optim.generator_lr) == (1e-3, 5e-4)


def test_main_with_no_flags_resolves_to_exactly_the_config_defaults():
  """The dataclass defaults are the quick run: a library caller's `Config()` is what `python main.py` trains."""
  result = main_in_process("--dry_run")
  assert result.returncode == 0, result.stderr
  assert json.loads(result.stdout) == json.loads(config_lib.Config().to_json())


def test_explicit_flags_override_the_preset():
  cfg = _build(dataset="cifar10", loss="rep", critic_lr=1e-3, image_size=64, kernel="mix_rbf", sigmas=["1", "2"],
               clipnorm=0.0)
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


@pytest.mark.parametrize("dataset, critic_lr, generator_lr, total_gain", [
    ("cifar10", 5e-4, 2e-4, 128.0), ("stl10", 1e-4, 2e-4, 256.0), ("celeb_a", 2e-4, 2e-4, 256.0),
    ("lsun", 1e-3, 2e-4, 128.0)])
def test_hinge_follows_wangs_result_sheet_per_dataset(dataset, critic_lr, generator_lr, total_gain):
  cfg = config_builder.build_config({"dataset": dataset, "loss": "hinge"}, check_library=False)
  assert (cfg.optim.critic_lr, cfg.optim.generator_lr, cfg.model.sn_total_gain) == (
      critic_lr, generator_lr, total_gain)


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
    ({"seed": -5}, "--seed=-5"),
    ({"seed": 2 ** 63}, "--seed=9223372036854775808"),
    ({"max_train_minutes": float("nan")}, "--max_train_minutes=nan"),
    ({"critic_lr": float("inf")}, "--critic_lr=inf"),
    ({"eval_every_minutes": float("inf")}, "--eval_every_minutes=inf"),
])
def test_bad_values_name_the_flag(flags, bad):
  with pytest.raises(ValueError, match=bad.replace("+", r"\+")):
    _build(**flags)


def test_dry_run_prints_resolved_config():
  result = main_in_process("--dry_run", "--dataset=cifar10", "--loss=rep", "--critic_lr=0.001")
  assert result.returncode == 0, result.stderr
  cfg = json.loads(result.stdout)
  assert cfg["optim"]["critic_lr"] == 0.001 and cfg["optim"]["generator_lr"] == 2e-4
  assert cfg["preset"] == "cifar10/rep"


@pytest.mark.parametrize("dataset, z_dim, preprocessing, steps", [
    ("mnist", 10, "li", 149640), ("cifar10", 128, "default", 124614), ("celeb_a", 64, "li", 500000),
    ("lsun", 128, "default", 7655484)])
def test_lis_presets_follow_his_run_script(dataset, z_dim, preprocessing, steps):
  """run_exp.sh: nz per dataset (latent = code size), 1000 epochs as generator steps of his loop."""
  cfg = config_builder.build_config({"dataset": dataset, "loss": "mmd"}, check_library=False)
  assert (cfg.model.z_dim, cfg.model.critic_dim, cfg.data.preprocessing, cfg.train.steps) == \
      (z_dim, z_dim, preprocessing, steps)


def test_rep_below_full_width_is_told_to_use_rep_b():
  assert len(presets.advice(_build(loss="rep", width=0.25))) == 1
  assert "--loss=rep_b" in presets.advice(_build(loss="rep", width=0.5))[0]
  assert presets.advice(_build(loss="rep", width=1.0)) == []
  assert presets.advice(_build(loss="rep_b", width=0.25)) == []
  result = main_in_process("--dry_run", "--loss=rep", "--width=0.25")
  assert result.returncode == 0 and json.loads(result.stdout)["loss"]["name"] == "rep"  # a warning, not a refusal
  warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: --loss=rep at")]
  assert len(warnings) == 1 and "--loss=rep_b" in warnings[0]


def test_unknown_flag_value_fails_with_its_name():
  result = main_in_process("--loss=nonsense", "--dry_run")
  assert result.returncode != 0
  assert "nonsense" in result.stderr and "--loss" in result.stderr


def test_a_refused_value_leaves_no_workdir(tmp_path):
  result = main_in_process(f"--workdir={tmp_path / 'run'}", "--seed=-5", "--steps=1")
  assert result.returncode == 2 and "--seed=-5" in result.stderr
  assert not (tmp_path / "run").exists()


def test_workdir_that_is_a_file_fails(tmp_path):
  path = tmp_path / "a_file"
  path.write_text("x")
  result = main_in_process(f"--workdir={path}", "--steps=1")
  assert result.returncode == 2
  assert f"--workdir={path} exists and is not a directory" in result.stderr


def test_unwritable_workdir_fails(tmp_path):
  if os.geteuid() == 0:
    parent = "/proc/mmd_gan_tf_cannot_write_here"  # root can write anywhere else
  else:
    parent = str(tmp_path / "ro" / "run")
    os.makedirs(tmp_path / "ro")
    os.chmod(tmp_path / "ro", 0o500)
  result = main_in_process(f"--workdir={parent}", "--steps=1")
  assert result.returncode == 2
  assert f"--workdir={parent}" in result.stderr and "cannot be created" in result.stderr


# ---------------------------------------------------------------------------------------------------
# Names come from the library's registries; every combination the library cannot train fails here.


@pytest.fixture(scope="module")
def defined_flags():
  flag_values = absl_flags.FlagValues()
  definitions.define_flags(flag_values)
  return flag_values


@pytest.mark.parametrize("flag, registry", [
    ("dataset", data.DATASETS), ("loss", losses.LOSSES), ("arch", models.ARCHS), ("kernel", kernels.KERNELS),
    ("optimizer", optimizers.OPTIMIZERS)])
def test_flag_choices_are_the_registry_keys(defined_flags, flag, registry):
  assert defined_flags[flag].parser.enum_values == list(registry)


def test_each_flag_is_declared_once_with_the_type_of_its_config_field(defined_flags):
  """The flag table names real config fields, and each flag parses what its field holds."""
  parsers = {int: "IntegerParser", float: "FloatParser", bool: "BooleanParser", str: "ArgumentParser",
             tuple: "ListParser"}
  for flag in definitions.CONFIG_FLAGS:
    kinds = {definitions.field_type(field) for field in flag.field_names}  # KeyError: no such field
    assert len(kinds) <= 1, flag.name
    parser = type(defined_flags[flag.name].parser).__name__
    expected = "EnumParser" if flag.choices else parsers[kinds.pop() if kinds else bool]
    assert parser == expected, (flag.name, parser, expected)
  assert defined_flags["steps"].parser.parse("12") == 12 and defined_flags["critic_lr"].parser.parse("1") == 1.0
  assert defined_flags["spectral_norm"].parser.enum_values == ["none", "matrix", "conv", "conv_gain", "matrix_gain"]
  assert len(definitions.FLAG_FIELDS) == len(definitions.CONFIG_FLAGS)  # no flag declared twice


def test_every_registered_dataset_and_loss_has_a_preset():
  assert all({"data.image_size", "data.channels", "train.steps"} <= set(source.preset)
             for source in data.DATASETS.values())
  assert all("default" in source.crops for source in data.DATASETS.values())
  assert set(presets.LOSS_PRESETS) == set(losses.LOSSES)


def test_a_new_dataset_source_is_its_registry_entry_only(monkeypatch, tmp_path):
  """Registering one DataSource is all a new source needs: its flag value, preset, crops and data reach the
  config, the pipeline and tools/prepare_dataset.py's sources."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf.data import pipeline, prepare, preprocessing  # pylint: disable=import-outside-toplevel

  def flat_grey(cfg, batch_size, seed, pipeline_id, num_pipelines, repeat, shuffle):
    del seed, pipeline_id, num_pipelines, shuffle
    batches = tf.data.Dataset.from_tensors(tf.fill([batch_size, cfg.image_size, cfg.image_size, cfg.channels], 0.5))
    return batches.repeat() if repeat else batches

  crops = {"default": preprocessing.Preset(lambda image, size, seed: image)}
  source = pipeline.DataSource(flat_grey, description="flat grey", crops=crops,
                               preset={"data.image_size": 32, "data.channels": 1, "train.steps": 7},
                               scan=lambda cfg: (1, []))
  monkeypatch.setitem(data.DATASETS, "grey", source)
  flag_values = absl_flags.FlagValues()
  definitions.define_flags(flag_values)
  assert "grey" in flag_values["dataset"].parser.enum_values
  cfg = config_builder.build_config({"dataset": "grey", "loss": "rep_b", "arch": "li"})
  assert (cfg.data.image_size, cfg.data.channels, cfg.train.steps) == (32, 1, 7) and cfg.preset == "grey/rep_b"
  assert pipeline.preprocessing_preset(cfg.data) is crops["default"]
  batch = next(iter(data.make_dataset(cfg.data, 2, seed=0)))
  assert batch.shape == (2, 32, 32, 1) and float(tf.reduce_max(tf.abs(batch))) == 0.0  # 0.5 -> 0 in [-1, 1]
  assert "grey" in prepare.sources()


@pytest.mark.parametrize("loss", list(losses.LOSSES))
def test_every_preset_passes_the_combination_checks(loss):
  for dataset in data.DATASETS:
    try:
      config_builder.build_config({"dataset": dataset, "loss": loss}, check_library=False)
    except ValueError as e:
      # Some pairs ask an arch for a size it cannot make (e.g. stl10's 48 px with dcgan5); the user
      # must pick --image_size or --arch. No loss or kernel check may reject a preset.
      assert str(e).startswith("--image_size="), (dataset, loss, str(e))


def test_loss_help_lists_every_loss(defined_flags):
  assert all(name in defined_flags["loss"].help for name in losses.LOSSES)


INCOMPATIBLE = [  # (flags, the start of the one-line error)
    ({"loss": "wgan_gp", "critic_dim": 16}, "--critic_dim=16: loss 'wgan_gp' needs critic_dim 1"),
    ({"loss": "rep", "kernel": "rbf", "sigmas": ["1", "2"]}, "--sigmas=1.0,2.0: kernel 'rbf' takes exactly one"),
    ({"loss": "rep_b", "sigmas": ["1", "2"]}, "--sigmas=1.0,2.0: kernel 'rbf' takes exactly one"),
    ({"loss": "rep_b", "kernel": "bounded_rbf", "sigmas": ["1", "2"]},
     "--sigmas=1.0,2.0: kernel 'bounded_rbf' takes exactly one"),
    ({"loss": "smmd", "sigmas": ["1", "2"]}, "--sigmas=1.0,2.0: kernel 'rbf' takes exactly one"),
    ({"loss": "rep_b", "kernel": "mix_rbf"}, "--kernel=mix_rbf: loss 'rep_b' is defined for the rbf kernel only"),
    ({"loss": "rep", "kernel": "bounded_rbf"}, "--kernel=bounded_rbf: kernel 'bounded_rbf' is critic-side only"),
    ({"loss": "flow", "kernel": "bounded_rbf"}, "--kernel=bounded_rbf: kernel 'bounded_rbf' is critic-side only"),
    ({"loss": "mmd_gp", "kernel": "mix_rq", "alphas": ["-1"]}, "--alphas=-1.0: kernel 'mix_rq' needs positive"),
    ({"loss": "mmd_gp", "alphas": []}, "--alphas=: kernel 'mix_rq_dot' needs positive alphas"),
    ({"loss": "rep", "kernel": "mix_rbf", "sigmas": []}, "--sigmas must not be empty"),
    ({"loss": "flow", "schedule": "simultaneous"}, "--schedule=simultaneous: is not possible with loss 'flow'"),
    ({"loss": "mmd", "arch": "dcgan"}, "--arch=dcgan: has no decoder, and loss 'mmd' needs one (arch li)"),
    ({"loss": "rep", "image_size": 40}, "--image_size=40: arch 'dcgan' cannot make this size"),
    ({"loss": "smmd", "image_size": 64}, "--image_size=64: arch 'sngan' cannot make this size"),
    ({"dataset": "celeb_a", "loss": "mmd_gp", "image_size": 64}, "--image_size=64: arch 'resnet_big' cannot"),
    # Flags the resolved loss and kernel would silently ignore.
    ({"loss": "rep", "kernel": "mix_rq", "sigmas": ["1", "2"]},
     "--sigmas=1.0,2.0 has no effect with --loss=rep --kernel=mix_rq (it reads --alphas)"),
    ({"loss": "mmd", "alphas": ["1"]}, "--alphas=1.0 has no effect with --loss=mmd --kernel=mix_rbf"),
    ({"loss": "rep", "dot_weight": 0.5}, "--dot_weight=0.5 has no effect with --loss=rep --kernel=rbf"),
    ({"loss": "hinge", "kernel": "rbf"}, "--kernel=rbf has no effect: --loss=hinge uses no kernel"),
    ({"loss": "wgan_gp", "sigmas": ["2"]}, "--sigmas=2.0 has no effect with --loss=wgan_gp"),
    ({"loss": "rep_b", "gp_weight": 100.0}, "--gp_weight=100.0 has no effect with --loss=rep_b (only "
     "--loss=flow / mmd_gp / wgan_gp read it)"),
    ({"loss": "wgan_gp", "l2_weight": 2.0}, "--l2_weight=2.0 has no effect with --loss=wgan_gp (only --loss=flow"),
    ({"loss": "hinge", "rep_lambda": -1.0}, "--rep_lambda=-1.0 has no effect with --loss=hinge (only --loss=rep "),
    ({"loss": "mmd_gp", "flow_lambda": 5.0}, "--flow_lambda=5.0 has no effect with --loss=mmd_gp (only the losses "
     "with the flow generator update read it)"),
    ({"loss": "rep_b", "lr_adaptation_factor": 2.0}, "--lr_adaptation_factor=2.0 has no effect: the learning-rate "
     "adaptation is off"),
    ({"loss": "rep", "weight_clip": 0.01}, "--weight_clip=0.01 has no effect: only the alternating schedule clips"),
    ({"loss": "rep", "n_critic": 5}, "--n_critic=5 has no effect: the simultaneous schedule"),
    ({"optimizer": "sgd", "beta1": 0.3}, "--beta1=0.3 has no effect: only --optimizer=adam reads it"),
    ({"spectral_norm": "none", "sn_multiplier": 2.0}, "--sn_multiplier=2.0 has no effect: --spectral_norm=none"),
    ({"loss": "rep", "sn_multiplier": 2.0, "sn_total_gain": 5.0}, "--sn_total_gain=5.0 has no effect"),
    ({"loss": "flow", "flow_cg_iterations": 10}, "--flow_cg_iterations=10 has no effect: only --flow_solver=cg"),
    ({"data_dir": "/tmp/nowhere"}, "--data_dir=/tmp/nowhere has no effect with --dataset=shapes"),
    ({"lsun_category": "church"}, "--lsun_category=church has no effect with --dataset=shapes"),
    ({"dataset": "cifar10", "shapes_style": "mixed"}, "--shapes_style=mixed has no effect with --dataset=cifar10"),
    ({"corrupt_is_fatal": True}, "--corrupt_is_fatal=True has no effect with --dataset=shapes"),
    # Values out of range.
    ({"beta1": 1.5}, "--beta1=1.5 must be in [0, 1)"),
    ({"beta2": -0.5}, "--beta2=-0.5 must be in [0, 1)"),
    ({"loss": "mmd_gp", "gp_weight": -1.0}, "--gp_weight=-1.0 must be >= 0"),
    ({"eval_num_real": -1}, "--eval_num_real=-1 must be >= 0"),
    ({"kid_subset_size": 1}, "--kid_subset_size=1 must be >= 2"),
    ({"loss": "flow", "flow_lambda": -1.0}, "--flow_lambda=-1.0: must be > 0"),
    ({"loss": "flow", "flow_features": "rff", "flow_rff_sigma": 0.0}, "--flow_rff_sigma=0.0: must be > 0"),
    ({"cpu_devices": -1}, "--cpu_devices=-1 must be >= 0"),
    ({"export_dir": ""}, "--export_dir is empty: leave it out to export to <workdir>/export"),
    ({"shuffle_buffer": -1}, "--shuffle_buffer=-1: must be >= 1"),
    ({"sn_multiplier": 0.0}, "--sn_multiplier=0.0: must be > 0"),
    ({"inception_weights": "none", "lr_adaptation": True}, "--lr_adaptation=True needs the Inception weights, "
     "but --inception_weights=none"),
    # The evaluation's settings without an evaluation (not a size check against the preset's unused settings).
    ({"inception_weights": "none", "eval_num_samples": 32}, "--eval_num_samples=32 has no effect: the run "
     "evaluates nothing while it trains (--inception_weights=none, or --eval_every=0"),
    ({"eval_every": 0, "kid_subsets": 5}, "--kid_subsets=5 has no effect: the run evaluates nothing"),
    ({"inception_weights": "none", "fid": True}, "--fid=True has no effect"),
    ({"inception_weights": "none", "eval_at_start": True}, "--eval_at_start=True has no effect"),
    ({"inception_weights": "none", "eval_data_dir": "/tmp/x"}, "--eval_data_dir=/tmp/x has no effect"),
    ({"loss": "smmd", "eval_every": 0, "kid_subset_size": 64}, "--kid_subset_size=64 has no effect"),
    # The data module's errors name the flags ("dataset 'folder' needs data_dir (got None)" named none).
    ({"dataset": "folder"}, "--data_dir is not given: --dataset=folder reads its images from it"),
    ({"dataset": "tfrecord", "data_dir": "/nowhere"}, "--data_dir=/nowhere: does not exist or is not a directory"),
    ({"split": "val"}, "--split=val: shapes has no such split; expected one of ['test', 'train', 'validation']"),
]


@pytest.mark.parametrize("flags, error", INCOMPATIBLE, ids=[str(i) for i in range(len(INCOMPATIBLE))])
def test_incompatible_combinations_fail_in_build_config(flags, error):
  with pytest.raises(ValueError) as info:
    _build(**flags)
  assert str(info.value).startswith(error)
  assert "\n" not in str(info.value)


@pytest.mark.parametrize("flags", [
    {"loss": "hinge", "critic_dim": 16}, {"loss": "hinge", "critic_dim": 1}, {"loss": "smmd", "critic_dim": 16},
    {"loss": "wgan_gp", "arch": "li"}, {"loss": "mmd_gp", "arch": "li"}, {"loss": "rep_b", "kernel": "bounded_rbf"},
    {"loss": "mmd_gp", "kernel": "mix_rbf", "sigmas": ["1", "2"]}, {"loss": "mmd", "alphas": None},
    {"loss": "flow", "gp_weight": 2.0, "l2_weight": 0.5, "flow_lambda": 5.0}, {"loss": "rep", "rep_lambda": -1.0},
    {"lr_adaptation": True, "lr_adaptation_factor": 0.8}, {"beta1": 0.0, "beta2": 0.0},
    {"inception_weights": "none", "fid": False, "eval_at_start": False, "eval_split": ""},
    {"eval_every": 0, "eval_every_minutes": 5.0, "kid_subsets": 5, "eval_num_samples": 32, "kid_subset_size": 16}])
def test_compatible_combinations_build(flags):
  _build(**flags)


def test_dry_run_of_an_incompatible_combination_exits_2_with_one_line():
  """A real main.py process: exit code 2, one line, and none of TensorFlow's no-GPU start-up noise (see
  test_console.py)."""
  result = _main("--dry_run", "--loss=wgan_gp", "--critic_dim=16")
  assert result.returncode == 2
  assert result.stdout == ""
  assert "cuInit" not in result.stderr and "cudart_stub" not in result.stderr, result.stderr[:500]
  # TensorFlow's C++ start-up lines may precede it; main.py's own output is one line.
  errors = [line for line in result.stderr.splitlines() if "critic_dim" in line or line.startswith("error")]
  assert errors == ["error: --critic_dim=16: loss 'wgan_gp' needs critic_dim 1"]


def test_eval_metrics_come_from_the_metric_registry_and_fid_is_an_alias():
  assert _build().eval.metrics == ("kid",)
  assert _build(eval_metrics=["kid", "fid"], eval_num_samples=2048).eval.metrics == ("kid", "fid")
  assert _build(fid=True, eval_num_samples=2048).eval.metrics == ("kid", "fid")
  assert _build(eval_metrics=["kid", "fid"], fid=False).eval.metrics == ("kid",)
  for metrics, message in ((["kid", "is"], "'is' is not an in-training metric"),
                           (["kid", "nope"], "'nope' is not an in-training metric"),
                           (["fid"], "must include kid"),
                           (["kid", "fid"], "FID needs at least 2048")):
    with pytest.raises(ValueError, match=f"--eval_metrics={','.join(metrics)}: {message}|--eval_metrics="
                                         f"{','.join(metrics)} {message}"):
      _build(eval_metrics=metrics)
  # A config written before --eval_metrics existed keeps its FID.
  from mmd_gan_tf import config as config_lib  # pylint: disable=import-outside-toplevel
  old = _build().to_dict()
  del old["eval"]["metrics"]
  old["eval"]["fid"] = True
  assert config_lib.config_from_dict(old).eval.metrics == ("kid", "fid")


@pytest.mark.parametrize("flag", ["workdir", "export_dir", "init_from"])
def test_a_path_that_tensorflow_would_read_as_a_glob_is_refused(flag, tmp_path):
  with pytest.raises(ValueError, match=rf"--{flag}=.*run\[1\] contains '\[' or '\]'"):
    config_builder.build_config({flag: str(tmp_path / "run[1]")}, check_library=False)
  # "*" and "?": the checkpoint rotation deleted other runs' checkpoints by pattern.
  for name, shown in (("h*", "'*'"), ("q?", "'?'")):
    with pytest.raises(ValueError, match=rf"--{flag}=.*{re.escape(name)} contains {re.escape(shown)}: "):
      config_builder.build_config({flag: str(tmp_path / name)}, check_library=False)


def test_a_tilde_in_a_path_flag_is_the_home_folder(monkeypatch, tmp_path):
  monkeypatch.setenv("HOME", str(tmp_path))
  cfg = config_builder.build_config({"workdir": "~/runs/x", "export_dir": "~/exports/x"}, check_library=False)
  assert (cfg.workdir, cfg.export_dir) == (str(tmp_path / "runs/x"), str(tmp_path / "exports/x"))


def test_a_read_only_workdir_is_named_before_its_export_folder(tmp_path, monkeypatch):
  workdir = tmp_path / "ro"
  workdir.mkdir()
  real_access = os.access  # as for a user without write permission there (root may write anywhere)
  monkeypatch.setattr(os, "access", lambda path, mode: False if str(path).startswith(str(workdir))
                      else real_access(path, mode))
  with pytest.raises(ValueError, match=f"^--workdir={workdir} is not writable$"):
    config_builder.build_config({"workdir": str(workdir)})
  # A new workdir under a folder that cannot be written is named as such (it blamed --export_dir, not given).
  with pytest.raises(ValueError, match=f"^--workdir={workdir}/a/run cannot be created: {workdir} is not writable$"):
    config_builder.build_config({"workdir": str(workdir / "a" / "run")})


@pytest.mark.parametrize("inside", ["export", "checkpoints", "samples/new_run"])
def test_a_workdir_inside_another_run_is_refused(tmp_path, inside):
  run = tmp_path / "run"
  (run / "checkpoints").mkdir(parents=True)
  (run / "config.json").write_text("{}")
  with pytest.raises(ValueError, match=f"--workdir={run / inside} is inside the run {run}: that run owns"):
    config_builder.build_config({"workdir": str(run / inside)})
  config_builder.build_config({"workdir": str(tmp_path / "sibling")})  # beside it is fine


def test_an_error_about_a_resumed_runs_own_setting_says_it_is_the_runs(tmp_path):
  base = config_builder.build_config(dict(dataset="npz", data_dir=str(tmp_path / "digits.npz"), channels=1,
                                          preprocessing="pad", workdir=str(tmp_path / "run")), check_library=False)
  with pytest.raises(ValueError, match=r"^preprocessing 'pad' is not available for dataset 'shapes'.*\(--preprocessing"
                                       r"=pad is this run's own setting, from .*run; give --preprocessing to change"):
    config_builder.build_config({"dataset": "shapes"}, base=base)
  with pytest.raises(ValueError, match=r"not available for dataset 'shapes'; expected one of \['default'\]$"):
    config_builder.build_config({"dataset": "shapes", "preprocessing": "pad"}, base=base)  # given: no such note


def test_paths_a_run_keeps_using_are_absolute_so_a_resume_from_another_folder_reads_the_same(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  cfg = config_builder.build_config(dict(dataset="npz", data_dir="digits.npz", export_dir="gen", channels=1,
                                         preprocessing="pad", workdir="run"), check_library=False)
  assert (cfg.data.data_dir, cfg.export_dir) == (str(tmp_path / "digits.npz"), str(tmp_path / "gen"))
  assert cfg.workdir == "run"  # the run's name, as given


def test_asking_a_kid_less_run_for_kid_names_its_own_inception_weights_setting(tmp_path):
  base = config_builder.build_config(dict(dataset="shapes", inception_weights="none", workdir=str(tmp_path)),
                                     check_library=False)
  with pytest.raises(ValueError, match=r"^--eval_every=2 needs the Inception weights, but this run's own setting "
                                       r"\(from .*\) is --inception_weights=none: give --inception_weights=PATH"):
    config_builder.build_config({"eval_every": 2}, base=base, check_library=False)
  weights = tmp_path / "w.npz"
  cfg = config_builder.build_config({"eval_every": 2, "inception_weights": str(weights)}, base=base,
                                    check_library=False)
  assert cfg.eval.eval_every == 2 and cfg.eval.inception_weights == str(weights)
  # The weights alone: --inception_weights=none had set the run's --eval_every to 0, so they would change
  # nothing (the resume exited 0 and computed no KID).
  with pytest.raises(ValueError, match=r"^--inception_weights=.*w.npz has no effect: the run computes no KID .*give "
                     r"--eval_every=N with it \(--eval_every=0 is this run's own setting, from "):
    config_builder.build_config({"inception_weights": str(weights)}, base=base, check_library=False)
  with pytest.raises(ValueError, match=r"^--inception_weights=.*w.npz has no effect"):  # a fresh run too
    config_builder.build_config({"eval_every": 0, "inception_weights": str(weights)}, check_library=False)


def test_a_preset_that_needs_the_flags_given_is_built_with_them(tmp_path):
  """lsun/smmd's preset is 64 px, which smmd's arch cannot make: the run folder was looked up by building the
  preset from --dataset and --loss alone, which refused --image_size=32 although it was given."""
  result = main_in_process("--dataset=lsun", "--loss=smmd", "--image_size=32", f"--data_dir={tmp_path / 'none'}",
                           "--dry_run")
  assert result.returncode == 2 and "image_size" not in result.stderr, result.stderr
  assert "does not exist" in result.stderr
  assert config_builder.default_workdir({"dataset": "lsun", "loss": "smmd"}) == "runs/lsun_smmd"
  assert config_builder.default_workdir({"workdir": "~/r"}) == os.path.expanduser("~/r")
