r"""Training speed of every network: ms per generator step and images/s, in float32 and mixed bfloat16.

For each (arch, image size), by default every architecture of `mmd_gan_tf.models.ARCHS` at each of its sizes,
the run config is resolved from that arch's paper preset (`PAPER_PRESETS`, through `flags/build.py` as
main.py does), the networks and optimizers are built as the trainer builds them, and the trainer's own step,
`trainer.iteration` (one simultaneous step, or n_critic critic steps and then one generator step), is timed on
random real images on the strategy's devices. Warm-up steps, which include tracing, are not timed. With
--inception it also times Inception feature extraction and this machine's float32 and bfloat16 matmul rates.

  python -m tools.bench_step --output_md=step.md --output_json=step.json      # the full matrix
  python -m tools.bench_step --archs=dcgan --sizes=32 --width=0.25 --batch_size=16 --precisions=float32 \
      --warmup_steps=2 --steps=5 --cpu_devices=2                               # a quick look on a CPU
  python -m tools.bench_step --archs= --inception --inception_weights=/path/fid_inception_v3.npz

The JSON holds {"runs": [run, ...]} (--append adds a run); both outputs are rewritten after every row, so a
run stopped by a time limit keeps the rows it finished.
"""

import contextlib
import gc
import json
import os
import platform
import resource
import shlex
import sys
import tempfile
import time
from typing import Callable, List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mmd_gan_tf import console  # noqa: E402

# The library loads TensorFlow: first, without the no-GPU noise (as main.py does).
console.import_tensorflow_quietly()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from flags import build as config_builder  # noqa: E402
from mmd_gan_tf import cli  # noqa: E402
from mmd_gan_tf import config as config_lib  # noqa: E402
from mmd_gan_tf import distribute  # noqa: E402
from mmd_gan_tf import files  # noqa: E402
from mmd_gan_tf import images as images_lib  # noqa: E402
from mmd_gan_tf import losses  # noqa: E402
from mmd_gan_tf import models  # noqa: E402
from mmd_gan_tf import onednn  # noqa: E402
from mmd_gan_tf import trainer  # noqa: E402
from mmd_gan_tf.metrics import features, inception, inception_weights  # noqa: E402
from tools import step_flops  # noqa: E402
from tools import step_profile  # noqa: E402

FLAGS = flags.FLAGS

# arch -> the (dataset, loss) presets of its paper. Only the pair is chosen here; batch size, width, optimizers,
# schedule and kernel all come from the resolved presets. No preset selects `resnet` (Miyato's SN-ResNet), so
# it runs Wang's repulsive preset, whose spectral norm it was designed for.
PAPER_PRESETS = {
    "dcgan": ("cifar10", "rep"),          # Wang et al. 2019
    "dcgan5": ("cifar10", "mmd_gp"),      # Binkowski et al. 2018
    "resnet": ("cifar10", "rep"),
    "resnet_big": ("celeb_a", "mmd_gp"),  # Binkowski et al. 2018, CelebA 160 px
    "sngan": ("cifar10", "smmd"),         # Arbel et al. 2018
    "li": ("cifar10", "mmd"),             # Li et al. 2017
}
PRECISIONS = ("float32", "bfloat16", "auto")  # auto: main.py's --mixed_precision=auto on this machine
GPU = "GPU:0"


def define_flags() -> None:
  flags.DEFINE_list("archs", list(models.ARCHS), f"Architectures, of {list(models.ARCHS)} ('' = none, e.g. "
                    "with --inception only).")
  flags.DEFINE_list("sizes", [], "Only these image sizes (default: every size of each arch).")
  flags.DEFINE_list("precisions", ["float32", "bfloat16"], "float32, bfloat16 (Keras mixed_bfloat16) and/or auto "
                    "(what --mixed_precision=auto picks here; the row says which).")
  flags.DEFINE_list("xla", ["off"], "off and/or on: XLA-compiled per-replica steps (main.py --jit_compile).")
  flags.DEFINE_list("steps_per_loop", ["1"], "Generator steps per call of the compiled function (main.py "
                    "--steps_per_loop); each value is a row, its time divided by the steps.")
  flags.DEFINE_integer("batch_size", None, "Global batch size (default: the preset's).")
  flags.DEFINE_float("width", None, "Channel multiplier (default: the preset's; e.g. 0.25 for a quick CPU run).")
  flags.DEFINE_integer("warmup_steps", 3, "Untimed generator steps first (tracing happens in the first).")
  flags.DEFINE_integer("steps", 20, "Timed generator steps per row.")
  flags.DEFINE_integer("cpu_devices", 0, "Without a GPU: split the CPU into this many logical devices.")
  flags.DEFINE_string("output_json", None, "JSON results file.")
  flags.DEFINE_string("output_md", None, "Markdown report (machine, command, table).")
  flags.DEFINE_bool("append", False, "Add this run to --output_json / --output_md instead of replacing them.")
  flags.DEFINE_bool("inception", False, "Also time Inception feature extraction and float32 and bfloat16 matmuls.")
  flags.DEFINE_string("inception_weights", None, "FID Inception weights (.npz/.pb/.tgz); without them the "
                      "Inception timing is skipped (nothing is downloaded).")
  flags.DEFINE_integer("inception_images", 500, "Images (32 px, resized to 299) to extract features of.")
  flags.DEFINE_integer("inception_batch_size", 100, "Images per Inception forward pass.")
  flags.DEFINE_integer("matmul_size", 4096, "N of the N x N float32 matmul.")
  flags.DEFINE_integer("profile_steps", 0, "After each row's timed steps, profile this many more with "
                       "TensorFlow's profiler and add where the time goes (tools/step_profile.py) to the row.")
  flags.DEFINE_string("profile_dir", None, "Where the profiler traces go (one folder per row; for TensorBoard's "
                      "profile plugin). Default: a temporary folder, removed after reading.")


def summarize(seconds: List[float], batch_size: int) -> dict:
  """Median and minimum step time (ms) and images/s = batch / median step time."""
  if not seconds:
    raise ValueError("--steps must be >= 1")
  median = float(np.median(seconds))
  return {"median_ms": 1000.0 * median, "min_ms": 1000.0 * float(min(seconds)),
          "images_per_s": batch_size / median}


def parse_matrix(archs: List[str], sizes: List[str], precisions: List[str], xla: List[str] = ("off",),
                 loops: List[str] = ("1",)) -> List[tuple]:
  """(arch, size, precision, xla, steps_per_loop) for every requested arch's sizes (filtered by `sizes`),
  precision, XLA mode and loop length."""
  unknown = [a for a in archs if a not in models.ARCHS]
  if unknown:
    raise ValueError(f"--archs: unknown {unknown}; choose from {list(models.ARCHS)}")
  bad = [p for p in precisions if p not in PRECISIONS]
  if bad or not precisions:
    raise ValueError(f"--precisions={','.join(precisions)}: choose from {list(PRECISIONS)}")
  if not xla or any(x not in ("off", "on") for x in xla):
    raise ValueError(f"--xla={','.join(xla)}: choose from off, on")
  try:
    loop_lengths = [int(k) for k in loops]
  except ValueError:
    raise ValueError(f"--steps_per_loop={','.join(loops)} must be comma-separated integers") from None
  if not loop_lengths or min(loop_lengths) < 1:
    raise ValueError(f"--steps_per_loop={','.join(loops)} must be integers >= 1")
  try:
    wanted = {int(s) for s in sizes}
  except ValueError:
    raise ValueError(f"--sizes={','.join(sizes)} must be comma-separated integers") from None
  matrix = [(arch, size, precision, x == "on", k) for arch in archs for size in models.ARCHS[arch].sizes
            if not wanted or size in wanted for precision in precisions for x in xla for k in loop_lengths]
  if archs and not matrix:
    raise ValueError(f"--sizes={','.join(sizes)}: none of --archs={','.join(archs)} makes these sizes")
  return matrix


def resolve_config(arch: str, size: int, precision: str, batch_size: Optional[int], width: Optional[float],
                   cpu_devices: int, xla: bool = False) -> config_lib.Config:
  """The run config of `arch`'s paper preset at `size`, as main.py would resolve it (None = the preset's);
  `xla` is `--jit_compile=true` (else false)."""
  dataset, loss = PAPER_PRESETS[arch]
  values = {"dataset": dataset, "loss": loss, "arch": arch, "image_size": size, "batch_size": batch_size,
            "width": width,
            "mixed_precision": {"bfloat16": "true", "float32": "false"}.get(precision, precision),
            "cpu_devices": cpu_devices or None,
            "jit_compile": "true" if xla else "false"}
  # check_library=False: no data is read, so the data source need not exist here.
  return config_builder.build_config(values, check_library=False)


def steady_generator_step(train_cfg: config_lib.TrainConfig) -> int:
  """A generator step with the ordinary n_critic critic steps, past Li's and Arbel's warm-up phases."""
  step = train_cfg.n_critic_warmup_steps
  while trainer.critic_steps_for(train_cfg, step) != train_cfg.n_critic:
    step += 1
  return step


def real_iterator(strategy: tf.distribute.Strategy, cfg: config_lib.Config):
  """A distributed iterator repeating one batch of uniform random images in the config's range and shape."""
  shape = [cfg.data.image_size, cfg.data.image_size, cfg.data.channels]
  rng = np.random.default_rng(0)

  def dataset_fn(ctx):
    local = rng.random([ctx.get_per_replica_batch_size(cfg.train.batch_size)] + shape, dtype=np.float32)
    return tf.data.Dataset.from_tensors(images_lib.from_unit(local, cfg.data.image_range)).repeat()

  return iter(strategy.distribute_datasets_from_function(dataset_fn))


def time_steps(run_step: Callable[[], dict], warmup_steps: int, steps: int) -> List[float]:
  """Wall seconds of each of `steps` calls of `run_step` after `warmup_steps` untimed calls.

  Each call's metrics are copied to the host, so a step's time includes all its device work.
  """
  wait = lambda metrics: tf.nest.map_structure(lambda t: t.numpy(), metrics)
  for _ in range(warmup_steps):
    wait(run_step())
  seconds = []
  for _ in range(steps):
    start = time.perf_counter()
    wait(run_step())
    seconds.append(time.perf_counter() - start)
  return seconds


def peak_host_mib() -> float:
  """The process's peak resident memory so far (it never decreases over the rows of a run)."""
  scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def peak_device_mib() -> Optional[float]:
  """Peak memory of the first GPU since its last reset, None without a GPU."""
  if not tf.config.list_physical_devices("GPU"):
    return None
  return tf.config.experimental.get_memory_info(GPU)["peak"] / 2**20


def bench_row(strategy: tf.distribute.Strategy, cfg: config_lib.Config, warmup_steps: int, steps: int,
              steps_per_loop: int = 1, profile_steps: int = 0, profile_dir: Optional[str] = None) -> dict:
  """Builds the networks as training does and times `warmup_steps` + `steps` generator steps, XLA-compiled
  as `cfg.train.jit_compile` says (`trainer.use_xla`).

  With `steps_per_loop` > 1 each timed call runs that many generator steps in one compiled function
  (`trainer.loop_fn`); the seconds are per generator step. With `profile_steps`, that many more calls run
  under TensorFlow's profiler (trace in `profile_dir`) and the row gets their `step_profile.summarize`.
  """
  if tf.config.list_physical_devices("GPU"):
    tf.config.experimental.reset_memory_stats(GPU)
  spec = losses.get_loss(cfg.loss.name)
  xla = trainer.use_xla(cfg, strategy)
  with strategy.scope(), trainer.dtype_policy(cfg.train.mixed_precision):
    nets = trainer.build_networks(cfg)
    step, critic_count = trainer.make_counters()
  iterator = real_iterator(strategy, cfg)
  generator_step = steady_generator_step(cfg.train)
  flops = None  # a loop's steps run in a while loop: not counted
  if steps_per_loop > 1:
    run_loop = trainer.loop_fn(strategy, nets, cfg, spec, step, critic_count, jit_compile=xla)
    count = tf.constant(steps_per_loop, tf.int64)

    def run_step():
      step.assign(generator_step)  # the loop reads the warm-up phase from the counter: stay past it
      return run_loop(iterator, count)
    seconds = [t / steps_per_loop for t in time_steps(run_step, warmup_steps, steps)]
  else:
    fns = [step_flops.CountedCalls(fn)
           for fn in trainer.distributed_fns(strategy, nets, cfg, spec, step, critic_count, jit_compile=xla)]
    run_step = lambda: trainer.iteration(cfg, nets, fns, iterator, generator_step)
    seconds = time_steps(run_step, warmup_steps, steps)
    flops = step_flops.flops_per_step(fns, warmup_steps + steps, iterator)
  profile = profiled(run_step, profile_steps, profile_dir, steps_per_loop) if profile_steps else None
  return {"arch": cfg.model.arch, "image_size": cfg.model.image_size, "preset": cfg.preset,
          "precision": (("auto: " if cfg.train.mixed_precision == "auto" else "")
                        + ("bfloat16" if trainer.use_mixed_precision(cfg.train.mixed_precision) else "float32")),
          "xla": xla,
          "steps_per_loop": steps_per_loop, "batch_size": cfg.train.batch_size,
          "width": cfg.model.width, "schedule": cfg.train.schedule,
          "critic_steps": trainer.critic_steps_for(cfg.train, generator_step),
          "replicas": strategy.num_replicas_in_sync, "generator_params": nets.generator.count_params(),
          "critic_params": sum(int(np.prod(v.shape)) for v in nets.critic_variables),
          "warmup_steps": warmup_steps, "steps": steps, **summarize(seconds, cfg.train.batch_size),
          "gflop_per_step": None if flops is None else flops / 1e9,
          "peak_host_mib": peak_host_mib(), "peak_device_mib": peak_device_mib(),
          **({"profile": profile} if profile else {})}


def profiled(run_step: Callable[[], dict], calls: int, profile_dir: Optional[str], steps_per_call: int) -> dict:
  """`calls` more calls of `run_step` under TensorFlow's profiler, summed per op and part of the step
  (`step_profile.summarize`, per generator step); the trace goes to `profile_dir` (None: a temporary folder,
  removed after reading)."""
  with contextlib.ExitStack() as stack:
    directory = profile_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_step_profile"))
    tf.profiler.experimental.start(directory)
    try:
      time_steps(run_step, 0, calls)
    finally:
      tf.profiler.experimental.stop()
    return step_profile.summarize(step_profile.op_events(step_profile.trace_file(directory)),
                                  calls * steps_per_call)


def matmul_gflops(size: int, repeats: int = 5, dtype: tf.DType = tf.float32) -> float:
  """GFLOP/s of an N x N matmul (2 N^3 flops) in `dtype`: the ceiling any dense network can reach here in that
  precision (bfloat16: what the bfloat16 units, AMX or AVX-512 BF16 or a GPU's tensor cores, give)."""
  a = tf.cast(tf.random.stateless_normal([size, size], seed=[1, 2]), dtype)
  b = tf.cast(tf.random.stateless_normal([size, size], seed=[3, 4]), dtype)
  # The sum makes the result one scalar to fetch, so the host copy of N^2 values is not timed.
  product = tf.function(lambda: tf.reduce_sum(tf.cast(tf.linalg.matmul(a, b), tf.float32)))
  product().numpy()
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    product().numpy()
    seconds.append(time.perf_counter() - start)
  return 2.0 * size**3 / float(np.median(seconds)) / 1e9


def inception_rate(weights_path: str, num_images: int, batch_size: int) -> dict:
  """Inception feature extraction images/s on random 32 px uint8 images (the time does not depend on them)."""
  model = inception.build_fid_inception(inception_weights.load_inception_weights(weights_path))
  extractor = features.make_extractor(model)
  extractor(tf.zeros([batch_size, 32, 32, 3]))  # tracing and first allocations, outside the timing
  images = np.random.default_rng(0).integers(0, 256, [num_images, 32, 32, 3], dtype=np.uint8)
  start = time.perf_counter()
  features.extract_features(model, images, batch_size, extractor=extractor)
  seconds = time.perf_counter() - start
  return {"images": num_images, "batch_size": batch_size, "seconds": seconds, "images_per_s": num_images / seconds}


def inception_section(weights_path: Optional[str], num_images: int, batch_size: int, matmul_size: int) -> dict:
  result = {"matmul_size": matmul_size, "matmul_gflops": matmul_gflops(matmul_size),
            "matmul_gflops_bfloat16": matmul_gflops(matmul_size, dtype=tf.bfloat16),
            "tensor_float_32": tf.config.experimental.tensor_float_32_execution_enabled()}
  if weights_path:
    result["feature_extraction"] = inception_rate(weights_path, num_images, batch_size)
  return result


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def machine(strategy: Optional[tf.distribute.Strategy]) -> dict:
  gpus = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
          for g in tf.config.list_physical_devices("GPU")]
  devices = [d.split("/device:")[-1] for d in getattr(strategy.extended, "worker_devices", ())] if strategy else []
  return {"cpu": cpu_model(), "cores": os.cpu_count(), "gpus": gpus, "tensorflow": tf.__version__,
          "platform": platform.platform(), "strategy": type(strategy).__name__ if strategy else None,
          "devices": devices, "load_average": os.getloadavg()[0], "onednn": onednn.enabled()}


def _onednn_note(m: dict) -> str:
  if "onednn" not in m:  # a report written before the field existed
    return ""
  return " (oneDNN kernels on)" if m["onednn"] else " (oneDNN kernels off)"


def _cell(value, digits: int = 1) -> str:
  if value is None:
    return ""
  return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(run: dict) -> str:
  m = run["machine"]
  lines = [f"## Step benchmark, {run['date']}", "", f"- command: `{run['command']}`",
           f"- machine: {m['cpu']}, {m['cores']} logical cores; GPU: {', '.join(m['gpus']) or 'none'}; "
           f"TensorFlow {m['tensorflow']}{_onednn_note(m)}; {m['platform']}; load average {m['load_average']:.2f} at the end"]
  if run["rows"]:
    lines += _step_lines(run["rows"], m, run.get("inception") or {})
  for row in run["rows"]:
    lines += step_profile.markdown_lines(row)
  lines += _inception_lines(run.get("inception"))
  return "\n".join(lines) + "\n"


def gflops(row: dict) -> Optional[float]:
  """The row's dense FLOP rate, GFLOP per step over the median step time; None where the step was not counted."""
  gflop = row.get("gflop_per_step")
  return None if gflop is None else gflop / (row["median_ms"] / 1000.0)


def ceiling_fraction(row: dict, inception: dict) -> Optional[float]:
  """The row's dense FLOP rate as a fraction of this machine's matmul rate in the row's precision (--inception
  measures both), None without either."""
  ceiling = inception.get("matmul_gflops_bfloat16" if "bfloat16" in row["precision"] else "matmul_gflops")
  rate = gflops(row)
  return None if not ceiling or rate is None else rate / ceiling


def _step_lines(rows: List[dict], m: dict, inception: dict) -> List[str]:
  lines = [f"- strategy: {m['strategy']} over {', '.join(m['devices'])}",
           "- a step is the trainer's generator step (`trainer.iteration`: one simultaneous step, or `critic "
           "steps` critic steps then one generator step) on random real images; median and min over the timed "
           "steps after the warm-up steps (tracing is in the warm-up); images/s = batch / median; host MiB is the "
           "process's peak so far (it only grows over the rows), GPU MiB the peak of GPU:0 during the row; D params "
           "include Li's decoder.",
           "- GFLOP / step: the convolutions and matmuls of the step's traced graphs, forward and backward, as "
           "TensorFlow's op statistics count them (not counted for loops of steps); GFLOP/s = that / median; "
           "of ceiling: GFLOP/s over this machine's matmul rate in the row's precision (with --inception).", "",
           "| arch | size | preset | precision | XLA | steps / loop | batch | width | critic steps | "
           "ms / step (median) | min | images/s | GFLOP / step | GFLOP/s | of ceiling | G params | D params | "
           "peak host MiB | peak GPU MiB |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    fraction = ceiling_fraction(r, inception)
    lines.append(f"| {r['arch']} | {r['image_size']} | {r['preset']} | {r['precision']} | "
                 f"{'on' if r.get('xla') else 'off'} | {r.get('steps_per_loop', 1)} | {r['batch_size']} | "
                 f"{r['width']:g} | {r['critic_steps']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | "
                 f"{r['images_per_s']:.1f} | {_cell(r.get('gflop_per_step'), 2)} | {_cell(gflops(r), 1)} | "
                 f"{'' if fraction is None else f'{fraction:.0%}'} | {r['generator_params']} | "
                 f"{r['critic_params']} | {r['peak_host_mib']:.0f} | {_cell(r['peak_device_mib'], 0)} |")
  return lines


def _inception_lines(result: Optional[dict]) -> List[str]:
  if not result:
    return []
  n = result["matmul_size"]
  lines = ["", f"- float32 matmul {n} x {n}: {result['matmul_gflops']:.1f} GFLOP/s (TensorFloat-32, which GPU "
           f"matmuls may use for float32: {'allowed' if result['tensor_float_32'] else 'off'})",
           f"- bfloat16 matmul {n} x {n}: {result['matmul_gflops_bfloat16']:.1f} GFLOP/s "
           f"({result['matmul_gflops_bfloat16'] / result['matmul_gflops']:.2f}x float32)"]
  extraction = result.get("feature_extraction")
  if extraction:
    lines.append(f"- Inception feature extraction: {extraction['images']} images of 32 px in batches of "
                 f"{extraction['batch_size']}: {extraction['images_per_s']:.1f} images/s")
  else:
    lines.append("- Inception feature extraction: skipped (no --inception_weights)")
  return lines


class Outputs:
  """The JSON and markdown files, rewritten whole after every row (with --append: after the earlier runs)."""

  def __init__(self, json_path: Optional[str], md_path: Optional[str], append: bool):
    self._json_path, self._md_path = json_path, md_path
    self._runs, self._md = [], ""
    if append and json_path and os.path.exists(json_path):
      with open(json_path) as f:
        self._runs = json.load(f)["runs"]
    if append and md_path and os.path.exists(md_path):
      with open(md_path) as f:
        self._md = f.read().rstrip("\n") + "\n\n"

  def write(self, run: dict) -> None:
    for path in (self._json_path, self._md_path):
      if path and os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    if self._json_path:
      files.atomic_write_text(self._json_path, json.dumps({"runs": self._runs + [run]}, indent=2) + "\n")
    if self._md_path:
      files.atomic_write_text(self._md_path, self._md + markdown(run))


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  tf.get_logger().setLevel("WARNING")  # not one line per all-reduce set-up of every row
  if FLAGS.warmup_steps < 1 or FLAGS.steps < 1:
    raise ValueError(f"--warmup_steps={FLAGS.warmup_steps} and --steps={FLAGS.steps} must be >= 1")
  if FLAGS.profile_steps < 0:
    raise ValueError(f"--profile_steps={FLAGS.profile_steps} must be >= 0")
  matrix = parse_matrix(FLAGS.archs, FLAGS.sizes, FLAGS.precisions, FLAGS.xla, FLAGS.steps_per_loop)
  if not matrix and not FLAGS.inception:
    raise ValueError("nothing to measure: give --archs or --inception")
  # Every config is resolved before any work, so a bad combination fails at once.
  configs = [resolve_config(arch, size, precision, FLAGS.batch_size, FLAGS.width, FLAGS.cpu_devices, xla)
             for arch, size, precision, xla, _ in matrix]
  strategy = distribute.make_strategy(configs[0].strategy, FLAGS.cpu_devices) if configs else None
  for cfg in configs:
    trainer.use_xla(cfg, strategy)  # XLA with several CPU replicas: one line, before any work
    if cfg.train.batch_size % strategy.num_replicas_in_sync:
      raise ValueError(f"--batch_size={cfg.train.batch_size} must be divisible by the "
                       f"{strategy.num_replicas_in_sync} replicas")
  outputs = Outputs(FLAGS.output_json, FLAGS.output_md, FLAGS.append)
  run = {"command": "python -m tools.bench_step " + shlex.join(sys.argv[1:]),
         "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(strategy), "rows": []}
  for index, (cfg, (_, _, _, _, steps_per_loop)) in enumerate(zip(configs, matrix)):
    profile_dir = os.path.join(FLAGS.profile_dir, f"row_{index}") if FLAGS.profile_dir else None
    run["rows"].append(bench_row(strategy, cfg, FLAGS.warmup_steps, FLAGS.steps, steps_per_loop,
                                 FLAGS.profile_steps, profile_dir))
    print(json.dumps(run["rows"][-1]), flush=True)
    run["machine"] = machine(strategy)  # the load average at the latest row
    outputs.write(run)
    keras.backend.clear_session()  # the previous row's networks and traced steps go before the next is built
    gc.collect()
  if FLAGS.inception:
    run["inception"] = inception_section(FLAGS.inception_weights, FLAGS.inception_images,
                                         FLAGS.inception_batch_size, FLAGS.matmul_size)
    outputs.write(run)
  print(markdown(run))
  return 0


if __name__ == "__main__":
  define_flags()
  cli.run(main)
