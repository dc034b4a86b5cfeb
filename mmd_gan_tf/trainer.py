"""The training loop: build, restore, step, log, checkpoint, export.

`train(cfg)` is the only entry point; `main.py` calls it with the frozen config.
"""

import contextlib
import dataclasses
import json
import re
import errno
import functools
import os
import shutil
import signal
import threading
import time
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from mmd_gan_tf import adaptation
from mmd_gan_tf import checkpointing
from mmd_gan_tf import config as config_lib
from mmd_gan_tf import data as data_lib
from mmd_gan_tf import distribute
from mmd_gan_tf import evaluation
from mmd_gan_tf import export as export_lib
from mmd_gan_tf import images as images_lib
from mmd_gan_tf import kernel_health
from mmd_gan_tf import losses as losses_lib
from mmd_gan_tf import models
from mmd_gan_tf import noise
from mmd_gan_tf import onednn
from mmd_gan_tf import optimizers
from mmd_gan_tf import steps as steps_lib
from mmd_gan_tf import summaries

NUM_GRID_SAMPLES = 64


class DivergedError(RuntimeError):
  """A loss became NaN or infinite."""


class DiskFullError(RuntimeError):
  """A checkpoint or export could not be written (no space left, or the folder lost its write permission);
  the previous checkpoint is intact."""


def build_networks(cfg: config_lib.Config) -> steps_lib.Networks:
  """Models and optimizers; call inside `strategy.scope()`.

  Optimizers are built on their variables here, before the first traced step (otherwise the
  slot variables would be created inside `strategy.run` and fail).
  Initial weights and spectral-norm power vectors are drawn from `cfg.train.seed`: the same seed builds the
  same networks, in a fresh process or the tenth run of one.
  """
  keras.utils.set_random_seed(cfg.train.seed)
  generator = models.build_generator(cfg.model)
  critic = models.build_critic(cfg.model)
  # Li's decoder exists only for a loss that reads reconstructions: any other loss on arch li would leave
  # it without gradients, which the global gradient clipping cannot take.
  decoder = models.build_decoder(cfg.model) if losses_lib.get_loss(cfg.loss.name).needs_decoder else None
  critic_optimizer = optimizers.make_optimizer(cfg.optim, cfg.optim.critic_lr)
  # A loss may fix the generator's optimizer: the gradient flow's step J^T w is a natural-gradient
  # direction that Adam's per-coordinate rescaling would destroy (losses.LOSSES["flow"]).
  required = losses_lib.get_loss(cfg.loss.name).generator_optimizer
  generator_optim = dataclasses.replace(cfg.optim, optimizer=required) if required else cfg.optim
  generator_optimizer = optimizers.make_optimizer(generator_optim, cfg.optim.generator_lr)
  nets = steps_lib.Networks(generator, critic, decoder, critic_optimizer, generator_optimizer)
  critic_optimizer.build(nets.critic_variables)
  generator_optimizer.build(generator.trainable_variables)
  return nets


def cpu_flags(cpuinfo_path: str = "/proc/cpuinfo") -> frozenset:
  """The feature flags of this CPU (the first `flags` line of `cpuinfo_path`); empty where unreadable."""
  try:
    with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
      for line in f:
        if line.startswith("flags"):
          return frozenset(line.split(":", 1)[1].split())
  except OSError:
    pass
  return frozenset()


def bfloat16_pays() -> tuple:
  """(whether bfloat16 compute is faster than float32 here, why): GPUs of compute capability 8.0 or newer
  (bfloat16 tensor cores; the usual choice there, not yet measured by this project); CPUs with AMX or
  AVX-512 BF16 units (measured: Wang's step 1.9-2.0x on AMX, 1.5x on AVX-512 BF16); not on other CPUs
  (AVX2 only: 5-7x slower). BENCHMARKS.md, "Step benchmark"."""
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") or (0, 0)
    if tuple(capability) >= (8, 0):
      return True, f"GPU with compute capability {capability[0]}.{capability[1]} (bfloat16 units)"
    return False, f"GPU with compute capability {capability[0]}.{capability[1]} (no bfloat16 units)"
  units = sorted(cpu_flags() & {"amx_bf16", "avx512_bf16"})
  if units:
    return True, f"CPU with {' and '.join(units)}"
  return False, "CPU without bfloat16 units (no amx_bf16 or avx512_bf16: bfloat16 is several times slower)"


def use_mixed_precision(setting) -> bool:
  """`--mixed_precision`: true/false (or a bool, for library callers), or auto (`bfloat16_pays`)."""
  if isinstance(setting, bool):
    return setting
  if setting == "auto":
    return bfloat16_pays()[0]
  return setting == "true"


@contextlib.contextmanager
def dtype_policy(mixed_precision):
  """Layers built inside compute in bfloat16 with float32 variables when `mixed_precision` (a bool, or
  `--mixed_precision`'s auto / true / false, `use_mixed_precision`).

  bfloat16 has float32's exponent range, so no loss scaling is needed. Generator outputs and critic
  features are float32 (models/common.py, steps.py): kernels, MMD^2 and losses stay float32.
  """
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy("mixed_bfloat16" if use_mixed_precision(mixed_precision) else "float32")
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)


def make_checkpoint(nets: steps_lib.Networks, step: tf.Variable, **extra) -> tf.train.Checkpoint:
  """Everything a resumed run needs: weights, optimizer slots, the step (which keys all noise)."""
  objects = dict(generator=nets.generator, critic=nets.critic, critic_optimizer=nets.critic_optimizer,
                 generator_optimizer=nets.generator_optimizer, step=step, **extra)
  if nets.decoder is not None:
    objects["decoder"] = nets.decoder
  return tf.train.Checkpoint(**objects)


# The evaluation's state in a checkpoint (evaluation.make_evaluation): a run that trained without KID or lr
# adaptation has none, and may still be resumed (or used by --init_from) with them.
_EVALUATION_STATE = ("best_kid", "lr_adaptation")


def _restore(checkpoint: tf.train.Checkpoint, prefix: str, advice: str, source: str = "") -> None:
  """Restores `prefix`, turning a mismatch of the networks into one error that names the checkpoint (after
  `source`, e.g. the flag that named it) and ends with `advice`."""
  children = checkpoint._trackable_children()  # pylint: disable=protected-access
  core = tf.train.Checkpoint(**{k: v for k, v in children.items() if k not in _EVALUATION_STATE})
  optional = {k: v for k, v in children.items() if k in _EVALUATION_STATE}
  try:
    status = core.restore(prefix)
    status.expect_partial()  # values of the checkpoint this config has no use for (another optimizer's slots)
    status.assert_existing_objects_matched()  # ... but every object of this config is restored
    if optional:  # a run that trained without KID saved none: they start afresh
      tf.train.Checkpoint(**optional).restore(prefix).expect_partial()
  except (AssertionError, ValueError, tf.errors.OpError) as e:
    raise ValueError(f"{source}{prefix} does not fit the networks of this config ({_mismatch(e)}); "
                     f"{advice}") from None


def _mismatch(error: Exception) -> str:
  """The gist of a failed restore: which variable has which shape here and in the checkpoint (Keras' message
  goes on to print the variable's values), else the error's first line."""
  text = str(error).strip()
  shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))\. Target variable: "
                     r"<Variable path=([^,\s]+)", text)
  if shapes:
    return f"{shapes.group(3)} has shape {shapes.group(1)} here, {shapes.group(2)} in the checkpoint"
  return (text.splitlines()[0] if text else type(error).__name__)[:300]


def _initialise_from(checkpoint: tf.train.Checkpoint, step: tf.Variable, cfg: config_lib.Config) -> None:
  """`--init_from`: restores the source's newest readable checkpoint (one deleted while read, as a source
  that still trains rotates them, is looked up again) and refuses a source already at `--steps`."""
  source = cfg.train.init_from
  for attempt in range(3):
    prefix, skipped = checkpointing.resolve_init_from(source)
    for bad, error in skipped:
      logging.warning("--init_from=%s: %s does not read back (%s): using the one before", source, bad, error)
    try:
      _restore(checkpoint, prefix, "give the architecture and widths it was trained with",
               source=f"--init_from={source}: ")
      break
    except ValueError:
      if attempt == 2 or checkpointing.readable(prefix):  # it still reads: the networks really differ
        raise
      logging.warning("--init_from=%s: %s went away while being read (is that run still training?): taking "
                      "its newest checkpoint again", source, prefix)
  if int(step.numpy()) >= cfg.train.steps:
    raise ValueError(f"--init_from={source}: {prefix} is at step {int(step.numpy())}, not below "
                     f"--steps={cfg.train.steps}: nothing to train (the step count carries on from the source; "
                     "give a larger --steps)")
  logging.info("Initialised from %s (--init_from) at step %d; this run's own config from here on", prefix,
               int(step.numpy()))
  source_optimizer = (checkpointing.config_in_checkpoint(prefix) or {}).get("optim", {}).get("optimizer")
  if source_optimizer and source_optimizer != cfg.optim.optimizer:
    logging.warning("--init_from=%s trained with --optimizer=%s: its optimizer state is left out, --optimizer=%s "
                    "starts from a fresh state", source, source_optimizer, cfg.optim.optimizer)


def make_counters():
  """(step, critic_count): the generator- and critic-step counters that key the noise.

  Call inside `strategy.scope()`. ONLY_FIRST_REPLICA: an update made in replica context counts once, not once
  per replica.
  """
  step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
  critic_count = tf.Variable(0, dtype=tf.int64, trainable=False, name="critic_count",
                             aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
  return step, critic_count


@functools.lru_cache(maxsize=None)
def cpu_has_avx512(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
  """Whether this CPU reports AVX-512 (`avx512f` among the flags of `cpuinfo_path`); False where unreadable."""
  try:
    with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
      return any(line.startswith("flags") and " avx512f" in line for line in f)
  except OSError:
    return False


def use_xla(cfg: config_lib.Config, strategy) -> bool:
  """Whether the per-replica steps are XLA-compiled: `--jit_compile=true|false`, or `auto`.

  auto: on only for a single CPU replica of an AVX2-only CPU running TensorFlow's own kernels (oneDNN off:
  `TF_ENABLE_ONEDNN_OPTS=0`) and a loss whose critic update has no gradients of gradients, where XLA measured
  faster than those kernels (2-core AVX2 VM: the default run's networks 1.6-1.7x, a tiny network 2.0x). Off
  where oneDNN runs (every x86-64 Linux CPU unless the user turns it off, `onednn`): its kernels beat XLA's
  code (AVX2 VM: the default run's networks 2.5x slower with XLA; AVX-512 BF16 VM: Wang's SN-DCGAN, the
  ResNet and Li's DCGAN at quarter width 1.4-1.9x slower) and on CPUs with AVX-512; off for the second-order
  losses (`LossSpec.second_order`: Binkowski's mmd_gp step took 91 s instead of 6.7 s), on GPUs (not yet
  measured), and with several CPU replicas: XLA cannot place the replicas of logical CPU devices (it pins
  every compiled replica step to the first one) nor compile the cross-worker collectives of a multi-worker
  CPU run.
  BENCHMARKS.md, "XLA and steps per loop" and "Step benchmark", has the numbers.
  """
  setting = cfg.train.jit_compile
  gpus = bool(tf.config.list_logical_devices("GPU"))
  if setting == "true":
    if strategy.num_replicas_in_sync > 1 and not gpus:
      raise ValueError(f"--jit_compile=true needs a single replica on a CPU; got "
                       f"{strategy.num_replicas_in_sync} replicas (logical CPU devices or CPU workers): use "
                       "--jit_compile=false")
    return True
  if setting == "false":
    return False
  second_order = losses_lib.LOSSES[cfg.loss.name].second_order
  return (strategy.num_replicas_in_sync == 1 and not gpus and not second_order and not cpu_has_avx512()
          and not onednn.enabled())


def replica_fns(nets, cfg, spec, generator_update=None, jit_compile: bool = False):
  """(simultaneous_fn, critic_fn, generator_fn) of `steps.make_replica_fns`, XLA-compiled if asked."""
  fns = steps_lib.make_replica_fns(nets, cfg, spec, generator_update)
  if jit_compile:
    fns = tuple(tf.function(fn, jit_compile=True) for fn in fns)
  return fns


def distributed_fns(strategy, nets, cfg, spec, step, critic_count, generator_update=None,
                    jit_compile: bool = False):
  """tf.functions running one (simultaneous | critic | generator) step on the next batch.

  Each function advances its own counter, which keys its noise: every critic step of an
  alternating schedule draws fresh z, and a resumed run continues the same streams.
  """
  simultaneous_fn, critic_fn, generator_fn = replica_fns(nets, cfg, spec, generator_update, jit_compile)

  def wrap(replica_fn, counter):
    return tf.function(lambda iterator: _on_next_batch(strategy, replica_fn, counter, iterator))

  return wrap(simultaneous_fn, step), wrap(critic_fn, critic_count), wrap(generator_fn, step)


def _on_next_batch(strategy, replica_fn, counter, iterator) -> dict:
  """One step of `replica_fn` on every replica, on the next batch and the noise keyed by `counter` (then
  advanced); the metrics averaged over the replicas. Traced inside the callers' tf.functions."""
  real = next(iterator)
  per_replica = strategy.run(replica_fn, args=(real, counter.read_value()))
  metrics = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in per_replica.items()}
  counter.assign_add(1)
  return metrics


def loop_fn(strategy, nets, cfg, spec, step, critic_count, generator_update=None, jit_compile: bool = False):
  """A tf.function `run(iterator, count)` running `count` >= 1 generator steps in one call.

  Each generator step is what `iteration` runs (simultaneous, or the critic steps with Li's clipping and
  warm-up counts, then the generator), on the same batches and noise streams, so `count` calls of
  `iteration` and one `run(iterator, count)` leave the same weights. Returns the last step's metrics.
  """
  simultaneous_fn, critic_fn, generator_fn = replica_fns(nets, cfg, spec, generator_update, jit_compile)
  train = cfg.train

  # The loop calls each step twice (once before it, to give the loop's metrics their structure, and in its
  # body): as tf.functions they are traced once and called twice, which halves the loop's tracing time.
  @tf.function
  def critic_step(iterator):
    if cfg.optim.weight_clip:
      clip_weights(nets.critic.trainable_variables, cfg.optim.weight_clip)
    return _on_next_batch(strategy, critic_fn, critic_count, iterator)

  @tf.function
  def generator_step(iterator):
    if train.schedule == "simultaneous":
      return _on_next_batch(strategy, simultaneous_fn, step, iterator)
    critic_steps = tf.cast(critic_steps_for(train, step.read_value()), tf.int64)
    critic_metrics = critic_step(iterator)
    for _ in tf.range(critic_steps - 1):
      critic_metrics = critic_step(iterator)
    return {**critic_metrics, **_on_next_batch(strategy, generator_fn, step, iterator)}

  @tf.function
  def run(iterator, count):
    metrics = generator_step(iterator)
    for _ in tf.range(count - 1):
      metrics = generator_step(iterator)
    return metrics

  return run


def next_boundary(cfg: config_lib.Config, current: int, first_eval: bool) -> int:
  """The next step after `current` at which the host must act: log, sample, checkpoint, evaluate, adapt the
  learning rates, or the end. A loop of `--steps_per_loop` steps stops there, so these happen at the same
  steps whatever the loop length."""
  intervals = [cfg.train.log_every, cfg.train.sample_every, cfg.train.checkpoint_every, cfg.eval.eval_every]
  candidates = [cfg.train.steps] + [(current // every + 1) * every for every in intervals if every]
  if cfg.eval.lr_adaptation:
    candidates.append(adaptation.next_test_step(current, cfg.eval.lr_adaptation_every))
  if first_eval and current == 0:
    candidates.append(1)
  return min(candidates)


def clip_weights(variables, bound: float) -> None:
  """Li et al.: clip critic weights to [-bound, bound] at the start of each critic iteration (as Li's loop
  clamps them before each critic update: the first step already sees clipped weights, the generator step
  the weights of the last critic update)."""
  for v in variables:
    v.assign(tf.clip_by_value(v, -bound, bound))


def critic_steps_for(cfg: config_lib.TrainConfig, generator_step):
  """n_critic, or Li's warm-up count while the generator is young and every few hundred steps.

  `generator_step` is an int (an int comes back) or an integer tensor, e.g. the step counter read inside
  a compiled loop (an int64 tensor comes back): one rule for the host loop and for `loop_fn`.
  """
  if not cfg.n_critic_warmup:
    return cfg.n_critic
  warm = (generator_step < cfg.n_critic_warmup_steps) | (generator_step % cfg.n_critic_warmup_every == 0)
  if tf.is_tensor(warm):
    return tf.where(warm, tf.constant(cfg.n_critic_warmup, tf.int64), tf.constant(cfg.n_critic, tf.int64))
  return cfg.n_critic_warmup if warm else cfg.n_critic


def _dataset(strategy, cfg: config_lib.Config, start_step: int):
  global_batch = cfg.train.batch_size

  def dataset_fn(ctx):
    # A resumed run reads a fresh part of the stream instead of replaying the start.
    return data_lib.make_dataset(cfg.data, ctx.get_per_replica_batch_size(global_batch),
                                 seed=noise.data_seed(cfg.train.seed, start_step), input_context=ctx)

  return iter(strategy.distribute_datasets_from_function(dataset_fn))


def _fixed_noise(cfg: config_lib.Config) -> tf.Tensor:
  return noise.sample_z(cfg.model, NUM_GRID_SAMPLES, noise.step_seed(cfg.train.seed, -1, noise.SAMPLES))


def _write_samples(nets, cfg, fixed_z, workdir, writer, step: int) -> str:
  images = images_lib.to_uint8(nets.generator(fixed_z, training=False), cfg.data.image_range).numpy()
  grid = images_lib.image_grid(images)
  os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
  path = os.path.join(workdir, "samples", f"step_{step:07d}.png")
  summaries.write_png(path, grid)
  with writer.as_default(step=step):
    tf.summary.image("samples", grid[None])
  return path


def _check_finite(metrics: dict, step: int, manager) -> None:
  bad = {k: v for k, v in metrics.items() if not np.isfinite(v)}
  if bad:
    raise DivergedError(f"training diverged at step {step}: {bad}; last good checkpoint: "
                        f"{manager.latest_checkpoint}")


def _disk_full(error: Exception) -> bool:
  if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
    return True
  return isinstance(error, tf.errors.OpError) and ("No space left" in str(error)
                                                    or isinstance(error, tf.errors.ResourceExhaustedError))


def _save(manager: tf.train.CheckpointManager, current: int, workdir: str, chief: bool,
          train_seconds: float) -> None:
  """Checkpoint `current` (+ its training time); a full disk is one clear error, the last save kept."""
  try:
    manager.save(checkpoint_number=current)
    if chief:
      checkpointing.write_train_seconds(workdir, current, train_seconds)
  except (OSError, tf.errors.OpError) as error:
    checkpointing.remove_partial_saves(workdir)
    if _disk_full(error):
      raise DiskFullError(f"no space left to checkpoint step {current} in --workdir={workdir}; the last "
                          f"complete checkpoint is {manager.latest_checkpoint}. Free space and run the same "
                          "command again to continue from it") from None
    if isinstance(error, (OSError, tf.errors.PermissionDeniedError, tf.errors.NotFoundError)):
      reason = getattr(error, "strerror", None) or str(getattr(error, "message", error)).split(";")[-1].strip()
      raise DiskFullError(f"cannot checkpoint step {current} in --workdir={workdir} ({reason}); the last "
                          f"complete checkpoint is {manager.latest_checkpoint}. Make the folder writable and "
                          "run the same command again to continue from it") from None
    raise


def export(generator, cfg: config_lib.Config, export_dir: str, step: Optional[int] = None) -> None:
  """`export_lib.export_generator`, with a full disk as one DiskFullError (the unfinished copy removed, the
  previous export and every checkpoint kept)."""
  try:
    export_lib.export_generator(generator, cfg, export_dir, step)
  except (OSError, tf.errors.OpError) as error:
    if not _disk_full(error):
      raise
    unfinished = os.path.abspath(export_dir) + ".tmp"
    if export_lib.is_export(unfinished, finished=False):
      shutil.rmtree(unfinished, ignore_errors=True)
    raise DiskFullError(f"no space left to export the generator to {export_dir}; the checkpoints and any "
                        "earlier export are kept. Free space and run python main.py --mode=export "
                        f"--workdir={cfg.workdir}") from None


def iteration(cfg: config_lib.Config, nets: steps_lib.Networks, fns, iterator, generator_step: int) -> dict:
  """One generator step: simultaneous, or n_critic critic steps (with Li's clipping) then G."""
  simultaneous_fn, critic_fn, generator_fn = fns
  if cfg.train.schedule == "simultaneous":
    return simultaneous_fn(iterator)
  for _ in range(critic_steps_for(cfg.train, generator_step)):
    if cfg.optim.weight_clip:  # before each critic step, as Li's loop clamps: the generator sees the last update
      clip_weights(nets.critic.trainable_variables, cfg.optim.weight_clip)
    critic_metrics = critic_fn(iterator)
  return {**critic_metrics, **generator_fn(iterator)}


def _learning_rates(nets: steps_lib.Networks) -> dict:
  return {"lr/critic": float(nets.critic_optimizer.learning_rate.numpy()),
          "lr/generator": float(nets.generator_optimizer.learning_rate.numpy())}


def _apply_config_learning_rates(nets: steps_lib.Networks, cfg: config_lib.Config) -> None:
  """The command line's rates, also over rates a restored checkpoint brought (resume, --init_from); a change
  is logged."""
  restored = _learning_rates(nets)
  wanted = {"lr/critic": cfg.optim.critic_lr, "lr/generator": cfg.optim.generator_lr}
  changed = {k: v for k, v in wanted.items() if not np.isclose(restored[k], v, rtol=1e-6, atol=0.0)}
  nets.critic_optimizer.learning_rate.assign(cfg.optim.critic_lr)
  nets.generator_optimizer.learning_rate.assign(cfg.optim.generator_lr)
  if changed:
    logging.info("learning rates of this run's config, not the checkpoint's: %s",
                 ", ".join(f"{k.split('/')[1]} {restored[k]:g} -> {v:g}" for k, v in changed.items()))


def _adapt_learning_rates(lr_adapter: adaptation.KidLrAdapter, nets: steps_lib.Networks, writer,
                          step: int) -> None:
  """Runs the 3-sample test (when old codes exist) and logs its decision and the new rates."""
  decision = lr_adapter(nets.generator, step)
  if "lr_adaptation/p_value" not in decision:  # filling the memory (or a dropped code set): no test
    summaries.write_scalars(writer, decision, step)
    return
  summaries.write_scalars(writer, {**decision, **_learning_rates(nets)}, step)
  logging.info("step %d | lr adaptation: p=%.4g failures=%d lr_factor=%.4g%s", step,
               decision["lr_adaptation/p_value"], int(decision["lr_adaptation/failures"]),
               decision["lr_adaptation/lr_factor"],
               " (learning rates decayed)" if decision["lr_adaptation/decayed"] else "")


class _EvalClock:
  """Evaluation every `interval` seconds of training time: due once per crossed multiple (0 = never)."""

  def __init__(self, interval: float, train_seconds: float):
    self._interval = interval
    self._next = (int(train_seconds // interval) + 1) * interval if interval else float("inf")

  def due(self, train_seconds: float) -> bool:
    if train_seconds < self._next:
      return False
    self._next = (int(train_seconds // self._interval) + 1) * self._interval
    return True


class Interrupted(Exception):
  """SIGTERM or Ctrl-C stopped the run at a step boundary, after saving a checkpoint there."""

  def __init__(self, step: int, signal_name: str):
    super().__init__(f"{signal_name} at step {step}: checkpoint saved; run the same command again to continue")
    self.step, self.signal_name = step, signal_name


class _StopRequests:
  """While active (main thread only), SIGTERM, SIGINT and SIGHUP ask the loop to stop at the next step boundary.

  A second Ctrl-C while the first is pending stops at once (KeyboardInterrupt). Signals that arrive during one
  TensorFlow call are taken in the order they came and each counts: Python runs its handlers only between
  calls, once per kind of signal and in signal-number order, so they are read from the wakeup pipe, where
  the interpreter writes each signal's number as it arrives.
  """

  # SIGHUP: the terminal closed or the ssh connection dropped under a foreground run.
  SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

  def __init__(self):
    self.signal_name = None
    self.trained = False  # the last step is done: only the export is left
    self.saved = False  # the interrupted step's checkpoint is written: nothing is left to stop
    self._previous = {}
    self._pipe = None
    self._previous_wakeup = -1

  def _arrived(self, signum) -> list:
    """The signals that arrived since the last look, oldest first ([signum] without the wakeup pipe; [] when
    an earlier handler call of this batch took them all)."""
    if self._pipe is None:
      return [signum]
    try:
      numbers = os.read(self._pipe[0], 1024)
    except BlockingIOError:
      return []
    return [signal.Signals(n) for n in numbers if n in self.SIGNALS]

  def _handle(self, signum, frame):
    del frame
    for arrived in self._arrived(signum):
      self._one(arrived)

  def _one(self, signum):
    if self.trained:  # nothing left to save: the run ends as it would have
      logging.warning("%s received after the last step: every step is saved; finishing the export",
                      signal.Signals(signum).name)
      return
    if self.saved:  # the stop is already saved: exit as interrupted (75), not as killed by Ctrl-C (130)
      return
    if self.signal_name is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.signal_name = signal.Signals(signum).name
    logging.warning("%s received: saving a checkpoint at the end of this step, then stopping (Ctrl-C again "
                    "to stop at once)", self.signal_name)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
      self._pipe = os.pipe()
      for end in self._pipe:
        os.set_blocking(end, False)
      self._previous_wakeup = signal.set_wakeup_fd(self._pipe[1], warn_on_full_buffer=False)
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    if self._pipe is not None:
      signal.set_wakeup_fd(self._previous_wakeup)
      for end in self._pipe:
        os.close(end)
      self._pipe = None


def train(cfg: config_lib.Config, strategy: Optional[tf.distribute.Strategy] = None) -> dict:
  """Trains (or resumes) the run in `cfg.workdir`; returns the last logged metrics.

  Raises:
    ValueError: a bad setting, or the workdir is in use by another run (it is locked while training).
    Interrupted: SIGTERM / Ctrl-C arrived; a checkpoint of the interrupted step was saved.
  """
  strategy = strategy or distribute.make_strategy(cfg.strategy, cfg.cpu_devices)
  lock = None
  created = not os.path.exists(cfg.workdir)
  if distribute.is_chief(strategy):
    checkpointing.prepare_workdir(cfg.workdir)
    lock = checkpointing.WorkdirLock(cfg.workdir)
    removed = checkpointing.remove_partial_saves(cfg.workdir)
    if removed:
      logging.warning("removed %d partial checkpoint folder(s) of an interrupted save: %s", len(removed),
                      ", ".join(removed))
  refused = False
  try:
    with _StopRequests() as stop:
      return _train(cfg, strategy, stop, lock)
  except Exception:  # pylint: disable=broad-except
    refused = True
    raise
  finally:
    if lock is not None:
      lock.release(restore=refused and not lock.writing)
      if refused and created:  # stopped before its first write: leave no empty run directory behind
        checkpointing.remove_unused_workdir(cfg.workdir)


@dataclasses.dataclass
class _Run:
  """What a run works with once it is set up (`_setup`): networks, counters, checkpointing, evaluation."""
  cfg: config_lib.Config
  strategy: tf.distribute.Strategy
  chief: bool
  xla: bool
  nets: steps_lib.Networks
  step: tf.Variable
  critic_count: tf.Variable
  generator_update: Optional[Callable]
  run_config: tf.Variable
  checkpoint: tf.train.Checkpoint
  manager: tf.train.CheckpointManager
  evaluator: Optional[evaluation.Evaluator]
  lr_adapter: Optional[adaptation.KidLrAdapter]
  workdir_held: Callable[[], bool] = lambda: True  # the chief's workdir lock is still its own
  stall_watch: Optional[kernel_health.StallWatch] = None  # warns when the kernel means stay stuck


class WorkdirLost(ValueError):
  """The workdir was deleted, moved or replaced while the run trained; nothing more is written."""


def _train(cfg: config_lib.Config, strategy: tf.distribute.Strategy, stop: _StopRequests,
           lock: Optional[checkpointing.WorkdirLock] = None) -> dict:
  """Set up, restore, train, export. Everything that can refuse the run comes before its first write."""
  run = _setup(cfg, strategy)
  if lock is not None:
    run.workdir_held = lock.held
  start_step = _resume_or_initialise(run)
  train_seconds = checkpointing.read_train_seconds(cfg.workdir, start_step,
                                                   resumed=run.manager.latest_checkpoint is not None)
  idle = _warn_if_nothing_to_train(run.cfg, start_step, train_seconds)  # the --steps given, not the run's own
  if run.manager.latest_checkpoint:  # the settings given apply only where the run trains on
    run.cfg, note = checkpointing.settled_config(json.loads(run.run_config.numpy()), run.cfg, idle=idle)
    if note:
      logging.warning(note)
  cfg = run.cfg  # a resume keeps the run's own --init_from
  if run.evaluator is not None:
    run.evaluator.after_restore(start_step)
  iterator = _dataset(strategy, cfg, start_step)  # a data source that cannot serve: refused before any write
  if lock is not None:
    lock.writing = True
  writer = _begin(run, start_step)
  metrics = _loop(run, iterator, writer, start_step, train_seconds, stop)
  stop.trained = True
  # Also when the run resumed at its final step: a crash between the last checkpoint and the export
  # must not leave an older export behind.
  if run.chief:
    export_dir = cfg.export_dir or os.path.join(cfg.workdir, "export")
    export(run.nets.generator, cfg, export_dir, int(run.step.numpy()))
    logging.info("Exported the generator to %s", export_dir)
  return {k: float(v) for k, v in metrics.items()}


def _generator_update(cfg: config_lib.Config) -> tuple:
  """(the loss's own generator update or None, its checkpointed objects); inside `strategy.scope()`."""
  kind = losses_lib.LOSSES[cfg.loss.name].generator_update
  if kind is None:
    return None, {}
  update = kind.build(cfg)
  return update, dict(update.checkpointed)


def _setup(cfg: config_lib.Config, strategy: tf.distribute.Strategy) -> _Run:
  """Networks, counters, checkpoint and evaluation; refuses settings the strategy cannot run. Writes nothing
  but moving an unreadable newest checkpoint aside."""
  replicas = strategy.num_replicas_in_sync
  logging.info("%s with %d replica(s): %s", type(strategy).__name__, replicas,
               ", ".join(getattr(strategy.extended, "worker_devices", ())))
  if cfg.train.batch_size % replicas:
    raise ValueError(f"--batch_size={cfg.train.batch_size} must be divisible by the {replicas} replicas")
  xla = use_xla(cfg, strategy)  # may refuse the setting: before anything is written
  chief = distribute.is_chief(strategy)
  logging.info("%s", onednn.state_line(onednn.enabled()))
  if cfg.train.mixed_precision == "auto":
    on, why = bfloat16_pays()
    logging.info("Mixed precision (bfloat16 compute): %s, --mixed_precision=auto on a %s", "on" if on else "off",
                 why)
  with strategy.scope(), dtype_policy(cfg.train.mixed_precision):
    nets = build_networks(cfg)
    step, critic_count = make_counters()
    generator_update, tracked = _generator_update(cfg)
  # The checkpoint carries the resolved config, so the run's identity survives a lost config.json.
  run_config = tf.Variable(cfg.to_json(), dtype=tf.string, trainable=False, name="run_config")
  checkpoint = make_checkpoint(nets, step, run_config=run_config, critic_count=critic_count, **tracked)
  checkpoint_dir = os.path.join(cfg.workdir, "checkpoints")
  if chief:
    checkpointing.refuse_outside_state(checkpoint_dir)
    repaired = checkpointing.repair_checkpoint_state(checkpoint_dir)
    if repaired:
      logging.warning(repaired)
    for bad, error, folder in checkpointing.quarantine_unreadable(checkpoint_dir):
      logging.warning("checkpoint %s is unreadable (%s): moved to checkpoints/%s/, falling back to the "
                      "previous one", bad, error, folder)
  manager = tf.train.CheckpointManager(checkpoint, distribute.write_dir(checkpoint_dir, strategy),
                                       max_to_keep=cfg.train.keep_checkpoints)
  if chief:
    unchecked = checkpointing.check_resume(cfg, cfg.workdir, manager.latest_checkpoint)
    if unchecked:
      logging.warning(unchecked)
  evaluator, lr_adapter = evaluation.make_evaluation(cfg, nets, checkpoint, strategy)
  return _Run(cfg, strategy, chief, xla, nets, step, critic_count, generator_update, run_config, checkpoint,
              manager, evaluator, lr_adapter, stall_watch=kernel_health.StallWatch(cfg.loss.name))


def _resume_or_initialise(run: _Run) -> int:
  """Restores the workdir's latest checkpoint, else `--init_from`'s; returns the step to start from."""
  if run.manager.latest_checkpoint:
    _restore(run.checkpoint, run.manager.latest_checkpoint,
             f"resume with the settings it was trained with or use a new --workdir (not {run.cfg.workdir})")
    logging.info("Resumed from %s at step %d", run.manager.latest_checkpoint, int(run.step.numpy()))
    own = json.loads(run.run_config.numpy()).get("train", {}).get("init_from", "")  # the restored run's own
    if run.cfg.train.init_from not in ("", own):
      logging.warning("--init_from=%s is ignored: --workdir=%s has checkpoints of its own, resumed instead",
                      run.cfg.train.init_from, run.cfg.workdir)
    run.cfg = dataclasses.replace(run.cfg, train=dataclasses.replace(run.cfg.train, init_from=own))
  elif run.cfg.train.init_from:
    _initialise_from(run.checkpoint, run.step, run.cfg)
  return int(run.step.numpy())


def _begin(run: _Run, start_step: int):
  """The run's first writes: its config (checkpoint and config.json), learning rates; returns the TensorBoard
  writer."""
  cfg = run.cfg
  run.run_config.assign(cfg.to_json())  # a restored checkpoint brought its own run's config
  if run.chief:
    checkpointing.save_config(cfg, cfg.workdir)  # only now: a refused resume leaves the directory as it was
    _forget_steps_after(cfg.workdir, start_step)
  if run.lr_adapter is not None:
    run.lr_adapter.apply_learning_rates()  # the config's rates times the (restored) adaptation factor
  else:
    _apply_config_learning_rates(run.nets, cfg)
  writer = (tf.summary.create_file_writer(os.path.join(cfg.workdir, "tensorboard")) if run.chief
            else tf.summary.create_noop_writer())
  if run.chief and start_step == 0:
    summaries.write_config(writer, cfg)
  return writer


def _forget_steps_after(workdir: str, start_step: int) -> None:
  """The logs of steps after the checkpoint this run starts from (an attempt killed before its next checkpoint)
  are dropped: those steps are trained again, and their old values would stand beside the new ones."""
  records = evaluation.drop_records_after(os.path.join(workdir, "eval.jsonl"), start_step)
  events = summaries.drop_events_after(os.path.join(workdir, "tensorboard"), start_step)
  grids = _drop_samples_after(os.path.join(workdir, "samples"), start_step)
  if records or events or grids:
    logging.info("Dropped the logs of %s: %d eval.jsonl record(s), %d TensorBoard event(s), %d sample grid(s)",
                 f"the steps after {start_step}, trained again from its checkpoint" if start_step else
                 "an earlier start of this run that ended before its first checkpoint", records, events, grids)


_SAMPLE_NAME = re.compile(r"step_(\d{7,})\.png")  # what `_write_samples` names a grid


def _drop_samples_after(folder: str, start_step: int) -> int:
  """Removes the run's sample grids (samples/step_NNNNNNN.png) of steps after `start_step`; returns how many."""
  dropped = 0
  for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
    match = _SAMPLE_NAME.fullmatch(name)
    if match and int(match.group(1)) > start_step and os.path.isfile(os.path.join(folder, name)):
      os.remove(os.path.join(folder, name))
      dropped += 1
  return dropped


def _step_function(run: _Run, iterator):
  """current step -> (metrics, steps taken): one host-scheduled generator step (`iteration`), or with
  `--steps_per_loop` > 1 a compiled loop up to the next step where the host has something to do."""
  cfg = run.cfg
  spec = losses_lib.LOSSES[cfg.loss.name]
  logging.info("XLA compilation of the training steps: %s (--jit_compile=%s)", "on" if run.xla else "off",
               cfg.train.jit_compile)
  args = (run.strategy, run.nets, cfg, spec, run.step, run.critic_count, run.generator_update, run.xla)
  if cfg.train.steps_per_loop == 1:
    fns = distributed_fns(*args)
    return _files_gone_is_one_line(lambda current: (iteration(cfg, run.nets, fns, iterator, current), 1), cfg)
  run_loop = loop_fn(*args)
  first_eval = run.evaluator is not None and cfg.eval.eval_at_start

  def advance(current: int):
    count = min(cfg.train.steps_per_loop, next_boundary(cfg, current, first_eval) - current)
    return run_loop(iterator, tf.constant(count, tf.int64)), count

  return _files_gone_is_one_line(advance, cfg)


def _files_gone_is_one_line(advance, cfg: config_lib.Config):
  """`advance`, with a file the input pipeline reads gone mid-run (a data folder moved or an image deleted:
  TensorFlow's NotFoundError, 40 lines) or damaged (a TFRecord shard's DataLossError) as one ValueError naming
  it and where the run can resume."""
  def guarded(current: int):
    try:
      return advance(current)
    except tf.errors.NotFoundError as error:
      missing = re.search(r"(\S+); No such file or directory", str(error))
      what = f"{missing.group(1)} is missing" if missing else str(error).strip().splitlines()[0][:300]
      raise ValueError(f"step {current + 1}: a file the run reads is gone ({what}); restore the "
                       f"data (--data_dir={cfg.data.data_dir}) and run the same command again: it resumes from "
                       "the last checkpoint") from None
    except tf.errors.DataLossError as error:  # a TFRecord shard whose bytes changed (its checksums fail)
      what = str(error).strip().splitlines()[0][:300]
      raise ValueError(f"step {current + 1}: a data file is damaged ({what}); prepare the data again "
                       f"(--data_dir={cfg.data.data_dir}) and run the same command again: it resumes from the "
                       "last checkpoint") from None
  return guarded


@dataclasses.dataclass(frozen=True)
class _Due:
  """What the host does after a step: log, checkpoint, write samples."""
  log: bool
  save: bool
  samples: bool


def due_at(cfg: config_lib.Config, current: int, last: bool, interrupted: bool) -> _Due:
  """The periodic actions due after generator step `current` (the last step and a stop request log and save;
  the last step writes samples)."""
  return _Due(log=current % cfg.train.log_every == 0 or last or interrupted,
              save=current % cfg.train.checkpoint_every == 0 or last or interrupted,
              samples=current % cfg.train.sample_every == 0 or last)


def _evaluation_due(cfg: config_lib.Config, current: int, start_step: int, last: bool, eval_clock: _EvalClock,
                    train_seconds: float) -> bool:
  """Every `--eval_every` steps, every `--eval_every_minutes` of training (the clock advances when asked),
  at the end, and after the first step of a fresh run (the untrained baseline)."""
  every = bool(cfg.eval.eval_every) and current % cfg.eval.eval_every == 0
  first = current == 1 and start_step == 0 and cfg.eval.eval_at_start
  return every or eval_clock.due(train_seconds) or last or first


def _log_step(run: _Run, writer, progress: summaries.Progress, values: dict, current: int,
              seconds_left: Optional[float]) -> None:
  rate = progress.rate(current)
  values = {**values, **_learning_rates(run.nets), "perf/steps_per_sec": rate}
  summaries.write_scalars(writer, values, current)
  shown = {k: values[k] for k in ("loss/critic", "loss/generator") if k in values}
  logging.info(progress.line(current, rate, shown, seconds_left))
  stuck = run.stall_watch.update(current, values) if run.stall_watch is not None else None
  if stuck:
    logging.warning(stuck)


def _evaluate(run: _Run, writer, current: int, train_seconds: float) -> None:
  scores = run.evaluator(run.nets.generator, current)
  run.evaluator.log(current, train_seconds, scores)
  summaries.write_scalars(writer, scores, current)
  logging.info("step %d | %s", current, " ".join(f"{k}={v:.5g}" for k, v in scores.items()))


def _warn_if_nothing_to_train(cfg: config_lib.Config, start_step: int, train_seconds: float) -> bool:
  """Whether the run is at --steps or has used its --max_train_minutes (nothing to train), said in a warning."""
  if start_step >= cfg.train.steps:
    logging.warning("the run is at step %d, not below --steps=%d: nothing to train (give a larger --steps to "
                    "train on)", start_step, cfg.train.steps)
  elif cfg.train.max_train_minutes and train_seconds >= cfg.train.max_train_minutes * 60.0:
    logging.warning("the run has trained %.2f minutes, not below --max_train_minutes=%g: nothing to train (give "
                    "a larger --max_train_minutes to train on)", train_seconds / 60.0, cfg.train.max_train_minutes)
  else:
    return False
  return True


def _check_workdir_held(run: _Run, current: int) -> None:
  """WorkdirLost unless the chief's workdir is still the one it locked (before it writes there)."""
  if not run.workdir_held():
    raise WorkdirLost(f"--workdir={run.cfg.workdir} was deleted, moved or replaced while this run trained: "
                      f"stopping at step {current} without writing to it (its last checkpoint, if the "
                      "folder still exists elsewhere, is where a resume would start)")


def _loop(run: _Run, iterator, writer, start_step: int, train_seconds: float, stop: _StopRequests) -> dict:
  """Trains from `start_step` to `--steps` (or the time limit), doing what is due after each step; a stop
  request saves the step it came at and raises Interrupted. Returns the last step's metrics."""
  cfg, nets, manager = run.cfg, run.nets, run.manager
  advance = _step_function(run, iterator)
  fixed_z = _fixed_noise(cfg)
  progress = summaries.Progress(start_step, cfg.train.steps)
  metrics, current = {}, start_step
  time_limit = cfg.train.max_train_minutes * 60.0
  eval_clock = _EvalClock(cfg.eval.eval_every_minutes * 60.0, train_seconds)
  several_workers = distribute.num_workers(run.strategy) > 1
  clock = time.monotonic()
  while current < cfg.train.steps and not (time_limit and train_seconds >= time_limit):
    metrics, count = advance(current)
    current += count
    train_seconds += time.monotonic() - clock
    last = current == cfg.train.steps or bool(time_limit and train_seconds >= time_limit)
    if last and current < cfg.train.steps:
      logging.info("step %d | --max_train_minutes=%g reached: stopping", current, cfg.train.max_train_minutes)
    # Every worker must stop at the same step (a worker that stopped alone would leave the others waiting
    # in a collective): with several workers, whether any received a signal is agreed on every step.
    interrupted = stop.signal_name is not None
    if several_workers:
      interrupted = distribute.any_worker(run.strategy, interrupted)
    due = due_at(cfg, current, last, interrupted)
    if due.log or due.save:  # never checkpoint a diverged model: check the losses before saving
      values = {k: float(v) for k, v in metrics.items()}
      _check_finite(values, current, manager)
    if due.log:
      _log_step(run, writer, progress, values, current, time_limit - train_seconds if time_limit else None)
    if run.chief and (due.samples or due.save or due.log):
      _check_workdir_held(run, current)
    if run.chief and due.samples:
      try:
        _write_samples(nets, cfg, fixed_z, cfg.workdir, writer, current)
      except (OSError, tf.errors.OpError) as error:  # a preview image is not worth the steps since the last
        # checkpoint (TensorFlow's file writer raises its own PermissionDeniedError, not OSError)
        reason = getattr(error, "message", None) or str(error)
        logging.warning("step %d: no sample grid written (%s); training goes on", current, reason.splitlines()[0])
    # A stop request skips the evaluation: the checkpoint comes first (a scheduler's grace period is short).
    if run.evaluator is not None and not interrupted and _evaluation_due(cfg, current, start_step, last,
                                                                         eval_clock, train_seconds):
      _evaluate(run, writer, current, train_seconds)
    if run.lr_adapter is not None and run.lr_adapter.due(current):
      _adapt_learning_rates(run.lr_adapter, nets, writer, current)
    save = due.save
    if not interrupted and not several_workers and stop.signal_name is not None:
      # The signal came during the evaluation or the lr test: save this step now, train no further step.
      _check_finite({k: float(v) for k, v in metrics.items()}, current, manager)
      interrupted = save = True
    if save:
      _save(manager, current, cfg.workdir, run.chief, train_seconds)
    writer.flush()
    if interrupted:
      stop.saved = True
      raise Interrupted(current, stop.signal_name or "a signal to another worker")
    clock = time.monotonic()  # evaluation, samples and checkpoints are not training time
  return metrics
