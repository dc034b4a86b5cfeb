"""The one frozen configuration object the library receives.

Only `main.py`, `flags/` and `tools/` read command-line flags; they build a `Config`
(see `flags/build.py`) and hand it to the library. The field defaults are the built-in quick run, exactly
what `python main.py` with no flags trains (`--dry_run` prints it; a test holds them equal): the `shapes`
digits, one channel, 32 px, quarter-width SN-DCGAN with Wang's conv spectral norm, `rep_b`, Adam at 1e-3 /
5e-4, batch 32, 1000 steps, best-effort KID every 500 steps. The presets of `flags/presets.py` for every other
(dataset, loss) start from the papers' scale instead (full width, batch 64; `presets.PAPER_SCALE`).
"""

import dataclasses
import json
from typing import Any, Optional, Tuple


class ConfigError(ValueError):
  """A config value the library cannot use, with the field it came from.

  The field ("section.name", e.g. "model.critic_dim") lets the command line name the flag that set
  it (flags/build.py) without the library knowing about flags.

  Attributes:
    field: "section.name" of the bad value.
    value: the bad value.
    reason: why, in words that read after "<flag>=<value>: ".
  """

  def __init__(self, field: str, value: Any, reason: str):
    self.field, self.value, self.reason = field, value, reason
    super().__init__(f"{field.split('.')[-1]}={format_value(value)}: {reason}")


def format_value(value: Any) -> str:
  """A config value as it is written on the command line (tuples comma-separated)."""
  if isinstance(value, (tuple, list)):
    return ",".join(str(v) for v in value)
  return str(value)


# The choices of the fields that take one of a few fixed words (the others are keys of a library registry).
SCHEDULES = ("simultaneous", "alternating")  # TrainConfig.schedule
AUTO_TRUE_FALSE = ("auto", "true", "false")  # TrainConfig.mixed_precision and jit_compile
STRATEGIES = ("mirrored", "one_device", "multi_worker")  # Config.strategy


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where images come from and how they are preprocessed."""
  dataset: str = "shapes"          # a key of mmd_gan_tf.data.DATASETS
  image_size: int = 32
  channels: int = 1
  split: str = "train"
  data_dir: Optional[str] = None   # folder / tfrecord / lsun LMDB root
  tfds_data_dir: Optional[str] = None
  lsun_category: str = "bedroom"
  preprocessing: str = "default"   # named per-paper preset, e.g. celeb_a: wang | binkowski | li
  image_range: str = "tanh"        # tanh -> [-1, 1]; sigmoid -> [0, 1]
  corrupt_is_fatal: bool = False   # corrupt files: skip with a warning (False) or fail (True)
  shuffle_buffer: int = 10000
  shapes_style: str = "digits"     # shapes: digits (0-9, like MNIST) | simple (one on black) | mixed (1-3, colour)
  tfds_download: bool = False      # TFDS data missing from tfds_data_dir: download it (True) or fail (False)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Generator and critic architecture."""
  arch: str = "dcgan"              # a key of mmd_gan_tf.models.ARCHS
  image_size: int = 32
  channels: int = 1
  z_dim: int = 128
  z_distribution: str = "normal"   # normal (N(0,1)) | uniform (U[-1,1])
  critic_dim: int = 16
  width: float = 0.25              # channel multiplier; 1.0 = the paper's widths
  spectral_norm: str = "conv"      # none | matrix | conv | conv_gain | matrix_gain
  sn_multiplier: Optional[float] = None  # C in W * C / sigma; None -> sn_total_gain**(1/L) for conv, else 1
  sn_total_gain: float = 64.0      # C^L when sn_multiplier is None in conv mode (Wang's k)
  output_activation: str = "tanh"  # tanh | sigmoid (must agree with DataConfig.image_range)
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """Loss, kernel and penalty settings."""
  name: str = "rep_b"              # a key of mmd_gan_tf.losses.LOSSES
  kernel: str = "rbf"              # a key of mmd_gan_tf.kernels.KERNELS
  sigmas: Tuple[float, ...] = (1.0,)
  alphas: Tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0)
  dot_weight: float = 1.0
  rep_lambda: float = 1.0          # Wang's general form; 1 = repulsive, -1 = attractive
  bound_low: float = 0.25          # rep_b: fake-fake d2 lower bound
  bound_high: float = 4.0          # rep_b: real-real d2 upper bound
  gp_weight: float = 1.0
  l2_weight: float = 1.0
  ae_weight: float = 8.0
  one_sided_weight: float = 16.0
  mmd_epsilon: float = 1e-8
  smmd_scale: float = 10.0
  distance_epsilon: float = 1e-8   # under each root of the distance (energy) kernel
  poly_degree: int = 3             # KID polynomial kernel (gamma * a.b + coef)^degree
  poly_gamma: Optional[float] = None  # None -> 1 / feature dimension
  poly_coef: float = 1.0


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  """Optimisers of the critic and the generator."""
  optimizer: str = "adam"          # a key of mmd_gan_tf.optimizers.OPTIMIZERS
  critic_lr: float = 1e-3          # twice Wang's CIFAR-10 rates: the quick run (results/default_run)
  generator_lr: float = 5e-4
  beta1: float = 0.5
  beta2: float = 0.999
  epsilon: float = 1e-8
  rho: float = 0.99                # rmsprop
  clipnorm: Optional[float] = None  # per-tensor gradient clipping (Binkowski)
  weight_clip: Optional[float] = None  # critic weight clipping (Li)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """The training loop."""
  steps: int = 1000                # generator steps
  max_train_minutes: float = 0.0   # also stop after this much training time (evaluation excluded); 0 = off
  batch_size: int = 32             # global batch, split over replicas
  schedule: str = "simultaneous"   # simultaneous (Wang) | alternating (n_critic critic steps per G step)
  n_critic: int = 1
  n_critic_warmup: int = 0         # Li: 100 critic steps while g_step < warmup_steps or g_step % every == 0
  n_critic_warmup_steps: int = 25
  n_critic_warmup_every: int = 500
  seed: int = 0
  log_every: int = 100
  sample_every: int = 500
  checkpoint_every: int = 500
  keep_checkpoints: int = 3
  mixed_precision: str = "auto"    # bfloat16 compute: auto | true | false (trainer.use_mixed_precision)
  steps_per_loop: int = 1          # generator steps per call of the compiled training function
  jit_compile: str = "auto"        # XLA for the per-replica steps: auto | true | false (trainer.use_xla)
  init_from: str = ""              # a fresh run starts from this run's (or checkpoint's) variables; "" = off


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """In-training evaluation and KID-driven learning-rate adaptation."""
  eval_every: int = 500            # 0 = off
  eval_every_minutes: float = 0.0  # also evaluate every this many minutes of training time; 0 = off
  eval_at_start: bool = True       # also evaluate after the first step of a fresh run (the baseline)
  optional: bool = True            # weights missing: warn and train without KID (True) or fail (False)
  real_split: str = "test"         # held-out real images for KID: this split ("" = the training split)
  real_data_dir: str = ""          # ... or this data_dir ("" = the training data_dir)
  inception_weights: Optional[str] = None
  kid_subsets: int = 10
  kid_subset_size: int = 128
  num_samples: int = 256           # generated images per evaluation
  num_real: int = 0                # held-out real images per evaluation (0 = num_samples)
  metrics: Tuple[str, ...] = ("kid",)  # names in mmd_gan_tf.metrics.registry.METRICS; "kid" always among them
  lr_adaptation: bool = False
  lr_adaptation_every: int = 2000
  lr_adaptation_samples: int = 2048
  lr_adaptation_lag: int = 10      # memory of code sets; a test compares with the oldest (Binkowski)
  lr_adaptation_keep: int = 3      # sets kept in the memory after a decay (Binkowski)
  lr_adaptation_variance_floor: float = 1e-5  # t = diff / sqrt(max(var, floor)) (Binkowski)
  lr_adaptation_p: float = 0.1
  lr_adaptation_patience: int = 3
  lr_adaptation_factor: float = 0.5
  lr_floor: float = 1e-6
  fid_min_samples: int = 2048      # FID refuses fewer samples per set (metrics/fid.py)
  eval_batch_size: int = 100       # Inception forward batch size
  feature_cache_dir: Optional[str] = None  # real-feature cache; None -> ~/.cache/mmd_gan_tf

  @property
  def periodic(self) -> bool:
    """Whether the run evaluates KID while it trains (every `eval_every` steps or `eval_every_minutes`); the
    learning-rate adaptation computes its own KID tests and reads none of the evaluation's settings."""
    return bool(self.eval_every or self.eval_every_minutes)


@dataclasses.dataclass(frozen=True)
class FlowConfig:
  """The gradient-flow generator update."""
  flow_lambda: float = 1.0
  features: str = "critic"         # critic | rff
  rff_dim: int = 256
  solver: str = "direct"           # direct | cg
  metric: str = "mean"             # mean (J J^T) | per_sample (E_z J_z J_z^T)
  cg_iterations: int = 50
  cg_tolerance: float = 1e-6
  rff_sigma: float = 1.0           # bandwidth s of the Gaussian kernel the random features approximate
  jacobian_pfor: bool = False      # direct solver: vectorise the m reverse passes with pfor (dense nets)


@dataclasses.dataclass(frozen=True)
class Config:
  """Everything one run needs."""
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  loss: LossConfig = LossConfig()
  optim: OptimConfig = OptimConfig()
  train: TrainConfig = TrainConfig()
  eval: EvalConfig = EvalConfig()
  flow: FlowConfig = FlowConfig()
  workdir: str = "runs/shapes_rep_b"
  export_dir: Optional[str] = None
  strategy: str = "mirrored"       # mirrored | one_device | multi_worker
  cpu_devices: int = 0             # >0: split the host CPU into this many logical devices (no GPU)
  preset: str = "shapes/rep_b"     # the (dataset, loss) preset the config was resolved from

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "optim": OptimConfig,
             "train": TrainConfig, "eval": EvalConfig, "flow": FlowConfig}


_TOP_FIELDS = frozenset(f.name for f in dataclasses.fields(Config))


def config_from_dict(values: dict) -> Config:
  """Inverse of `Config.to_dict` (tuples restored from JSON lists)."""
  kwargs = {}
  for key, value in values.items():
    if key in _SECTIONS:
      cls = _SECTIONS[key]
      fields = {f.name: f for f in dataclasses.fields(cls)}
      section = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items() if k in fields}
      if key == "eval" and "metrics" not in value and value.get("fid"):  # a config of before `metrics`
        section["metrics"] = ("kid", "fid")
      if key == "train" and "mixed_precision" not in value:  # a config of before mixed precision: float32
        section["mixed_precision"] = "false"
      if key == "train" and isinstance(section.get("mixed_precision"), bool):  # before auto existed
        section["mixed_precision"] = "true" if section["mixed_precision"] else "false"
      kwargs[key] = cls(**section)
    elif key in _TOP_FIELDS:  # other keys (an export's exported_step) are not config fields
      kwargs[key] = value
  return Config(**kwargs)
