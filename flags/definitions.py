"""Every command-line flag of `main.py`: one `ConfigFlag` per flag in `CONFIG_FLAGS` (name, the config fields
it sets, help, choices), from which `define_flags()` defines them and `FLAG_FIELDS` maps them to fields.

A config field is declared once, in `mmd_gan_tf/config.py` (its type and its default, the quick run's); its
flag is declared once, here; the flag's type follows the field's (int, float, bool, str, or a comma-separated
list for tuples), and a flag with choices is an enum. All flags are optional. A flag left unset takes the
value of the preset for the chosen (dataset, loss) pair (see `flags/presets.py`); a flag given explicitly
always wins.
"""

import dataclasses
import functools
import typing
from typing import Iterable, Mapping, Optional, Tuple, Union

from absl import flags as absl_flags

# The choices of --dataset, --loss, --arch, --kernel and --optimizer are the keys of the library's
# registries, so a name added there is a flag value at once. This imports TensorFlow, which every
# command but --help needs anyway.
from mmd_gan_tf import config as config_lib
from mmd_gan_tf import data
from mmd_gan_tf import images
from mmd_gan_tf import kernels
from mmd_gan_tf import losses
from mmd_gan_tf import models
from mmd_gan_tf import noise
from mmd_gan_tf import optimizers
from mmd_gan_tf.data import shapes
from mmd_gan_tf.flow import features as flow_features
from mmd_gan_tf.flow import update as flow_update
from mmd_gan_tf.layers import spectral_norm
from mmd_gan_tf.metrics import registry as metric_registry


@dataclasses.dataclass(frozen=True)
class ConfigFlag:
  """A flag that sets config fields ("section.field", or a top-level field such as "workdir")."""
  name: str
  fields: Union[str, Tuple[str, ...]]
  help: str
  choices: Optional[Iterable[str]] = None  # a registry (its keys, read when the flags are defined) or names

  @property
  def field_names(self) -> Tuple[str, ...]:
    return (self.fields,) if isinstance(self.fields, str) else tuple(self.fields)


def described(registry: Mapping) -> str:
  """"name (description), ..." of a registry whose entries have a `description`."""
  return ", ".join(f"{name} ({spec.description})" if spec.description else name for name, spec in registry.items())


_F = ConfigFlag
_EVAL_METRICS = [name for name in metric_registry.METRICS if name not in metric_registry.NEEDS_LOGITS]
CONFIG_FLAGS = (
    # Run.
    _F("workdir", "workdir", "Run directory (checkpoints, TensorBoard, samples, export). Default: "
       "runs/<dataset>_<loss>. Re-using it resumes the run."),
    _F("export_dir", "export_dir", "Where the SavedModel goes (default <workdir>/export)."),
    _F("strategy", "strategy", "tf.distribute strategy: mirrored (all local GPUs, or the CPU), one_device, or "
       "multi_worker (MultiWorkerMirroredStrategy configured by TF_CONFIG).", config_lib.STRATEGIES),
    _F("cpu_devices", "cpu_devices", "On a machine without GPUs: split the CPU into this many logical devices, so "
       "that --strategy=mirrored runs that many replicas (for testing distribution)."),
    # Data.
    _F("dataset", "data.dataset", "Dataset; `shapes` is built in and needs no download.", data.DATASETS),
    _F("image_size", ("data.image_size", "model.image_size"), "Image height and width."),
    _F("channels", ("data.channels", "model.channels"), "Image channels (1 or 3)."),
    _F("split", "data.split", "Dataset split (TFDS name, e.g. train or train+test)."),
    _F("data_dir", "data.data_dir", "Image folder, TFRecord directory, LSUN LMDB directory, or FILE.npz[:KEY] for "
       "--dataset=npz."),
    _F("tfds_data_dir", "data.tfds_data_dir", "TFDS data directory (datasets must already be prepared there)."),
    _F("lsun_category", "data.lsun_category", "LSUN category (bedroom, church_outdoor, ...)."),
    _F("preprocessing", "data.preprocessing", "Named per-paper preprocessing (e.g. wang, binkowski, li for "
       "celeb_a)."),
    _F("image_range", "data.image_range", "Image range: tanh = [-1, 1], sigmoid = [0, 1].",
       images.IMAGE_RANGES),
    _F("corrupt_is_fatal", "data.corrupt_is_fatal", "Fail on a corrupt image file instead of skipping it."),
    _F("tfds_download", "data.tfds_download", "Let TFDS download a missing dataset into --tfds_data_dir."),
    _F("shuffle_buffer", "data.shuffle_buffer", "Shuffle buffer size in images."),
    _F("shapes_style", "data.shapes_style", "shapes: digits (one stroke-drawn digit 0-9, white on black, like "
       "MNIST), simple (one large bright disc, square or triangle on black) or mixed (1-3 shapes of any size on a "
       "random plain colour).", shapes.STYLES),
    # Model.
    _F("arch", "model.arch", f"Architecture: {described(models.ARCHS)}.", models.ARCHS),
    _F("z_dim", "model.z_dim", "Latent dimension."),
    _F("z_distribution", "model.z_distribution", "Latent distribution.", noise.Z_DISTRIBUTIONS),
    _F("critic_dim", "model.critic_dim", "Critic output (feature) dimension."),
    _F("width", "model.width", "Channel-width multiplier of both networks (1 = the paper's widths)."),
    _F("spectral_norm", "model.spectral_norm", "Spectral normalisation.", spectral_norm.MODES),
    _F("sn_multiplier", "model.sn_multiplier", "C in W * C / sigma (default sn_total_gain**(1/L) for conv, 1 "
       "otherwise)."),
    _F("sn_total_gain", "model.sn_total_gain", "C^L for the conv modes when --sn_multiplier is not given (Wang's "
       "k: 64 for rep, 128 for his hinge baseline)."),
    # Loss.
    _F("loss", "loss.name", f"Loss: {described(losses.LOSSES)}.", losses.LOSSES),
    _F("kernel", "loss.kernel", f"Kernel on critic features (losses of the MMD family): "
       f"{described(kernels.KERNELS)}.", kernels.KERNELS),
    _F("sigmas", "loss.sigmas", "Bandwidths of rbf / mix_rbf (comma-separated)."),
    _F("alphas", "loss.alphas", "Alphas of mix_rq / mix_rq_dot (comma-separated)."),
    _F("dot_weight", "loss.dot_weight", "Weight w of the linear term of mix_rq_dot (Binkowski's mix_rq_1dot: 1)."),
    _F("rep_lambda", "loss.rep_lambda", "Wang's lambda (1 = repulsive, -1 = attractive)."),
    _F("gp_weight", "loss.gp_weight", "Gradient-penalty weight."),
    _F("l2_weight", "loss.l2_weight", "Critic activation L2 penalty weight (mmd_gp)."),
    # Optimiser.
    _F("optimizer", "optim.optimizer", "Optimiser of both networks (the flow generator always uses SGD).",
       optimizers.OPTIMIZERS),
    _F("critic_lr", "optim.critic_lr", "Critic learning rate."),
    _F("generator_lr", "optim.generator_lr", "Generator learning rate."),
    _F("beta1", "optim.beta1", "Adam beta1."),
    _F("beta2", "optim.beta2", "Adam beta2."),
    _F("clipnorm", "optim.clipnorm", "Per-tensor gradient clipping norm (0 = off)."),
    _F("weight_clip", "optim.weight_clip", "Critic weight clipping bound (0 = off)."),
    # Loop.
    _F("steps", "train.steps", "Generator steps."),
    _F("max_train_minutes", "train.max_train_minutes", "Stop after this many minutes of training time (evaluation "
       "excluded; counted across resumes), with the usual final checkpoint and export. 0 = off."),
    _F("eval_every_minutes", "eval.eval_every_minutes", "Also evaluate KID every this many minutes of training "
       "time."),
    _F("batch_size", "train.batch_size", "Global batch size (split over replicas)."),
    _F("schedule", "train.schedule", "Update schedule.", config_lib.SCHEDULES),
    _F("n_critic", "train.n_critic", "Critic steps per generator step (alternating schedule)."),
    _F("seed", "train.seed", "Random seed."),
    _F("log_every", "train.log_every", "Console/TensorBoard logging interval (steps)."),
    _F("sample_every", "train.sample_every", "Sample-grid interval (steps)."),
    _F("checkpoint_every", "train.checkpoint_every", "Checkpoint interval (steps)."),
    _F("keep_checkpoints", "train.keep_checkpoints", "Checkpoints kept."),
    # Also a boolean flag: --mixed_precision means true, --nomixed_precision false (define_flags).
    _F("mixed_precision", "train.mixed_precision", "Networks compute in bfloat16 with float32 variables (Keras "
       "mixed_bfloat16; no loss scaling needed); kernels, MMD^2 and losses stay float32. auto: on where bfloat16 "
       "units make it faster (CPUs with AMX or AVX-512 BF16, GPUs of compute capability 8.0+), off elsewhere (an "
       "AVX2-only CPU runs it several times slower); the log and --dry_run say which and why. "
       "--mixed_precision alone means true.", config_lib.AUTO_TRUE_FALSE),
    _F("steps_per_loop", "train.steps_per_loop", "Generator steps run inside one call of the compiled training "
       "function (fewer host round trips, as Keras' steps_per_execution). Logging, samples, checkpoints, "
       "evaluation and stop signals happen between calls, at the same steps as with 1: a loop never runs past "
       "the next of their intervals."),
    _F("jit_compile", "train.jit_compile", "XLA-compile the per-replica training steps. auto: on with one replica "
       "on an AVX2-only CPU running TensorFlow's own kernels (TF_ENABLE_ONEDNN_OPTS=0) for the losses without "
       "gradients of gradients, where it measured faster; off where oneDNN's kernels run (they beat XLA; on by "
       "default on x86-64 Linux), for the gradient-penalty and SMMD losses (much slower under XLA on "
       "a CPU), on GPUs (not yet measured) and with several logical CPU devices (XLA cannot place them).",
       config_lib.AUTO_TRUE_FALSE),
    _F("init_from", "train.init_from", "Start a fresh run from another run's variables: a run directory (its "
       "latest checkpoint) or a checkpoint prefix (RUN/checkpoints/ckpt-N). Weights, optimizer state and the "
       "step counter are taken over; the config is this run's own (e.g. another loss or learning rate), and the "
       "networks must fit. Ignored once --workdir has a checkpoint of its own (a resume)."),
    # Evaluation.
    _F("eval_every", "eval.eval_every", "KID/FID evaluation interval in steps (0 = off). The presets turn it on "
       "whenever the FID Inception weights are available (given or cached); giving this flag makes missing "
       "weights an error."),
    _F("eval_at_start", "eval.eval_at_start", "Also evaluate after the first step of a fresh run (the baseline)."),
    _F("eval_split", "eval.real_split", "Held-out real images for KID: this split of the dataset (e.g. test; for "
       "--dataset=npz the array x_<split>). Default: the training split."),
    _F("eval_data_dir", "eval.real_data_dir", "Held-out real images for KID: this --data_dir instead of the "
       "training one (folder, tfrecord, lsun, FILE.npz:KEY)."),
    _F("inception_weights", "eval.inception_weights", "FID Inception weights (.npz, .tgz or .pb); default: the "
       "cache, downloaded once when missing; none: no KID in training."),
    _F("kid_subsets", "eval.kid_subsets", "KID subsets during training."),
    _F("kid_subset_size", "eval.kid_subset_size", "KID subset size."),
    _F("eval_num_samples", "eval.num_samples", "Generated (and, unless --eval_num_real, real) images per "
       "evaluation."),
    _F("eval_num_real", "eval.num_real", "Held-out real images per evaluation (default: --eval_num_samples)."),
    _F("eval_metrics", "eval.metrics", f"Metrics of the in-training evaluation, from {_EVAL_METRICS} (kid always "
       "among them; default: kid)."),
    # An alias, no field of its own: adds (or with --nofid removes) "fid" in --eval_metrics (flags/build.py).
    _F("fid", (), "Also compute FID during training (the same as adding fid to --eval_metrics)."),
    _F("lr_adaptation", "eval.lr_adaptation", "KID-driven learning-rate adaptation (Binkowski)."),
    _F("lr_adaptation_every", "eval.lr_adaptation_every", "Steps between 3-sample tests (2000)."),
    _F("lr_adaptation_samples", "eval.lr_adaptation_samples", "Real and generated codes per test (2048)."),
    _F("lr_adaptation_lag", "eval.lr_adaptation_lag", "Compare with the codes of this many tests earlier (10)."),
    _F("lr_adaptation_patience", "eval.lr_adaptation_patience", "Failures in a row before the rates decay (3)."),
    _F("lr_adaptation_factor", "eval.lr_adaptation_factor", "Learning-rate decay factor (0.5; Arbel: 0.8)."),
    # Gradient flow.
    _F("flow_lambda", "flow.flow_lambda", "lambda of the gradient-flow solve (J J^T + lambda I) w = delta."),
    _F("flow_features", "flow.features", "Flow feature map.", flow_features.FEATURE_MAPS),
    _F("flow_rff_dim", "flow.rff_dim", "Random Fourier feature dimension."),
    _F("flow_solver", "flow.solver", "Flow solver.", flow_update.SOLVERS),
    _F("flow_rff_sigma", "flow.rff_sigma", "Bandwidth of the Gaussian kernel approximated by the RFF."),
    _F("flow_cg_iterations", "flow.cg_iterations", "Conjugate-gradient iterations of the cg solver."),
    _F("flow_metric", "flow.metric", "Flow metric (J J^T or E_z J_z J_z^T).", flow_update.METRICS),
)

# flag name -> the config fields it sets ("section.field").
FLAG_FIELDS = {flag.name: flag.field_names for flag in CONFIG_FLAGS}

# The flags whose default is not None: dataset and loss pick the preset, so their default is the config's.
_DEFAULTS = {"dataset": config_lib.DataConfig.dataset, "loss": config_lib.LossConfig.name}


def field_type(dotted: str) -> type:
  """The type of config field "section.field" (or a top-level field), Optional unwrapped: int, float, bool, str
  or tuple."""
  cls, name = config_lib.Config, dotted
  if "." in dotted:
    section, name = dotted.split(".")
    cls = typing.get_type_hints(config_lib.Config)[section]
  hint = typing.get_type_hints(cls)[name]
  if typing.get_origin(hint) is Union:  # Optional[X]
    hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
  return typing.get_origin(hint) or hint


class _Definer:
  """absl's DEFINE_* functions, each bound to one FlagValues."""

  def __init__(self, flag_values: absl_flags.FlagValues):
    self._flag_values = flag_values

  def __getattr__(self, name: str):
    return functools.partial(getattr(absl_flags, name), flag_values=self._flag_values)


def _define(f: _Definer, flag: ConfigFlag) -> None:
  default = _DEFAULTS.get(flag.name)
  if flag.name == "mixed_precision":  # an enum that is also a boolean flag
    f.DEFINE_flag(absl_flags.Flag(absl_flags.EnumParser(list(flag.choices)), absl_flags.ArgumentSerializer(),
                                  flag.name, default, flag.help, boolean=True))
  elif flag.choices is not None:
    f.DEFINE_enum(flag.name, default, list(flag.choices), flag.help)
  else:
    kind = field_type(flag.field_names[0]) if flag.field_names else bool
    define = {int: f.DEFINE_integer, float: f.DEFINE_float, bool: f.DEFINE_bool, str: f.DEFINE_string,
              tuple: f.DEFINE_list}[kind]
    define(flag.name, default, flag.help)


def define_flags(flag_values: absl_flags.FlagValues = absl_flags.FLAGS) -> None:
  """Defines every flag on `flag_values` (main.py: the global FLAGS; tests: a fresh FlagValues).

  Safe to call once per FlagValues.
  """
  f = _Definer(flag_values)
  f.DEFINE_enum("mode", "train", ["train", "export", "export_best"],
                "train; export: the generator of the latest checkpoint to <workdir>/export (or --export_dir); "
                "export_best: that of the best-KID checkpoint (best_kid/) to <workdir>/export_best_kid.")
  f.DEFINE_bool("dry_run", False, "Print the resolved config (preset + overrides) and exit.")
  for flag in CONFIG_FLAGS:
    _define(f, flag)
