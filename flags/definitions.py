"""Every command-line flag of `main.py`, in one `define_flags()`.

All flags are optional. A flag left unset takes the value of the preset for the chosen
(dataset, loss) pair (see `flags/presets.py`); a flag given explicitly always wins.
"""

import functools
from typing import Mapping

from absl import flags as absl_flags

# The choices of --dataset, --loss, --arch, --kernel and --optimizer are the keys of the library's
# registries, so a name added there is a flag value at once. This imports TensorFlow, which every
# command but --help needs anyway.
from mmd_gan_tf import data
from mmd_gan_tf import images
from mmd_gan_tf import kernels
from mmd_gan_tf import losses
from mmd_gan_tf import models
from mmd_gan_tf import noise
from mmd_gan_tf import optimizers
from mmd_gan_tf.data import shapes
from mmd_gan_tf.metrics import registry as metric_registry

# flag name -> the config fields it sets ("section.field").
FLAG_FIELDS = {
    # data
    "dataset": ("data.dataset",),
    "image_size": ("data.image_size", "model.image_size"),
    "channels": ("data.channels", "model.channels"),
    "split": ("data.split",),
    "data_dir": ("data.data_dir",),
    "tfds_data_dir": ("data.tfds_data_dir",),
    "lsun_category": ("data.lsun_category",),
    "preprocessing": ("data.preprocessing",),
    "image_range": ("data.image_range",),
    "corrupt_is_fatal": ("data.corrupt_is_fatal",),
    "tfds_download": ("data.tfds_download",),
    "shuffle_buffer": ("data.shuffle_buffer",),
    "shapes_style": ("data.shapes_style",),
    # model
    "arch": ("model.arch",),
    "z_dim": ("model.z_dim",),
    "z_distribution": ("model.z_distribution",),
    "critic_dim": ("model.critic_dim",),
    "width": ("model.width",),
    "spectral_norm": ("model.spectral_norm",),
    "sn_multiplier": ("model.sn_multiplier",),
    "sn_total_gain": ("model.sn_total_gain",),
    "dot_weight": ("loss.dot_weight",),
    # loss
    "loss": ("loss.name",),
    "kernel": ("loss.kernel",),
    "sigmas": ("loss.sigmas",),
    "alphas": ("loss.alphas",),
    "rep_lambda": ("loss.rep_lambda",),
    "gp_weight": ("loss.gp_weight",),
    "l2_weight": ("loss.l2_weight",),
    # optimiser
    "optimizer": ("optim.optimizer",),
    "critic_lr": ("optim.critic_lr",),
    "generator_lr": ("optim.generator_lr",),
    "beta1": ("optim.beta1",),
    "beta2": ("optim.beta2",),
    "clipnorm": ("optim.clipnorm",),
    "weight_clip": ("optim.weight_clip",),
    # training loop
    "steps": ("train.steps",),
    "max_train_minutes": ("train.max_train_minutes",),
    "eval_every_minutes": ("eval.eval_every_minutes",),
    "batch_size": ("train.batch_size",),
    "schedule": ("train.schedule",),
    "n_critic": ("train.n_critic",),
    "seed": ("train.seed",),
    "log_every": ("train.log_every",),
    "sample_every": ("train.sample_every",),
    "checkpoint_every": ("train.checkpoint_every",),
    "keep_checkpoints": ("train.keep_checkpoints",),
    "mixed_precision": ("train.mixed_precision",),
    "steps_per_loop": ("train.steps_per_loop",),
    "jit_compile": ("train.jit_compile",),
    "init_from": ("train.init_from",),
    # evaluation
    "eval_every": ("eval.eval_every",),
    "eval_at_start": ("eval.eval_at_start",),
    "eval_split": ("eval.real_split",),
    "eval_data_dir": ("eval.real_data_dir",),
    "inception_weights": ("eval.inception_weights",),
    "kid_subsets": ("eval.kid_subsets",),
    "kid_subset_size": ("eval.kid_subset_size",),
    "eval_num_samples": ("eval.num_samples",),
    "eval_num_real": ("eval.num_real",),
    "eval_metrics": ("eval.metrics",),
    "fid": (),  # an alias: adds (or with --nofid removes) "fid" in --eval_metrics (flags/build.py)
    "lr_adaptation": ("eval.lr_adaptation",),
    "lr_adaptation_every": ("eval.lr_adaptation_every",),
    "lr_adaptation_samples": ("eval.lr_adaptation_samples",),
    "lr_adaptation_lag": ("eval.lr_adaptation_lag",),
    "lr_adaptation_patience": ("eval.lr_adaptation_patience",),
    "lr_adaptation_factor": ("eval.lr_adaptation_factor",),
    # gradient flow
    "flow_lambda": ("flow.flow_lambda",),
    "flow_features": ("flow.features",),
    "flow_rff_dim": ("flow.rff_dim",),
    "flow_solver": ("flow.solver",),
    "flow_metric": ("flow.metric",),
    "flow_rff_sigma": ("flow.rff_sigma",),
    "flow_cg_iterations": ("flow.cg_iterations",),
    # run
    "workdir": ("workdir",),
    "export_dir": ("export_dir",),
    "strategy": ("strategy",),
    "cpu_devices": ("cpu_devices",),
}


def described(registry: Mapping) -> str:
  """"name (description), ..." of a registry whose entries have a `description`."""
  return ", ".join(f"{name} ({spec.description})" if spec.description else name for name, spec in registry.items())


class _Definer:
  """absl's DEFINE_* functions, each bound to one FlagValues."""

  def __init__(self, flag_values: absl_flags.FlagValues):
    self._flag_values = flag_values

  def __getattr__(self, name: str):
    return functools.partial(getattr(absl_flags, name), flag_values=self._flag_values)


def define_flags(flag_values: absl_flags.FlagValues = absl_flags.FLAGS) -> None:
  """Defines every flag on `flag_values` (main.py: the global FLAGS; tests: a fresh FlagValues).

  Safe to call once per FlagValues.
  """
  f = _Definer(flag_values)
  # Run.
  f.DEFINE_enum("mode", "train", ["train", "export"], "train, or export the generator of the latest checkpoint.")
  f.DEFINE_bool("dry_run", False, "Print the resolved config (preset + overrides) and exit.")
  f.DEFINE_string("workdir", None, "Run directory (checkpoints, TensorBoard, samples, export). "
                  "Default: runs/<dataset>_<loss>. Re-using it resumes the run.")
  f.DEFINE_string("export_dir", None, "Where the SavedModel goes (default <workdir>/export).")
  f.DEFINE_enum("strategy", None, ["mirrored", "one_device", "multi_worker"],
                "tf.distribute strategy: mirrored (all local GPUs, or the CPU), one_device, or multi_worker "
                "(MultiWorkerMirroredStrategy configured by TF_CONFIG).")
  f.DEFINE_integer("cpu_devices", None, "On a machine without GPUs: split the CPU into this many logical "
                   "devices, so that --strategy=mirrored runs that many replicas (for testing distribution).")
  # Data.
  f.DEFINE_enum("dataset", "shapes", list(data.DATASETS), "Dataset; `shapes` is built in and needs no download.")
  f.DEFINE_integer("image_size", None, "Image height and width.")
  f.DEFINE_integer("channels", None, "Image channels (1 or 3).")
  f.DEFINE_string("split", None, "Dataset split (TFDS name, e.g. train or train+test).")
  f.DEFINE_string("data_dir", None, "Image folder, TFRecord directory, LSUN LMDB directory, or FILE.npz[:KEY] "
                  "for --dataset=npz.")
  f.DEFINE_string("tfds_data_dir", None, "TFDS data directory (datasets must already be prepared there).")
  f.DEFINE_string("lsun_category", None, "LSUN category (bedroom, church_outdoor, ...).")
  f.DEFINE_string("preprocessing", None, "Named per-paper preprocessing (e.g. wang, binkowski, li for celeb_a).")
  f.DEFINE_enum("image_range", None, list(images.IMAGE_RANGES), "Image range: tanh = [-1, 1], sigmoid = [0, 1].")
  f.DEFINE_bool("corrupt_is_fatal", None, "Fail on a corrupt image file instead of skipping it.")
  f.DEFINE_bool("tfds_download", None, "Let TFDS download a missing dataset into --tfds_data_dir.")
  f.DEFINE_integer("shuffle_buffer", None, "Shuffle buffer size in images.")
  f.DEFINE_enum("shapes_style", None, list(shapes.STYLES), "shapes: digits (one stroke-drawn digit 0-9, white "
                "on black, like MNIST), simple (one large bright disc, square or triangle on black) or mixed (1-3 "
                "shapes of any size on a random plain colour).")
  # Model.
  f.DEFINE_enum("arch", None, list(models.ARCHS), f"Architecture: {described(models.ARCHS)}.")
  f.DEFINE_integer("z_dim", None, "Latent dimension.")
  f.DEFINE_enum("z_distribution", None, list(noise.Z_DISTRIBUTIONS), "Latent distribution.")
  f.DEFINE_integer("critic_dim", None, "Critic output (feature) dimension.")
  f.DEFINE_float("width", None, "Channel-width multiplier of both networks (1 = the paper's widths).")
  f.DEFINE_enum("spectral_norm", None, ["none", "matrix", "conv", "conv_gain", "matrix_gain"],
                "Spectral normalisation.")
  f.DEFINE_float("sn_multiplier", None, "C in W * C / sigma (default sn_total_gain**(1/L) for conv, 1 otherwise).")
  f.DEFINE_float("sn_total_gain", None, "C^L for the conv modes when --sn_multiplier is not given (Wang's k: "
                 "64 for rep, 128 for his hinge baseline).")
  # Loss.
  f.DEFINE_enum("loss", "rep_b", list(losses.LOSSES), f"Loss: {described(losses.LOSSES)}.")
  f.DEFINE_enum("kernel", None, list(kernels.KERNELS), "Kernel on critic features (losses of the MMD "
                f"family): {described(kernels.KERNELS)}.")
  f.DEFINE_list("sigmas", None, "Bandwidths of rbf / mix_rbf (comma-separated).")
  f.DEFINE_list("alphas", None, "Alphas of mix_rq / mix_rq_dot (comma-separated).")
  f.DEFINE_float("dot_weight", None, "Weight w of the linear term of mix_rq_dot (Binkowski's mix_rq_1dot: 1).")
  f.DEFINE_float("rep_lambda", None, "Wang's lambda (1 = repulsive, -1 = attractive).")
  f.DEFINE_float("gp_weight", None, "Gradient-penalty weight.")
  f.DEFINE_float("l2_weight", None, "Critic activation L2 penalty weight (mmd_gp).")
  # Optimiser.
  f.DEFINE_enum("optimizer", None, list(optimizers.OPTIMIZERS),
                "Optimiser of both networks (the flow generator always uses SGD).")
  f.DEFINE_float("critic_lr", None, "Critic learning rate.")
  f.DEFINE_float("generator_lr", None, "Generator learning rate.")
  f.DEFINE_float("beta1", None, "Adam beta1.")
  f.DEFINE_float("beta2", None, "Adam beta2.")
  f.DEFINE_float("clipnorm", None, "Per-tensor gradient clipping norm (0 = off).")
  f.DEFINE_float("weight_clip", None, "Critic weight clipping bound (0 = off).")
  # Loop.
  f.DEFINE_integer("steps", None, "Generator steps.")
  f.DEFINE_float("max_train_minutes", None, "Stop after this many minutes of training time (evaluation "
                 "excluded; counted across resumes), with the usual final checkpoint and export. 0 = off.")
  f.DEFINE_float("eval_every_minutes", None, "Also evaluate KID every this many minutes of training time.")
  f.DEFINE_integer("batch_size", None, "Global batch size (split over replicas).")
  f.DEFINE_enum("schedule", None, ["simultaneous", "alternating"], "Update schedule.")
  f.DEFINE_integer("n_critic", None, "Critic steps per generator step (alternating schedule).")
  f.DEFINE_integer("seed", None, "Random seed.")
  f.DEFINE_integer("log_every", None, "Console/TensorBoard logging interval (steps).")
  f.DEFINE_integer("sample_every", None, "Sample-grid interval (steps).")
  f.DEFINE_integer("checkpoint_every", None, "Checkpoint interval (steps).")
  f.DEFINE_integer("keep_checkpoints", None, "Checkpoints kept.")
  # auto | true | false, and as a boolean flag: --mixed_precision means true, --nomixed_precision false.
  f.DEFINE_flag(absl_flags.Flag(
      absl_flags.EnumParser(["auto", "true", "false"]), absl_flags.ArgumentSerializer(), "mixed_precision",
      None, "Networks compute in bfloat16 with float32 variables (Keras mixed_bfloat16; no loss scaling "
      "needed); kernels, MMD^2 and losses stay float32. auto: on where bfloat16 units make it faster (CPUs "
      "with AMX or AVX-512 BF16, GPUs of compute capability 8.0+), off elsewhere (an AVX2-only CPU runs it "
      "several times slower); the log says which. --mixed_precision alone means true. Default: false.",
      boolean=True))
  f.DEFINE_integer("steps_per_loop", None, "Generator steps run inside one call of the compiled training "
                   "function (fewer host round trips, as Keras' steps_per_execution). Logging, samples, "
                   "checkpoints, evaluation and stop signals happen between calls, at the same steps as with "
                   "1: a loop never runs past the next of their intervals.")
  f.DEFINE_enum("jit_compile", None, ["auto", "true", "false"], "XLA-compile the per-replica training steps. "
                "auto: on with one replica on an AVX2-only CPU for the losses without gradients of "
                "gradients, where it measured faster; off on CPUs with AVX-512 (oneDNN beat XLA there), for "
                "the gradient-penalty and SMMD losses (much slower under XLA on a CPU), on GPUs (not yet "
                "measured) and with several logical CPU devices (XLA cannot place them).")
  f.DEFINE_string("init_from", None, "Start a fresh run from another run's variables: a run directory (its "
                  "latest checkpoint) or a checkpoint prefix (RUN/checkpoints/ckpt-N). Weights, optimizer "
                  "state and the step counter are taken over; the config is this run's own (e.g. another "
                  "loss or learning rate), and the networks must fit. Ignored once --workdir has a "
                  "checkpoint of its own (a resume).")
  # Evaluation.
  f.DEFINE_integer("eval_every", None, "KID/FID evaluation interval in steps (0 = off). The presets turn it "
                   "on whenever the FID Inception weights are available (given or cached); giving this "
                   "flag makes missing weights an error.")
  f.DEFINE_bool("eval_at_start", None, "Also evaluate after the first step of a fresh run (the baseline).")
  f.DEFINE_string("eval_split", None, "Held-out real images for KID: this split of the dataset (e.g. test; "
                  "for --dataset=npz the array x_<split>). Default: the training split.")
  f.DEFINE_string("eval_data_dir", None, "Held-out real images for KID: this --data_dir instead of the "
                  "training one (folder, tfrecord, lsun, FILE.npz:KEY).")
  f.DEFINE_string("inception_weights", None, "FID Inception weights (.npz, .tgz or .pb); default: the cache, "
                  "downloaded once when missing; none: no KID in training.")
  f.DEFINE_integer("kid_subsets", None, "KID subsets during training.")
  f.DEFINE_integer("kid_subset_size", None, "KID subset size.")
  f.DEFINE_integer("eval_num_samples", None, "Generated (and, unless --eval_num_real, real) images per evaluation.")
  f.DEFINE_integer("eval_num_real", None, "Held-out real images per evaluation (default: --eval_num_samples).")
  f.DEFINE_list("eval_metrics", None, "Metrics of the in-training evaluation, from "
                f"{[name for name in metric_registry.METRICS if name not in metric_registry.NEEDS_LOGITS]} "
                "(kid always among them; default: kid).")
  f.DEFINE_bool("fid", None, "Also compute FID during training (the same as adding fid to --eval_metrics).")
  f.DEFINE_bool("lr_adaptation", None, "KID-driven learning-rate adaptation (Binkowski).")
  f.DEFINE_integer("lr_adaptation_every", None, "Steps between 3-sample tests (2000).")
  f.DEFINE_integer("lr_adaptation_samples", None, "Real and generated codes per test (2048).")
  f.DEFINE_integer("lr_adaptation_lag", None, "Compare with the codes of this many tests earlier (10).")
  f.DEFINE_integer("lr_adaptation_patience", None, "Failures in a row before the rates decay (3).")
  f.DEFINE_float("lr_adaptation_factor", None, "Learning-rate decay factor (0.5; Arbel: 0.8).")
  # Gradient flow.
  f.DEFINE_float("flow_lambda", None, "lambda of the gradient-flow solve (J J^T + lambda I) w = delta.")
  f.DEFINE_enum("flow_features", None, ["critic", "rff"], "Flow feature map.")
  f.DEFINE_integer("flow_rff_dim", None, "Random Fourier feature dimension.")
  f.DEFINE_enum("flow_solver", None, ["direct", "cg"], "Flow solver.")
  f.DEFINE_float("flow_rff_sigma", None, "Bandwidth of the Gaussian kernel approximated by the RFF.")
  f.DEFINE_integer("flow_cg_iterations", None, "Conjugate-gradient iterations of the cg solver.")
  f.DEFINE_enum("flow_metric", None, ["mean", "per_sample"], "Flow metric (J J^T or E_z J_z J_z^T).")
