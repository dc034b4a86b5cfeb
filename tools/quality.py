"""Quality benchmark: train configurations with main.py and measure KID (and FID) against held-out images.

  # CPU scale: every loss on MNIST for 10 minutes of training each, KID vs 2000 MNIST test digits
  python tools/quality.py --out=results/mnist --minutes=10 --eval_points=4 \
      --losses=rep,rep_b,mmd,mmd_gp,smmd,wgan_gp,hinge,flow \
      --common="--dataset=npz --data_dir=mnist.npz --eval_split=test --channels=1 --preprocessing=pad \
                --width=0.25" --num_samples=2000 --inception_weights=fid_inception_v3.npz

  # Paper scale (a GPU): the presets' step counts, 50k generated samples, FID too
  python tools/quality.py --out=results/cifar10 --scale=paper --losses=rep,mmd_gp \
      --common="--dataset=cifar10 --eval_split=test --tfds_data_dir=$HOME/tfds"

  # Robustness over seeds: each configuration with --seed=0,1,2; KID mean +- std over seeds, the kernel state
  python tools/quality.py --out=results/robustness --steps=1500 --seeds=3 --losses=rep,rep_b,hinge \
      --config=rep_c1:"--loss=rep --sn_total_gain=1" --common="--dataset=npz --data_dir=mnist.npz ..."

Each configuration is one `python main.py` run in `<out>/runs/<name>` (so it resumes like any run):
in-training KID every `budget / eval_points` (in steps with --steps, in minutes of training time with
--minutes) plus once after the first step (the untrained baseline), each result appended by main.py to
`<workdir>/eval.jsonl`. Progress is printed as results arrive. When every run is done the tool writes
`<out>/results.json` (configs, commands, machine, every evaluation), `<out>/table.md`, `<out>/kid.png`
(KID against step and against training minutes, one line per configuration) and `<out>/grids/<name>.png`
(each run's last sample grid). With --seeds=N each configuration NAME runs as NAME_s0 ... NAME_s<N-1> (with
--seed=k, seed-major order) and the tool also writes `<out>/seeds.md` and `over_seeds` in results.json: per
configuration the last KID of every seed, their mean and standard deviation over seeds, the kernel state each
seed ended in (healthy, saturated or all-zero, from the `kernel/*` means of TensorBoard) and
`grids/<NAME>_median.png` (the grid of the seed with the median last KID). Re-running the same command skips
finished runs and continues the others; another command into the same --out (more configurations, other seeds)
keeps the results of the earlier ones in results.json and its tables.
"""

import copy
import functools
import json
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from typing import Optional

from mmd_gan_tf import startup

# SIGTERM / SIGHUP before main forwards the stop signals to its runs (imports, flags): one line, exit 75.
with startup.quiet_stops(__name__ == "__main__", keep=True):
  from absl import app
  from absl import flags

  from mmd_gan_tf import checkpointing
  from mmd_gan_tf import cli
  from mmd_gan_tf import files
  from mmd_gan_tf.kernel_health import TAGS as KERNEL_TAGS, kernel_state

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER_SAMPLES = 50000


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
  """The tool's flags on `flag_values` (the tool: the global FLAGS; tests: a fresh FlagValues)."""
  f = {name: functools.partial(getattr(flags, "DEFINE_" + name), flag_values=flag_values)
       for name in ("string", "list", "multi_string", "integer", "float", "bool", "enum")}
  f["string"]("out", "runs/quality", "Output directory (runs, results.json, table.md, kid.png, grids).")
  f["list"]("losses", [], "Shorthand: one configuration per loss, named after it (--loss=NAME).")
  f["multi_string"]("config", [], "A configuration as NAME:FLAGS, e.g. 'rep_fast:--loss=rep "
                    "--critic_lr=1e-3'; repeatable.")
  f["string"]("common", "", "main.py flags shared by every configuration (dataset, data, width...).")
  f["integer"]("steps", None, "Budget: generator steps per configuration.")
  f["float"]("minutes", None, "Budget: minutes of training time per configuration (evaluation "
             "excluded), the same for every configuration.")
  f["integer"]("eval_points", 4, "Evaluations over the budget (plus the baseline after step 1).")
  f["integer"]("num_samples", 2000, "Generated images per KID evaluation.")
  f["integer"]("num_real", None, "Held-out real images per KID evaluation (default: --num_samples).")
  f["integer"]("kid_subset_size", 1000, "KID subset size (<= num_samples).")
  f["integer"]("kid_subsets", 10, "KID subsets.")
  f["bool"]("fid", False, "Also FID (needs num_samples >= 2048).")
  f["enum"]("scale", "cpu", ["cpu", "paper"], "paper: the presets' step counts unless --steps/--minutes, "
            f"{PAPER_SAMPLES} samples for KID and FID, FID on.")
  f["string"]("inception_weights", None, "FID Inception weights (.npz/.tgz/.pb); default: the cache.")
  f["integer"]("seeds", 1, "Seeds per configuration: with N > 1 every configuration runs with --seed=0..N-1 "
               "and the results are summarised over seeds (seeds.md).")
  f["integer"]("poll_seconds", 15, "How often progress is read from the runs.")


def check_counts(flag_values: flags.FlagValues) -> None:
  """ValueError naming the first count flag below 1 (main.py refused it only after OUT/logs/ was written)."""
  for name in ("num_samples", "num_real", "kid_subset_size", "kid_subsets", "poll_seconds"):
    value = flag_values[name].value
    if value is not None and value < 1:
      raise ValueError(f"--{name}={value} must be >= 1")


def split_flags(flag: str, text: str) -> list:
  """The main.py flags in `text` as a shell splits them; ValueError naming `flag` (e.g. an unclosed quote)."""
  try:
    return shlex.split(text)
  except ValueError as error:
    raise ValueError(f"{flag}{text}: {error} (write the flags as on a command line)") from None


def parse_configs(loss_names, configs) -> dict:
  """{name: [main.py flags]} from --losses and --config; ValueError naming a bad or repeated entry."""
  from mmd_gan_tf import losses  # pylint: disable=import-outside-toplevel  (TensorFlow: after cli.run's quiet import)
  for loss in loss_names:
    if loss not in losses.LOSSES:
      raise ValueError(f"--losses={','.join(loss_names)}: unknown loss {loss!r}; known: {', '.join(losses.LOSSES)}")
  for config in configs:
    if ":" not in config:
      raise ValueError(f"--config={config} must be NAME:FLAGS, e.g. --config='rep_fast:--loss=rep --critic_lr=1e-3'")
  parsed = {}
  entries = [(loss, f"--loss={loss}") for loss in loss_names] + [tuple(c.partition(":")[::2]) for c in configs]
  for name, text in entries:
    if not name or not name.replace("_", "").replace("-", "").isalnum():
      raise ValueError(f"--config={name}:{text}: the name must be letters, digits, '_' or '-'")
    if name in parsed:
      raise ValueError(f"configuration {name!r} is given twice")
    parsed[name] = split_flags(f"--config={name}:", text)
  if not parsed:
    raise ValueError("give at least one configuration (--losses or --config)")
  return parsed


def expand_seeds(configs: dict, seeds: int) -> dict:
  """{NAME_s<k>: flags + [--seed=k]} for k < seeds, seed-major (every configuration's seed 0 first)."""
  if seeds < 1:
    raise ValueError(f"--seeds={seeds} must be >= 1")
  if seeds == 1:
    return dict(configs)
  for name, config_flags in configs.items():
    if any(flag.startswith("--seed=") for flag in config_flags):
      raise ValueError(f"configuration {name!r} sets --seed; --seeds={seeds} sets it")
  return {f"{name}_s{seed}": config_flags + [f"--seed={seed}"]
          for seed in range(seeds) for name, config_flags in configs.items()}


def final_kernel_means(scalars: dict, fraction: float = 0.2):
  """The mean of each `kernel/*` tag over the last `fraction` of its logged steps (at least one), or None when the
  run logged none (losses without a kernel)."""
  means = []
  for tag in KERNEL_TAGS:
    values = [v for _, v in scalars.get(tag, [])]
    if not values:
      return None
    tail = values[-max(1, int(round(len(values) * fraction))):]
    means.append(sum(tail) / len(tail))
  return tuple(means)


def over_seeds(results: dict, base_names, seeds: int, states: dict) -> dict:
  """Per base configuration: the last KID of every finished seed, their mean and std (ddof 1) over seeds, the
  kernel state per seed, the fraction ending saturated or all-zero, and the median seed (by last KID)."""
  summary = {}
  for base in base_names:
    runs = [f"{base}_s{k}" for k in range(seeds) if f"{base}_s{k}" in results and results[f"{base}_s{k}"]["points"]]
    if not runs:
      continue
    kids = [results[run]["points"][-1]["kid"] for run in runs]
    mean = sum(kids) / len(kids)
    std = (sum((k - mean) ** 2 for k in kids) / (len(kids) - 1)) ** 0.5 if len(kids) > 1 else 0.0
    run_states = [states.get(run) for run in runs]
    known = [s for s in run_states if s is not None]
    median = sorted(zip(kids, runs))[(len(runs) - 1) // 2][1]
    summary[base] = {"runs": runs, "steps": [results[run]["points"][-1]["step"] for run in runs],
                     "kid": kids, "kid_mean": mean, "kid_std": std, "states": run_states,
                     "stuck_fraction": (sum(s != "healthy" for s in known) / len(known)) if known else None,
                     "median_run": median}
  return summary


def seeds_table(summary: dict) -> str:
  """One row per configuration: KID x 10^3 mean +- std over seeds, the per-seed values and end states."""
  lines = ["| config | seeds | step | KID x 10^3 (mean +- std over seeds) | per seed | end state per seed | stuck |",
           "|---|---|---|---|---|---|---|"]
  for base, row in summary.items():
    per_seed = ", ".join(f"{1e3 * k:.1f}" for k in row["kid"])
    states = ", ".join(s or "n/a" for s in row["states"])
    stuck = "n/a" if row["stuck_fraction"] is None else f"{row['stuck_fraction']:.0%}"
    lines.append(f"| {base} | {len(row['runs'])} | {max(row['steps'])} | {1e3 * row['kid_mean']:.1f} +- "
                 f"{1e3 * row['kid_std']:.1f} | {per_seed} | {states} | {stuck} |")
  return "\n".join(lines) + "\n"


def run_state(workdir: str):
  """The kernel state a run ended in (kernel_state of final_kernel_means), or None without kernel scalars."""
  sys.path.insert(0, ROOT)
  from tools import plot_scalars  # pylint: disable=import-outside-toplevel
  try:
    means = final_kernel_means(plot_scalars.read_scalars(
        workdir, list(KERNEL_TAGS)))
  except ValueError:
    return None
  return kernel_state(*means) if means else None


def budget_flags(steps, minutes, eval_points: int) -> list:
  """main.py flags for the budget and the evaluation spacing."""
  if eval_points < 1:
    raise ValueError(f"--eval_points={eval_points} must be >= 1")
  if steps is not None and minutes is not None:
    raise ValueError("give --steps or --minutes, not both")
  if steps is not None:
    if steps < 1:
      raise ValueError(f"--steps={steps} must be >= 1")
    return [f"--steps={steps}", f"--eval_every={max(1, steps // eval_points)}"]
  if minutes is not None:
    if not math.isfinite(minutes) or minutes <= 0:
      raise ValueError(f"--minutes={minutes} must be a finite number > 0")
    return ["--steps=100000000", f"--max_train_minutes={minutes}", f"--eval_every_minutes={minutes / eval_points}",
            "--eval_every=0"]
  return []  # the preset's steps; evaluation every steps / eval_points needs the resolved config


def _arg_name(arg: str) -> str:
  """'--eval_every=5' -> 'eval_every', '--nofid' -> 'fid': the main.py flag an argument sets, as main.py's
  parser reads it (its boolean flags take a 'no' prefix)."""
  name = arg.lstrip("-").split("=", 1)[0]
  main_flags = _main_flag_names()
  if name not in main_flags and name.startswith("no") and name[2:] in main_flags:
    return name[2:]
  return name


def run_command(name: str, config_flags: list, out: str) -> list:
  """The main.py command line of one configuration, checked as main.py checks its flags (ValueError naming the
  configuration, the flag and the value) before any main.py starts."""
  overridden = {_arg_name(arg) for arg in config_flags}  # a configuration's own value replaces --common's
  chosen = [arg for arg in split_flags("--common=", FLAGS.common) if _arg_name(arg) not in overridden] + config_flags
  samples = PAPER_SAMPLES if FLAGS.scale == "paper" else FLAGS.num_samples
  evaluation = [f"--eval_num_samples={samples}", f"--eval_num_real={FLAGS.num_real or samples}",
                f"--kid_subset_size={min(FLAGS.kid_subset_size, samples)}",
                f"--kid_subsets={FLAGS.kid_subsets}", f"--fid={FLAGS.fid or FLAGS.scale == 'paper'}",
                "--eval_at_start=true"]
  if FLAGS.inception_weights:
    evaluation.append(f"--inception_weights={os.path.abspath(FLAGS.inception_weights)}")
  workdir = [f"--workdir={os.path.join(out, 'runs', name)}"]
  budget = budget_flags(FLAGS.steps, FLAGS.minutes, FLAGS.eval_points)
  owned = {_arg_name(arg) for arg in budget + evaluation + workdir} | {"eval_every", "dry_run", "mode"}
  for arg in chosen:
    flag = _arg_name(arg)
    if flag in owned:
      raise ValueError(f"configuration {name!r}: {arg} is set by this tool for every run (its budget, evaluation, "
                       "workdir or mode); give the tool's own flag (--steps, --minutes, --num_samples, ...) or "
                       "leave it out")
  try:
    if not budget:  # the preset's steps (or a resumed run's own), as main.py resolves them
      budget = [f"--eval_every={max(1, main_config(chosen + workdir).train.steps // FLAGS.eval_points)}"]
    main_config(chosen + budget + evaluation + workdir)
  except ValueError as e:
    raise ValueError(f"configuration {name!r}: {e}") from None
  return [sys.executable, os.path.join(ROOT, "main.py")] + chosen + budget + evaluation + workdir


@functools.lru_cache(maxsize=None)
def _main_flag_names() -> frozenset:
  return frozenset(_main_flag_values())


def _main_flag_values() -> flags.FlagValues:
  """main.py's flags on a FlagValues of their own, with absl's (--v, --logtostderr, ...) and --verbose."""
  if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
  from flags import definitions  # pylint: disable=import-outside-toplevel
  flag_values = flags.FlagValues()
  definitions.define_flags(flag_values)
  cli.define_verbose_flag(flag_values)
  for module, module_flags in flags.FLAGS.flags_by_module_dict().items():  # absl defines them there
    if module.startswith("absl."):
      for flag in module_flags:
        flag_values[flag.name] = copy.deepcopy(flag)
  return flag_values


def main_config(flag_list: list):
  """The Config that main.py resolves from `flag_list` (a resumed run's own settings, changed by the flags
  given), by main.py's own parsing and checks in this process, less its data scan; ValueError naming the flag
  and value main.py would refuse."""
  flag_values = _main_flag_values()
  from flags import build, definitions  # pylint: disable=import-outside-toplevel  (ROOT is on the path now)
  try:
    unparsed = flag_values(["main.py"] + flag_list)
  except flags.Error as e:
    raise ValueError(" ".join(str(e).split())) from None
  if len(unparsed) > 1:
    raise ValueError(f"main.py would refuse the arguments {' '.join(unparsed[1:])} (not flags)")
  repeated = cli.repeated_flag(flag_list, flag_values)
  if repeated:  # within --common or one --config (a configuration's flag replaces --common's before this)
    raise ValueError(f"{repeated}; give it once")
  given = {name: flag_values[name].value for name in definitions.FLAG_FIELDS if flag_values[name].present}
  return build.build_config(given, check_library=False, base=_resumed_settings(given.get("workdir")))


def _resumed_settings(workdir: Optional[str]):
  """main.py's base config: the settings of a run already in `workdir` (the tool always gives one), or None."""
  if not workdir:
    return None
  if not (os.path.isdir(os.path.join(workdir, "checkpoints")) or
          os.path.isfile(os.path.join(workdir, checkpointing.CONFIG_FILE))):
    return None
  try:
    return checkpointing.at_workdir(checkpointing.load_config(workdir), workdir)
  except (ValueError, OSError):
    return None  # not readable as a run: main.py says why when it starts


def read_records(workdir: str) -> list:
  """The evaluations of a run, one per step (a resumed run's repeat of a step replaces the older record)."""
  path = os.path.join(workdir, "eval.jsonl")
  by_step = {}
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      for line in f:
        try:
          record = json.loads(line)
        except ValueError:
          continue  # a line cut by a crash
        if isinstance(record, dict) and isinstance(record.get("step"), int) and "kid" in record \
            and "train_seconds" in record:
          by_step[record["step"]] = record  # any other line (edited by hand) is not an evaluation
  return [by_step[s] for s in sorted(by_step)]


def latest_grid(workdir: str):
  samples = os.path.join(workdir, "samples")
  names = sorted(n for n in os.listdir(samples) if n.endswith(".png")) if os.path.isdir(samples) else []
  return os.path.join(samples, names[-1]) if names else None


# What the tool (re)writes directly in --out; runs/ and logs/ hold one entry per configuration.
_OUTPUTS = ("results.json", "table.md", "seeds.md", "kid.png", "grids")


def check_out(out: str) -> None:
  """ValueError (naming --out) before any work unless --out is new, a folder without the tool's outputs, or an
  earlier output of this tool (its results.json): it never replaces a user's table.md or results.json, and never
  writes into a training run (its logs/ and runs/ were written into the run given as --out)."""
  checkpointing.refuse_inside_runs("--out", os.path.join(out, "results.json"), out)
  run = checkpointing.enclosing_run(os.path.join(out, "results.json"))
  if run:
    where = "a training run" if os.path.realpath(out) == run else f"inside the training run {run}"
    raise ValueError(f"--out={out} is {where}: the configurations' runs and logs would be written into that run's "
                     "folder; give another --out")
  if os.path.exists(out) and not os.path.isdir(out):
    raise ValueError(f"--out={out} exists and is not a folder")
  present = [name for name in _OUTPUTS if os.path.lexists(os.path.join(out, name))]
  if not present:
    return
  earlier = files.read_json(os.path.join(out, "results.json"))
  if not (isinstance(earlier, dict) and isinstance(earlier.get("configs"), dict) and "command" in earlier):
    raise ValueError(f"--out={out} holds {', '.join(present)} but no results.json of an earlier run of this tool: "
                     "they would be replaced; give a new folder")


def earlier_results(out: str) -> dict:
  """The configurations of an earlier run of this tool into `out` (its results.json), by name."""
  try:
    with open(os.path.join(out, "results.json"), encoding="utf-8") as f:
      configs = json.load(f)["configs"]
  except (OSError, ValueError, KeyError, TypeError):
    return {}
  return configs if isinstance(configs, dict) else {}


def _log_header(name: str) -> str:
  """The start of the line this tool writes into logs/<name>.log before each main.py it starts there."""
  return f"tools/quality.py [{name}] "


def check_logs(out: str, names, earlier: dict) -> None:
  """ValueError naming --out unless each logs/<name>.log is new or this tool's log of that configuration: its
  first line is the tool's, or the configuration has its run folder or an earlier result (a log from before the
  tool wrote that line). main.py's output was appended to a user's own file of that name."""
  for name in names:
    path = os.path.join(out, "logs", f"{name}.log")
    if not os.path.lexists(path) or name in earlier or os.path.isdir(os.path.join(out, "runs", name)):
      continue
    try:
      with open(path, encoding="utf-8", errors="replace") as f:
        ours = f.readline().startswith(_log_header(name))
    except OSError:
      ours = False
    if not ours:
      raise ValueError(f"--out={out}: logs/{name}.log exists and was not written by this tool for configuration "
                       f"{name!r}; move it or give another --out")


# The main.py child that runs now, and the stop signals this tool received (forwarded to it).
_CHILD = {"process": None, "signals": []}
EXIT_INTERRUPTED = 75  # main.py's "interrupted, resumable"


class Interrupted(Exception):
  """The tool was asked to stop and its child saved its step."""


def _forward(signum, frame) -> None:  # pylint: disable=unused-argument
  """SIGTERM, SIGINT, SIGHUP: passed once to the running main.py, which saves its step and exits 75."""
  _CHILD["signals"].append(signum)
  process = _CHILD["process"]
  if process is not None and process.poll() is None:
    process.send_signal(signum)


def install_signal_forwarding() -> None:
  for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(signum, _forward)


def run_config(name: str, command: list, out: str, earlier: Optional[dict] = None) -> dict:
  """Runs (or resumes) one configuration to the end, printing each evaluation as it arrives.

  `earlier`: this configuration's result from an earlier run of the tool; if main.py finished that same
  command, it is not started again.
  """
  workdir = command[-1].split("=", 1)[1]
  if earlier and earlier.get("finished") and earlier.get("command") == shlex.join(command[1:]):
    print(f"[{name}] finished earlier with the same command: skipped", flush=True)
    if not holds_the_finished_run(earlier):
      return dict(earlier)  # the folder is gone, or a later unfinished restart replaced the finished run
    return dict(earlier, points=read_records(workdir), grid=latest_grid(workdir))
  if earlier and earlier.get("command") != shlex.join(command[1:]) and os.path.isdir(workdir):
    # main.py would resume that run (already at its steps: nothing trained) and its points would be reported
    # as this command's.
    raise RuntimeError(f"[{name}] its run {workdir} was made by another command ({earlier.get('command')}); "
                       "give another --out to compare the two, or remove that run to redo it")
  os.makedirs(os.path.join(out, "logs"), exist_ok=True)
  log_path = os.path.join(out, "logs", f"{name}.log")
  print(f"[{name}] {shlex.join(command[1:])}", flush=True)
  start = time.monotonic()
  shown = {r["step"] for r in read_records(workdir)}
  with open(log_path, "a", encoding="utf-8") as log:
    if _CHILD["signals"]:
      raise Interrupted(f"[{name}] not started: this tool was asked to stop")
    log.write(_log_header(name) + shlex.join(command[1:]) + "\n")  # the log is the tool's (check_logs)
    log.flush()
    # A session of its own: a Ctrl-C or a SIGTERM to the tool's process group reaches it once, through
    # `_forward`, not twice (a second Ctrl-C would stop it without saving).
    process = _CHILD["process"] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                                   start_new_session=True)
    while True:
      try:
        code = process.wait(timeout=FLAGS.poll_seconds)
      except subprocess.TimeoutExpired:
        code = None
      for record in read_records(workdir):
        if record["step"] not in shown:
          shown.add(record["step"])
          print(f"[{name}] step {record['step']:>7} | {record['train_seconds'] / 60:6.1f} min | "
                f"KID x1e3 {1e3 * record['kid']:8.2f} +- {1e3 * record['kid_std']:.2f}", flush=True)
      if code is not None:
        break
  _CHILD["process"] = None
  if code == EXIT_INTERRUPTED and _CHILD["signals"]:
    raise Interrupted(f"[{name}] interrupted: its run saved its step; the same command continues it")
  if code:
    raise RuntimeError(f"[{name}] main.py exited with {code}; see {log_path}")
  records = read_records(workdir)
  if not records:
    raise RuntimeError(f"[{name}] the run wrote no evaluation (are the Inception weights available?); "
                       f"see {log_path}")
  print(f"[{name}] done in {(time.monotonic() - start) / 60:.1f} min", flush=True)
  return {"command": shlex.join(command[1:]), "workdir": workdir, "points": records,
          "grid": latest_grid(workdir), "finished": True}


def machine() -> dict:
  info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
  try:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    info["tensorflow"] = tf.__version__
    info["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
  except ImportError:
    pass
  return info


def markdown_table(results: dict) -> str:
  """One row per configuration: KID x 10^3 (mean +- std over subsets) at each evaluation."""
  lines = ["| config | step | train min | KID x 10^3 | FID |", "|---|---|---|---|---|"]
  for name, result in results.items():
    for record in result["points"]:
      fid = f"{record['fid']:.1f}" if "fid" in record else ""
      lines.append(f"| {name} | {record['step']} | {record['train_seconds'] / 60:.1f} | "
                   f"{1e3 * record['kid']:.2f} +- {1e3 * record['kid_std']:.2f} | {fid} |")
  return "\n".join(lines) + "\n"


def plot(results: dict, path: str, title: str = "") -> None:
  """KID x 10^3 against step and against training minutes, one line per configuration (log scale)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  for name, result in results.items():
    points = result["points"]
    kid = [max(1e3 * p["kid"], 1e-3) for p in points]
    err = [1e3 * p["kid_std"] for p in points]
    axes[0].errorbar([p["step"] for p in points], kid, yerr=err, marker="o", ms=3, capsize=2, label=name)
    axes[1].errorbar([p["train_seconds"] / 60 for p in points], kid, yerr=err, marker="o", ms=3, capsize=2,
                     label=name)
  for axis, label in zip(axes, ("generator step", "training minutes")):
    axis.set_xlabel(label)
    axis.set_ylabel("KID x 10^3")
    axis.set_yscale("log")
    axis.grid(True, alpha=0.3)
  axes[1].legend(fontsize=8)
  if title:
    figure.suptitle(title, fontsize=10)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def short_title(common: str, steps, minutes) -> str:
  """'<dataset> (<data file>), <budget>' for the plot title."""
  values = dict(flag.lstrip("-").split("=", 1) for flag in shlex.split(common) if "=" in flag)
  data = os.path.basename(values.get("data_dir", "")) if values.get("data_dir") else ""
  dataset = values.get("dataset", "shapes") + (f" ({data})" if data else "")
  budget = f"{minutes:g} training minutes each" if minutes else (f"{steps} steps each" if steps else "preset steps")
  return f"{dataset}, {budget}"


def base_name(name: str) -> str:
  """The configuration a run belongs to: `rep_s2` -> `rep` (the runs of --seeds), other names as they are."""
  return re.sub(r"_s\d+$", "", name)


def merge_results(earlier: dict, current: dict) -> dict:
  """The records results.json keeps: this invocation's, and every configuration of earlier invocations into the
  same --out that this one did not reach (another --losses list: their finished runs are not trained again)."""
  merged = {name: current.get(name, record) for name, record in earlier.items()}
  merged.update(current)
  return merged


def holds_the_finished_run(result: dict) -> bool:
  """Whether the run folder of a finished `result` still holds that run: its evaluations reach the recorded last
  step (a folder that is gone, or a restart of the same name that stopped earlier, does not)."""
  workdir = result.get("workdir") or ""
  recorded = [p["step"] for p in result.get("points") or []]
  found = [p["step"] for p in read_records(workdir)] if os.path.isdir(workdir) else []
  return bool(found) and max(found) >= max(recorded, default=0)


def _state(result: dict):
  """The run's kernel end state, read from its run folder, or the one recorded earlier when the folder no longer
  holds that run (`holds_the_finished_run`)."""
  if holds_the_finished_run(result):
    result["state"] = run_state(result["workdir"])
  return result.get("state")


def write_outputs(out: str, results: dict, argv: list, base_names=()) -> None:
  os.makedirs(os.path.join(out, "grids"), exist_ok=True)
  for name, result in results.items():
    if result["grid"] and os.path.isfile(result["grid"]):
      shutil.copyfile(result["grid"], os.path.join(out, "grids", f"{name}.png"))
  seeds = {}
  if FLAGS.seeds > 1:
    base_names = list(dict.fromkeys([*base_names, *map(base_name, results)]))
    seeds = over_seeds(results, base_names, FLAGS.seeds, {name: _state(r) for name, r in results.items()})
    for base, row in seeds.items():
      grid = results[row["median_run"]]["grid"]
      if grid and os.path.isfile(grid):
        shutil.copyfile(grid, os.path.join(out, "grids", f"{base}_median.png"))
    with open(os.path.join(out, "seeds.md"), "w", encoding="utf-8") as f:
      f.write(seeds_table(seeds))
  summary = {"over_seeds": seeds, "command": shlex.join(argv), "machine": machine(), "common": FLAGS.common,
             "budget": {"steps": FLAGS.steps, "minutes": FLAGS.minutes, "eval_points": FLAGS.eval_points,
                        "scale": FLAGS.scale},
             "num_samples": PAPER_SAMPLES if FLAGS.scale == "paper" else FLAGS.num_samples,
             "num_real": FLAGS.num_real,
             "configs": results}
  with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=1)
  with open(os.path.join(out, "table.md"), "w", encoding="utf-8") as f:
    f.write(markdown_table(results))
  plot(results, os.path.join(out, "kid.png"), title=short_title(FLAGS.common, FLAGS.steps, FLAGS.minutes))


def check_weights(path) -> None:
  """The FID Inception weights that every run's KID needs: found (the cache may download them once) before
  anything is written, not by the first configuration's main.py after OUT/logs/ was."""
  from mmd_gan_tf.metrics import inception_weights  # pylint: disable=import-outside-toplevel
  try:
    inception_weights.load_inception_weights(path)
  except (RuntimeError, OSError) as error:
    raise ValueError(f"every configuration computes KID with the FID Inception weights: "
                     f"{str(error).split('. ')[0]}; give --inception_weights=PATH") from None


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  # Every check before anything is written (main.py refused bad values only after OUT/logs/ was).
  check_counts(FLAGS)
  out = os.path.abspath(FLAGS.out)
  check_out(out)
  base = parse_configs(FLAGS.losses, FLAGS.config)
  configs = expand_seeds(base, FLAGS.seeds)
  budget_flags(FLAGS.steps, FLAGS.minutes, FLAGS.eval_points)
  earlier = earlier_results(out)
  check_logs(out, configs, earlier)
  commands = {name: run_command(name, config_flags, out) for name, config_flags in configs.items()}
  check_weights(FLAGS.inception_weights)
  results = {}
  install_signal_forwarding()
  for name, command in commands.items():
    try:
      results[name] = run_config(name, command, out, earlier.get(name))
    except Interrupted as e:
      print(f"interrupted: {e}", file=sys.stderr)
      return EXIT_INTERRUPTED
    except RuntimeError as e:
      print(f"error: {e}", file=sys.stderr)
      return 1
    # partial results are kept as runs finish, beside those of earlier invocations
    write_outputs(out, merge_results(earlier, results), sys.argv, list(base))
  print(f"wrote {out}/results.json, table.md, kid.png, grids/", flush=True)
  return 0


if __name__ == "__main__":
  define_flags()
  cli.run(main)
