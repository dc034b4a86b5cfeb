"""Builds and validates the one frozen `Config` from flags and presets.

This is the command-line boundary: every bad value fails here, before any work starts,
with one `ValueError` that names the flag and the value.
"""

import dataclasses
import math
import os
from typing import Any, Mapping, Optional

from flags import definitions
from flags import presets
from mmd_gan_tf import checkpointing
from mmd_gan_tf import config as config_lib
from mmd_gan_tf import data
from mmd_gan_tf import export
from mmd_gan_tf import kernels
from mmd_gan_tf import losses
from mmd_gan_tf import models
from mmd_gan_tf.metrics import registry as metric_registry
from mmd_gan_tf.metrics import training_eval

_POSITIVE_INTS = ("train.steps", "train.batch_size", "train.n_critic", "train.log_every",
                  "train.sample_every", "train.checkpoint_every", "train.keep_checkpoints",
                  "train.steps_per_loop",
                  "model.z_dim", "model.critic_dim", "data.image_size", "eval.kid_subsets",
                  "eval.kid_subset_size", "eval.num_samples", "flow.rff_dim",
                  "eval.lr_adaptation_every", "eval.lr_adaptation_lag", "eval.lr_adaptation_patience")
_POSITIVE_FLOATS = ("optim.critic_lr", "optim.generator_lr", "model.width", "model.sn_total_gain")
# 0 on the command line switches these off.
_ZERO_IS_NONE = ("optim.clipnorm", "optim.weight_clip")


def _flag_name(field: str) -> str:
  for name, fields in definitions.FLAG_FIELDS.items():
    if field in fields:
      return "--" + name
  return field


# Paths: "~" stands for the home folder, as in a shell (which does not expand it after "--flag=").
_PATH_FIELDS = ("workdir", "export_dir", "train.init_from", "data.data_dir", "data.tfds_data_dir",
                "eval.real_data_dir", "eval.inception_weights")


# Paths a run keeps reading or writing after it started: made absolute when given, so that a resume from another
# folder reads the same data and exports to the same place (the workdir names the run and stays as given).
_ABSOLUTE_FIELDS = ("export_dir", "train.init_from", "data.data_dir", "data.tfds_data_dir", "eval.real_data_dir")


def _convert(field: str, value: Any) -> Any:
  if field in _PATH_FIELDS and isinstance(value, str) and value.startswith("~"):
    value = os.path.expanduser(value)
  if field in _ABSOLUTE_FIELDS and isinstance(value, str) and value:
    return os.path.abspath(value)
  if field in _PATH_FIELDS:
    return value
  if field == "eval.metrics":
    return tuple(dict.fromkeys(name.strip() for name in value if name.strip()))
  if field in ("loss.sigmas", "loss.alphas"):
    try:
      return tuple(float(v) for v in value)
    except ValueError as e:
      raise ValueError(f"{_flag_name(field)}={','.join(value)} must be comma-separated numbers") from e
  if field in _ZERO_IS_NONE and value == 0:
    return None
  return value


def _flatten(cfg: config_lib.Config) -> dict:
  """{"section.field" (or a top-level field): value} of every field of `cfg`."""
  flat = {}
  for key, value in cfg.to_dict().items():
    if isinstance(value, dict):
      flat.update({f"{key}.{name}": getattr(getattr(cfg, key), name) for name in value})
    else:
      flat[key] = value
  return flat


def default_workdir(flag_values: Mapping[str, Any]) -> str:
  """The workdir a command line names: --workdir, else runs/<dataset>_<loss> (no preset needs to build)."""
  if flag_values.get("workdir") is not None:
    return _convert("workdir", flag_values["workdir"])
  dataset = flag_values.get("dataset") or config_lib.DataConfig.dataset
  return f"runs/{dataset}_{flag_values.get('loss') or config_lib.LossConfig.name}"


def _overrides(flag_values: Mapping[str, Any], base: Optional[config_lib.Config] = None) -> dict:
  if base is not None:  # a resume: the run's own settings, then the flags given
    resolved = _flatten(base)
  else:
    dataset = flag_values.get("dataset") or config_lib.DataConfig.dataset
    loss = flag_values.get("loss") or config_lib.LossConfig.name
    resolved = presets.resolve_preset(dataset, loss)
    resolved["data.dataset"] = dataset
    resolved["loss.name"] = loss
    resolved["workdir"] = default_workdir(flag_values)
    resolved["preset"] = f"{dataset}/{loss}"
  for name, fields in definitions.FLAG_FIELDS.items():
    value = flag_values.get(name)
    if value is None:
      continue
    for field in fields:
      resolved[field] = _convert(field, value)
  if flag_values.get("fid") is not None:  # --fid / --nofid: fid in or out of --eval_metrics
    metrics = resolved.get("eval.metrics", config_lib.EvalConfig.metrics)
    resolved["eval.metrics"] = tuple(name for name in metrics if name != "fid") + (
        ("fid",) if flag_values["fid"] else ())
  # KID by default is best effort; asking for it (or for given weights) makes missing weights an error.
  if base is not None and flag_values.get("inception_weights") is None and resolved.get(
      "eval.inception_weights") == "none":
    for name in ("eval_every", "eval_every_minutes", "lr_adaptation"):
      if flag_values.get(name):
        raise ValueError(f"--{name}={flag_values[name]} needs the Inception weights, but this run's own setting "
                         f"(from {base.workdir}) is --inception_weights=none: give --inception_weights=PATH too")
  if flag_values.get("inception_weights") == "none":
    _no_kid(resolved, flag_values)
  elif any(flag_values.get(name) is not None for name in ("eval_every", "eval_every_minutes", "inception_weights")):
    resolved["eval.optional"] = False
  # One source of truth for quantities two sections need.
  resolved["model.image_size"] = resolved.get("data.image_size", config_lib.DataConfig.image_size)
  resolved["model.channels"] = resolved.get("data.channels", config_lib.DataConfig.channels)
  resolved["model.output_activation"] = resolved.get("data.image_range", config_lib.DataConfig.image_range)
  return resolved


def _no_kid(resolved: dict, flag_values: Mapping[str, Any]) -> None:
  """`--inception_weights=none`: the in-training evaluation off; refused where KID is asked for."""
  for name in ("eval_every", "eval_every_minutes", "lr_adaptation"):
    if flag_values.get(name):
      raise ValueError(f"--{name}={flag_values[name]} needs the Inception weights, but --inception_weights=none")
  if resolved.get("eval.lr_adaptation") and flag_values.get("lr_adaptation") is not False:
    raise ValueError(f"--inception_weights=none: the {resolved['preset']} preset adapts its learning rates from "
                     "KID, which needs the weights; add --lr_adaptation=false to train at constant rates")
  resolved.update({"eval.eval_every": 0, "eval.eval_every_minutes": 0.0, "eval.lr_adaptation": False,
                   "eval.optional": True})


def _apply(overrides: Mapping[str, Any]) -> config_lib.Config:
  base = config_lib.Config()
  sections = {f.name: {} for f in dataclasses.fields(base) if dataclasses.is_dataclass(getattr(base, f.name))}
  top = {}
  for key, value in overrides.items():
    if "." in key:
      section, field = key.split(".", 1)
      known = {f.name for f in dataclasses.fields(getattr(base, section))}
      if field not in known:
        raise ValueError(f"preset field {key!r} does not exist in the config")
      sections[section][field] = value
    else:
      top[key] = value
  for section, values in sections.items():
    top[section] = dataclasses.replace(getattr(base, section), **values)
  return dataclasses.replace(base, **top)


def _get(cfg: config_lib.Config, field: str) -> Any:
  if "." not in field:  # a top-level field (workdir, export_dir)
    return getattr(cfg, field)
  section, name = field.split(".")
  return getattr(getattr(cfg, section), name)


def validate(cfg: config_lib.Config) -> None:
  """Raises ValueError naming the flag and value of the first inconsistency."""
  for field in _POSITIVE_INTS:
    value = _get(cfg, field)
    if not isinstance(value, int) or value <= 0:
      raise ValueError(f"{_flag_name(field)}={value} must be a positive integer")
  for section in dataclasses.fields(cfg):
    values = getattr(cfg, section.name)
    for field in dataclasses.fields(values) if dataclasses.is_dataclass(values) else ():
      value = getattr(values, field.name)
      if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{_flag_name(section.name + '.' + field.name)}={value} must be a finite number")
  if not 0 <= cfg.train.seed < 2 ** 31:
    raise ValueError(f"--seed={cfg.train.seed} must be in [0, 2**31)")
  for field in _POSITIVE_FLOATS:
    if _get(cfg, field) <= 0:
      raise ValueError(f"{_flag_name(field)}={_get(cfg, field)} must be positive")
  if cfg.train.batch_size < 2:
    raise ValueError(f"--batch_size={cfg.train.batch_size} must be >= 2 (kernel estimates need pairs)")
  if cfg.cpu_devices < 0:
    raise ValueError(f"--cpu_devices={cfg.cpu_devices} must be >= 0")
  if cfg.cpu_devices and cfg.train.batch_size % cfg.cpu_devices:
    raise ValueError(f"--batch_size={cfg.train.batch_size} must be divisible by --cpu_devices={cfg.cpu_devices}")
  if cfg.cpu_devices and cfg.train.batch_size // cfg.cpu_devices < 2:
    raise ValueError(f"--batch_size={cfg.train.batch_size} gives fewer than 2 examples per replica on "
                     f"--cpu_devices={cfg.cpu_devices}")
  if not str(cfg.workdir).strip():
    raise ValueError("--workdir must not be empty")
  if cfg.export_dir is not None and not cfg.export_dir.strip():
    raise ValueError("--export_dir is empty: leave it out to export to <workdir>/export")
  _check_glob_free(cfg)
  if cfg.eval.kid_subset_size < 2:
    raise ValueError(f"--kid_subset_size={cfg.eval.kid_subset_size} must be >= 2 (KID's unbiased estimate needs pairs)")
  if cfg.eval.num_real < 0:
    raise ValueError(f"--eval_num_real={cfg.eval.num_real} must be >= 0 (0: as many as --eval_num_samples)")
  if cfg.eval.periodic:  # else none of these is read (a later resume that evaluates checks them then)
    _check_evaluation_sizes(cfg.eval)
  if cfg.eval.eval_every < 0:
    raise ValueError(f"--eval_every={cfg.eval.eval_every} must be >= 0")
  if cfg.eval.eval_every_minutes < 0:
    raise ValueError(f"--eval_every_minutes={cfg.eval.eval_every_minutes} must be >= 0")
  if cfg.train.max_train_minutes < 0:
    raise ValueError(f"--max_train_minutes={cfg.train.max_train_minutes} must be >= 0")
  if cfg.data.channels not in (1, 3):
    raise ValueError(f"--channels={cfg.data.channels} must be 1 or 3")
  if losses.get_loss(cfg.loss.name).uses_kernel and not cfg.loss.sigmas:
    raise ValueError("--sigmas must not be empty")
  if any(s <= 0 for s in cfg.loss.sigmas):
    raise ValueError(f"--sigmas={','.join(map(str, cfg.loss.sigmas))} must all be positive")
  if cfg.eval.lr_adaptation:
    e = cfg.eval
    if e.lr_adaptation_samples < 3:
      raise ValueError(f"--lr_adaptation_samples={e.lr_adaptation_samples} must be >= 3")
    if not 0 < e.lr_adaptation_factor < 1:
      raise ValueError(f"--lr_adaptation_factor={e.lr_adaptation_factor} must be in (0, 1)")
  for name in ("beta1", "beta2"):
    if not 0 <= getattr(cfg.optim, name) < 1:
      raise ValueError(f"--{name}={getattr(cfg.optim, name)} must be in [0, 1)")
  for name in ("gp_weight", "l2_weight"):
    if getattr(cfg.loss, name) < 0:
      raise ValueError(f"--{name}={getattr(cfg.loss, name)} must be >= 0 (a penalty's weight)")
  if cfg.optim.clipnorm is not None and cfg.optim.clipnorm < 0:
    raise ValueError(f"--clipnorm={cfg.optim.clipnorm} must be >= 0")
  if cfg.optim.weight_clip is not None and cfg.optim.weight_clip < 0:
    raise ValueError(f"--weight_clip={cfg.optim.weight_clip} must be >= 0")


def _check_decoder(cfg: config_lib.Config) -> None:
  """A loss that reads reconstructions needs an architecture with a decoder."""
  if losses.get_loss(cfg.loss.name).needs_decoder and models.ARCHS[cfg.model.arch].decoder is None:
    with_decoder = [name for name, arch in models.ARCHS.items() if arch.decoder is not None]
    raise config_lib.ConfigError("model.arch", cfg.model.arch, f"has no decoder, and loss {cfg.loss.name!r} "
                                 f"needs one (arch {' or '.join(with_decoder)})")


def check_combination(cfg: config_lib.Config) -> None:
  """Raises ConfigError for a (loss, kernel, critic_dim, arch, ...) combination the library cannot train.

  The loss's own checks (`losses.check_config`) run first, then those that need the model registry.
  """
  losses.check_config(cfg)
  models.validate_model_config(cfg.model)
  _check_decoder(cfg)


def _check_evaluation_sizes(eval_cfg: config_lib.EvalConfig) -> None:
  if eval_cfg.kid_subset_size > eval_cfg.num_samples or eval_cfg.kid_subset_size > (
      eval_cfg.num_real or eval_cfg.num_samples):
    raise ValueError(f"--kid_subset_size={eval_cfg.kid_subset_size} exceeds --eval_num_samples="
                     f"{eval_cfg.num_samples} or --eval_num_real={eval_cfg.num_real or eval_cfg.num_samples}")
  _check_eval_metrics(eval_cfg)


def _check_eval_metrics(eval_cfg: config_lib.EvalConfig) -> None:
  """--eval_metrics: names of the metric registry that need no softmax logits, KID among them (the run keeps
  its best KID and adapts its rates from it), FID only with enough samples for its covariances."""
  usable = [name for name in metric_registry.METRICS if name not in metric_registry.NEEDS_LOGITS]
  shown = ",".join(eval_cfg.metrics)
  for name in eval_cfg.metrics:
    if name not in usable:
      raise ValueError(f"--eval_metrics={shown}: {name!r} is not an in-training metric; choose from {usable}")
  if "kid" not in eval_cfg.metrics:
    raise ValueError(f"--eval_metrics={shown} must include kid (the run keeps its best KID)")
  if "fid" in eval_cfg.metrics and min(eval_cfg.num_samples, eval_cfg.num_real or eval_cfg.num_samples) < (
      eval_cfg.fid_min_samples):
    raise ValueError(f"--eval_metrics={shown}: FID needs at least {eval_cfg.fid_min_samples} generated and real "
                     f"images per evaluation; raise --eval_num_samples (now {eval_cfg.num_samples})")


def check_given_flags_used(cfg: config_lib.Config, flag_values: Mapping[str, Any]) -> None:
  """Rejects a flag given explicitly that the resolved run never reads: a kernel parameter of another
  kernel, a loss parameter of another loss, a generator update's setting with a loss that does not use that
  update, a learning-rate adaptation setting with the adaptation off.

  A silently ignored flag makes a run differ from what its command line says (e.g. --sigmas with
  --kernel=mix_rq, which reads --alphas; --gp_weight with --loss=rep_b).
  """
  spec = losses.get_loss(cfg.loss.name)
  _check_loss_parameters_used(cfg, spec, flag_values)
  _check_update_and_adaptation_flags_used(cfg, spec, flag_values)
  _check_data_options_used(cfg, flag_values)
  for flag, applies, why in _CONDITIONAL_FLAGS:
    if flag_values.get(flag) and not applies(cfg):  # 0, "" and false ask for nothing
      raise ValueError(f"--{flag}={flag_values[flag]} has no effect: {why}")
  weights = flag_values.get("inception_weights")
  if weights and weights != "none" and not (cfg.eval.periodic or cfg.eval.lr_adaptation):
    raise ValueError(f"--inception_weights={weights} has no effect: the run computes no KID (--eval_every=0, "
                     "--eval_every_minutes=0 and no --lr_adaptation); give --eval_every=N with it")
  if flag_values.get("kernel") is not None and not spec.uses_kernel:
    raise ValueError(f"--kernel={cfg.loss.kernel} has no effect: --loss={cfg.loss.name} uses no kernel")
  parameters = kernels.get_kernel_spec(cfg.loss.kernel).parameters if spec.uses_kernel else ()
  for name in ("sigmas", "alphas", "dot_weight"):
    if flag_values.get(name) is not None and name not in parameters:
      value = config_lib.format_value(getattr(cfg.loss, name))
      raise ValueError(f"--{name}={value} has no effect with --loss={cfg.loss.name} --kernel={cfg.loss.kernel}"
                       f" (it reads {', '.join('--' + p for p in parameters) or 'no kernel parameter'})")


def _given(flag_values: Mapping[str, Any], prefix: str):
  """(flag name, field) of the flags given explicitly that set a field starting with `prefix`."""
  return [(name, field) for name, fields in definitions.FLAG_FIELDS.items() if flag_values.get(name) is not None
          for field in fields if field.startswith(prefix)]


def _check_loss_parameters_used(cfg: config_lib.Config, spec: losses.LossSpec,
                                flag_values: Mapping[str, Any]) -> None:
  """A loss parameter (a LossConfig field that some loss reads) given for a loss that does not read it."""
  read_by_some = {p for other in losses.LOSSES.values() for p in other.parameters}
  for name, field in _given(flag_values, "loss."):
    parameter = field.split(".", 1)[1]
    if parameter in read_by_some and parameter not in spec.parameters:
      readers = sorted(loss for loss, other in losses.LOSSES.items() if parameter in other.parameters)
      raise ValueError(f"--{name}={config_lib.format_value(getattr(cfg.loss, parameter))} has no effect with "
                       f"--loss={cfg.loss.name} (only --loss={' / '.join(readers)} read it)")


# Flags that only some settings read: (flag, whether the resolved config reads it, why not otherwise).
_CONDITIONAL_FLAGS = (
    ("weight_clip", lambda c: c.train.schedule == "alternating",
     "only the alternating schedule clips the critic's weights (--schedule=alternating, Li's --loss=mmd)"),
    ("n_critic", lambda c: c.train.schedule == "alternating",
     "the simultaneous schedule takes one critic step per generator step (--schedule=alternating)"),
    ("beta1", lambda c: c.optim.optimizer == "adam", "only --optimizer=adam reads it"),
    ("beta2", lambda c: c.optim.optimizer == "adam", "only --optimizer=adam reads it"),
    ("sn_total_gain", lambda c: c.model.spectral_norm == "conv" and c.model.sn_multiplier is None,
     "it sets C only for --spectral_norm=conv without --sn_multiplier"),
    ("sn_multiplier", lambda c: c.model.spectral_norm != "none", "--spectral_norm=none"),
    ("flow_rff_dim", lambda c: c.flow.features == "rff", "only --flow_features=rff reads it"),
    ("flow_rff_sigma", lambda c: c.flow.features == "rff", "only --flow_features=rff reads it"),
    ("flow_cg_iterations", lambda c: c.flow.solver == "cg", "only --flow_solver=cg reads it"),
) + tuple((flag, lambda c: c.eval.periodic, "the run evaluates nothing while it trains (--inception_weights=none, "
           "or --eval_every=0 and --eval_every_minutes=0)")
          for flag in ("eval_at_start", "eval_num_samples", "eval_num_real", "kid_subsets", "kid_subset_size",
                       "eval_metrics", "fid", "eval_split", "eval_data_dir"))


def _check_data_options_used(cfg: config_lib.Config, flag_values: Mapping[str, Any]) -> None:
  """A source-specific data flag (--data_dir, --split, --lsun_category, ...) the chosen source does not read;
  --eval_split where the held-out images come from a source without splits, or from a named npz array."""
  source = data.DATASETS[cfg.data.dataset]
  specific = {option for other in data.DATASETS.values() for option in other.options}
  for name, field in _given(flag_values, "data."):
    option = field.split(".", 1)[1]
    if option in specific and option not in source.options:
      raise ValueError(f"--{name}={flag_values[name]} has no effect with --dataset={cfg.data.dataset}")
  ignored = data.split_ignored(cfg.data)
  if flag_values.get("eval_split") and not cfg.eval.real_data_dir and ignored:
    raise ValueError(f"--eval_split={flag_values['eval_split']} has no effect: {ignored}; give the held-out images "
                     "with --eval_data_dir")
  if flag_values.get("split") and ignored:
    raise ValueError(f"--split={flag_values['split']} has no effect: {ignored}")


def _check_update_and_adaptation_flags_used(cfg: config_lib.Config, spec: losses.LossSpec,
                                            flag_values: Mapping[str, Any]) -> None:
  """A generator update's setting with another loss; an --lr_adaptation_* setting with the adaptation off."""
  for update in {other.generator_update for other in losses.LOSSES.values()} - {losses.GRADIENT}:
    if update is not spec.generator_update:
      for name, _ in _given(flag_values, update.section + "."):
        raise ValueError(f"--{name}={flag_values[name]} has no effect with --loss={cfg.loss.name} (only the losses "
                         f"with the {update.name} generator update read it)")
  if not cfg.eval.lr_adaptation:
    for name, _ in _given(flag_values, "eval.lr_adaptation_"):
      raise ValueError(f"--{name}={flag_values[name]} has no effect: the learning-rate adaptation is off (add "
                       "--lr_adaptation)")


# TensorFlow's checkpoint and SavedModel readers treat these paths as glob patterns: a "[" or "]" (a character
# class) makes everything written there unreadable, although the writes succeed, and the checkpoint rotation
# deletes old checkpoints by pattern: with "*" or "?" in --workdir it deleted other runs' checkpoints.
_GLOB_CHARACTERS = "[]*?"
_GLOB_PATHS = (("--workdir", "workdir"), ("--export_dir", "export_dir"), ("--init_from", "train.init_from"))


def _check_glob_free(cfg: config_lib.Config) -> None:
  for flag, field in _GLOB_PATHS:
    value = _get(cfg, field)
    found = "".join(c for c in _GLOB_CHARACTERS if value and c in value)
    if found:
      raise ValueError(f"{flag}={value} contains {' or '.join(repr(c) for c in found)}: TensorFlow reads "
                       "checkpoint and export paths as glob patterns (nothing written there could be read back, "
                       "and deleting old checkpoints could match other folders); rename the folder")


def _check_workdir_outside_data(cfg: config_lib.Config) -> None:
  """A workdir inside the image folder would add the run's own sample grids to its training data."""
  workdir = os.path.realpath(cfg.workdir)
  for flag, folder in (("--data_dir", cfg.data.data_dir), ("--eval_data_dir", cfg.eval.real_data_dir)):
    if folder and os.path.isdir(folder):
      root = os.path.realpath(folder)
      if workdir == root or workdir.startswith(root.rstrip(os.sep) + os.sep):
        raise ValueError(f"--workdir={cfg.workdir} is inside {flag}={folder}: the run would read its own "
                         "samples and checkpoints as data; put the run elsewhere")
      if root.startswith(workdir.rstrip(os.sep) + os.sep):
        raise ValueError(f"{flag}={folder} is inside --workdir={cfg.workdir}: the run would read its own "
                         "samples or checkpoints as data; give the images' own folder")


def _check_outside_other_runs(cfg: config_lib.Config) -> None:
  """A workdir or export path inside another run (its export/, checkpoints/, ...) would be removed or mixed up
  by that run."""
  run = checkpointing.enclosing_run(cfg.workdir)
  if run:
    raise ValueError(f"--workdir={cfg.workdir} is inside the run {run}: that run owns its folder; put this "
                     "run elsewhere")
  for entry in checkpointing.RUN_ENTRIES:  # a link to a bigger disk is fine; one into another run is not
    path = os.path.join(cfg.workdir, entry)
    if os.path.islink(path):
      run = checkpointing.enclosing_run(os.path.join(os.path.realpath(path), "x"))
      if run and run != os.path.realpath(cfg.workdir):
        harm = ("resume and rotate away that run's checkpoints" if entry in ("checkpoints", "best_kid")
                else "write into that run's own files")
        shown = entry + ("/" if checkpointing.RUN_ENTRIES[entry] else "")
        raise ValueError(f"--workdir={cfg.workdir}: {shown} is a link into the run {run}: this run would {harm}; "
                         "remove the link (or use --init_from)")
  if cfg.export_dir:
    run = checkpointing.enclosing_run(cfg.export_dir)
    if run and run != os.path.realpath(cfg.workdir):
      raise ValueError(f"--export_dir={cfg.export_dir} is inside another run ({run}): that run owns its folder; "
                       "give this run's export a path outside it")


def _check_one_batch(cfg: config_lib.Config) -> None:
  """A dataset smaller than one replica's batch, named when the config is built (a dry run accepted it). The
  replicas are those of a one-worker run here (--cpu_devices, else the GPUs, else one); the run checks each
  input pipeline again when it starts."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (already imported by the data module)
  replicas = cfg.cpu_devices or max(1, len(tf.config.list_physical_devices("GPU")))
  try:
    data.check_one_batch(cfg.data, max(1, cfg.train.batch_size // replicas))
  except data.TooFewImages as error:
    raise ValueError(f"--batch_size={cfg.train.batch_size}: {error}; lower --batch_size or give more "
                     "images") from None


def _check_held_out_data(cfg: config_lib.Config) -> None:
  """--eval_data_dir / --eval_split name images KID can read: checked now, not at the first evaluation, and
  the error names the flag (the data checks speak of data_dir and split)."""
  given = [f"{flag}={value}" for flag, value in (("--eval_data_dir", cfg.eval.real_data_dir),
                                                   ("--eval_split", cfg.eval.real_split)) if value]
  if not given or not cfg.eval.periodic:
    return
  try:
    data.validate_data_config(training_eval.real_data_config(cfg))
  except ValueError as error:
    raise ValueError(f"{' '.join(given)}: the held-out images for KID cannot be read: {error}") from None


def _validate_library(cfg: config_lib.Config) -> None:
  """Checks the library can build what the config asks for (data sources, the loss's generator update)."""
  _check_workdir_outside_data(cfg)
  _check_outside_other_runs(cfg)
  data.validate_data_config(cfg.data)
  _check_one_batch(cfg)
  _check_held_out_data(cfg)
  weights = cfg.eval.inception_weights
  if weights and weights != "none" and os.path.exists(weights) and not os.path.isfile(weights):
    raise ValueError(f"--inception_weights={weights} is not a regular file (a folder, FIFO or device)")
  update = losses.get_loss(cfg.loss.name).generator_update
  if update is not None:
    update.validate(cfg)
  if os.path.isdir(cfg.workdir) and not os.access(cfg.workdir, os.W_OK | os.X_OK):
    raise ValueError(f"--workdir={cfg.workdir} is not writable")
  parent = os.path.dirname(os.path.abspath(cfg.workdir))
  while not os.path.exists(parent) and parent != os.path.dirname(parent):
    parent = os.path.dirname(parent)
  if not os.path.exists(cfg.workdir) and os.path.isdir(parent) and not os.access(parent, os.W_OK | os.X_OK):
    raise ValueError(f"--workdir={cfg.workdir} cannot be created: {parent} is not writable")
  if os.path.isdir(cfg.workdir):
    checkpointing.refuse_foreign_files(cfg.workdir)
  # Before anything is written: an export may only replace an earlier export.
  export_dir = cfg.export_dir or os.path.join(cfg.workdir, "export")
  export.check_export_dir(export_dir, cfg.workdir)
  newer = export.exported_step(export_dir)
  checkpoints = checkpointing.checkpoints_on_disk(os.path.join(cfg.workdir, "checkpoints"))
  reachable = max([cfg.train.steps] + [int(p.rsplit("-", 1)[1]) for p in checkpoints])
  if newer is not None and newer > reachable:  # else refused only after the whole run had trained
    raise ValueError(f"{export.export_folder_name(export_dir, cfg.workdir)} holds the generator of step {newer}, "
                     f"past this run's "
                     f"--steps={cfg.train.steps}: no export of this run could replace it; give another "
                     "--export_dir (or more --steps)")


def _flag_error(error: config_lib.ConfigError) -> ValueError:
  """The library's error about a config field, reworded to name the flag that set it."""
  if error.value is None or error.value == "":
    return ValueError(f"{_flag_name(error.field)} is not given: {error.reason}")
  return ValueError(f"{_flag_name(error.field)}={config_lib.format_value(error.value)}: {error.reason}")


def build_config(flag_values: Mapping[str, Any], check_library: bool = True,
                 base: Optional[config_lib.Config] = None) -> config_lib.Config:
  """Resolves preset + explicit flags into a validated, frozen `Config`.

  Args:
    flag_values: flag name -> value; None means "not given" (take the preset).
    check_library: also ask the data and flow modules whether they can run it (data_dir folders and
      LMDBs are opened); off where only the combination of settings matters.
    base: a resumed run's own config: the flags not given keep its values instead of the preset's.

  Raises:
    ValueError: one line naming the flag and value of the first inconsistency.
  """
  try:
    cfg = _apply(_overrides(flag_values, base))
    validate(cfg)
    try:
      check_combination(cfg)
      check_given_flags_used(cfg, flag_values)
      if check_library:
        _validate_library(cfg)
    except config_lib.ConfigError as e:
      raise _flag_error(e) from None
  except ValueError as e:
    raise _inherited(e, flag_values, base) from None
  return cfg


def _inherited(error: ValueError, flag_values: Mapping[str, Any], base: Optional[config_lib.Config]) -> ValueError:
  """An error about a setting a resumed run brought (not a flag given now) says that it is the run's own, so the
  user knows which flag to give to change it."""
  if base is None:
    return error
  text, values = str(error), _flatten(base)
  for name, fields in definitions.FLAG_FIELDS.items():
    value = values.get(fields[0]) if fields else None
    if flag_values.get(name) is not None or value in (None, "") or isinstance(value, (bool, tuple)):
      continue
    shown = config_lib.format_value(value)
    if f"--{name}={shown}" in text or f"{fields[0].rsplit('.', 1)[-1]} {value!r}" in text:
      return ValueError(f"{text} (--{name}={shown} is this run's own setting, from {base.workdir}; give --{name} "
                        "to change it)")
  return error
