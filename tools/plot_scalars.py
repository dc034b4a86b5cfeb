"""Scalars of one or more runs' TensorBoard logs as a markdown table, a JSON and a PNG plot.

  python tools/plot_scalars.py --run=shipped:runs/sat_shipped --run=faithful:runs/sat_faithful \
      --tags=kernel/real_real,kernel/fake_fake,kernel/real_fake --every=50 --out=results/saturation

Writes <out>.json ({run: {tag: [[step, value], ...]}}), <out>.md (one row per step that is a multiple of
--every and one for each run's last step, one column per run and tag) and <out>.png (one panel per tag, one
line per run). --out=NAME.json (or .md, .png) is read as --out=NAME.
"""

import json
import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from mmd_gan_tf import checkpointing  # noqa: E402
from mmd_gan_tf import cli  # noqa: E402
from mmd_gan_tf import files  # noqa: E402

FLAGS = flags.FLAGS
OUTPUT_SUFFIXES = (".json", ".md", ".png")


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
  """The tool's flags on `flag_values` (the tool: the global FLAGS; tests: a fresh FlagValues)."""
  flags.DEFINE_multi_string("run", [], "NAME:WORKDIR (its tensorboard/ folder is read); repeatable.",
                            flag_values=flag_values)
  flags.DEFINE_list("tags", ["kernel/real_real", "kernel/fake_fake", "kernel/real_fake"], "Scalar tags.",
                    flag_values=flag_values)
  flags.DEFINE_integer("every", 50, "Table rows at the steps that are multiples of this (and at each run's last "
                       "step).", flag_values=flag_values)
  flags.DEFINE_string("out", "scalars", "Output path without extension (a .json, .md or .png one is dropped).",
                      flag_values=flag_values)


def read_scalars(workdir: str, tags) -> dict:
  """{tag: [(step, value), ...]} sorted by step (the last value wins for a repeated step)."""
  return read_run(workdir, tags)[0]


def read_run(workdir: str, tags) -> tuple:
  """(read_scalars's {tag: [(step, value), ...]}, the set of every scalar tag the run logged)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=import-outside-toplevel
  directory = os.path.join(workdir, "tensorboard")
  if not os.path.isdir(directory):
    raise ValueError(f"{workdir} has no tensorboard/ folder")
  accumulator = event_accumulator.EventAccumulator(directory, size_guidance={"tensors": 0, "scalars": 0})
  tensorboard_log = logging.getLogger("tensorboard")  # its INFO "No path found after <each event file>"
  level = tensorboard_log.level
  tensorboard_log.setLevel(logging.WARNING)
  try:
    accumulator.Reload()
  finally:
    tensorboard_log.setLevel(level)
  available = set(accumulator.Tags().get("tensors", [])) | set(accumulator.Tags().get("scalars", []))
  result = {}
  for tag in tags:
    if tag not in available:
      result[tag] = []
      continue
    values = {}
    if tag in accumulator.Tags().get("tensors", []):
      for event in accumulator.Tensors(tag):
        values[event.step] = float(tf.make_ndarray(event.tensor_proto))
    else:
      for event in accumulator.Scalars(tag):
        values[event.step] = float(event.value)
    result[tag] = sorted(values.items())
  return result, available


def table(data: dict, tags, every: int) -> str:
  runs = list(data)
  header = ["step"] + [f"{run} {tag.split('/')[-1]}" for run in runs for tag in tags]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  last = {data[run][tag][-1][0] for run in runs for tag in tags if data[run][tag]}  # a run shorter than --every
  steps = sorted({s for run in runs for tag in tags for s, _ in data[run][tag] if s % every == 0} | last)
  for step in steps:
    cells = [str(step)]
    for run in runs:
      for tag in tags:
        value = dict(data[run][tag]).get(step)
        cells.append("" if value is None else f"{value:.3f}")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def plot(data: dict, tags, path: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  figure, axes = plt.subplots(1, len(tags), figsize=(4.2 * len(tags), 3.6), squeeze=False)
  for axis, tag in zip(axes[0], tags):
    for run, series in data.items():
      if series[tag]:
        steps, values = zip(*series[tag])
        axis.plot(steps, values, label=run, lw=1)
    axis.set_title(tag, fontsize=10)
    axis.set_xlabel("step")
    axis.grid(True, alpha=0.3)
  axes[0][0].legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def _is_our_output(earlier) -> bool:
  """Whether a JSON value has this tool's shape: {run: {tag: [[step, value], ...]}}, not empty."""
  def series(points):
    return isinstance(points, list) and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, (int, float)) for x in p) for p in points)
  return (isinstance(earlier, dict) and bool(earlier) and all(
      isinstance(run, dict) and all(series(points) for points in run.values()) for run in earlier.values()))


def check_out(out: str) -> None:
  """ValueError naming --out unless <out>.json/.md/.png are new or an earlier output of this tool, outside any
  run's own folders (--out=RUN/config replaced a run's config.json)."""
  for suffix in OUTPUT_SUFFIXES:
    checkpointing.refuse_inside_runs("--out", out + suffix, out)
  ours = _is_our_output(files.read_json(out + ".json"))
  theirs = [out + s for s in OUTPUT_SUFFIXES if os.path.lexists(out + s)]
  if theirs and not ours:
    raise ValueError(f"--out={out}: {', '.join(theirs)} exist(s) and are not an earlier output of this tool "
                     "(its .json); give another --out")


def parse_runs(entries, tags, every: int) -> dict:
  """{NAME: WORKDIR} of the --run entries; ValueError naming the flag and value of a bad --run, --tags or
  --every (before anything is read or written)."""
  if every < 1:
    raise ValueError(f"--every={every} must be >= 1")
  if not tags:
    raise ValueError("--tags is empty: name at least one scalar tag")
  if not entries:
    raise ValueError("give at least one --run=NAME:WORKDIR")
  runs = {}
  for entry in entries:
    name, _, workdir = entry.partition(":")
    if not name or not workdir:
      raise ValueError(f"--run={entry} must be NAME:WORKDIR")
    if name in runs:
      raise ValueError(f"--run={entry}: the name {name!r} is given twice")
    runs[name] = workdir
  return runs


def check_tags(tags, logged: set) -> None:
  """ValueError naming the first of `tags` that no run logged (it would be an empty column and panel)."""
  for tag in tags:
    if tag not in logged:
      raise ValueError(f"--tags={','.join(tags)}: no run logged {tag!r}; the runs have "
                       f"{', '.join(sorted(logged)) or 'no scalars'}")


def output_base(out: str) -> str:
  """--out without one of the suffixes this tool adds (--out=x.json wrote x.json.json)."""
  return next((out[:-len(suffix)] for suffix in OUTPUT_SUFFIXES if out.endswith(suffix) and len(out) > len(suffix)),
              out)


def main(argv) -> int:
  del argv
  runs = parse_runs(FLAGS.run, FLAGS.tags, FLAGS.every)
  out = output_base(FLAGS.out)
  check_out(out)  # before the work
  data, logged = {}, set()
  for name, workdir in runs.items():
    data[name], available = read_run(workdir, FLAGS.tags)
    logged |= available
  check_tags(FLAGS.tags, logged)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out + ".json", "w", encoding="utf-8") as f:
    json.dump(data, f)
  with open(out + ".md", "w", encoding="utf-8") as f:
    f.write(table(data, FLAGS.tags, FLAGS.every))
  plot(data, FLAGS.tags, out + ".png")
  print(f"wrote {out}.json, .md, .png")
  return 0


if __name__ == "__main__":
  define_flags()
  cli.run(main)
