"""Where a training step's time goes: TensorFlow's profiler trace of a few steps, summed per op and per part.

`tools/bench_step.py --profile_steps=N` profiles N steps of each row after its timed steps
(`tf.profiler.experimental`), reads the trace (the `.xplane.pb` file the profiler writes) and adds to the row
the op time per step, the top op types and the parts below. The trace stays in `--profile_dir` for
TensorBoard's profile plugin.

Op time is the sum of the durations of the ops TensorFlow's executor ran, over all threads: with two
threads working it can exceed the step's wall time, and it leaves out what runs between ops (the Python
host loop, waiting on the input pipeline).
"""

import collections
import glob
import os
import re
from typing import Dict, Iterable, List, Tuple

# The optimizers' name scopes: Keras numbers the second and later ones of a type (`adam_1/update_3/Mul`).
_OPTIMIZER_SCOPE = re.compile(r"(adam|rms_prop|sgd)(_\d+)?/")

# The parts of a step, first match wins: (part, test on (op name, op type)). Names are TensorFlow's op
# names, i.e. the Keras layer path (`critic/critic_network/sn_conv2d_3/...`, `gradient_tape/...` for the
# backward pass, `adam/update/...`, `adam_1/...` for the optimizers).
PARTS = (
    ("convolutions", lambda name, kind: "Conv" in kind),
    ("matmuls", lambda name, kind: "MatMul" in kind or "Einsum" in kind),
    ("activation gradients", lambda name, kind: kind.endswith("ReluGrad") or kind == "TanhGrad"),
    ("activations", lambda name, kind: kind in ("Relu", "LeakyRelu", "Tanh", "Sigmoid")),
    ("batch normalization", lambda name, kind: "batch_norm" in name or "FusedBatchNorm" in kind),
    ("optimizer updates", lambda name, kind: _OPTIMIZER_SCOPE.match(name) is not None),
    ("casts", lambda name, kind: kind == "Cast"),
    ("input pipeline", lambda name, kind: kind.startswith("Iterator") or name.startswith("Iterator")),
    ("collectives (all-gather, all-reduce)", lambda name, kind: "Collective" in kind or "Nccl" in kind),
    ("other (kernel maths, losses, power iterations, ...)", lambda name, kind: True),
)


def part_of(name: str, kind: str) -> str:
  """The `PARTS` entry of an op, from its name (`scope/.../op`) and type (`Conv2D`, `_MklNativeConv2D`)."""
  return next(part for part, matches in PARTS if matches(name, kind))


def trace_file(profile_dir: str) -> str:
  """The newest `.xplane.pb` below `profile_dir` (the profiler writes `plugins/profile/<time>/<host>...`)."""
  found = glob.glob(os.path.join(glob.escape(profile_dir), "**", "*.xplane.pb"), recursive=True)
  if not found:
    raise FileNotFoundError(f"no profiler trace (*.xplane.pb) below {profile_dir}")
  return max(found, key=os.path.getmtime)


def op_events(path: str) -> Iterable[Tuple[str, str, float]]:
  """(op name, op type, milliseconds) of every op the executor ran in the trace at `path`.

  Op events are those whose metadata name is `op name:op type` with the type as display name; the Python
  thread's events (tf.function calls, eager dispatch) and the thread pools' bookkeeping are left out.
  """
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=import-outside-toplevel
  space = xplane_pb2.XSpace()
  with open(path, "rb") as f:
    space.ParseFromString(f.read())
  for plane in space.planes:
    for line in plane.lines:
      if line.name == "python":
        continue
      for event in line.events:
        metadata = plane.event_metadata[event.metadata_id]
        if metadata.display_name and metadata.name.endswith(":" + metadata.display_name):
          yield metadata.name[:-len(metadata.display_name) - 1], metadata.display_name, event.duration_ps / 1e9


def summarize(events: Iterable[Tuple[str, str, float]], steps: int, top: int = 10) -> Dict:
  """Per step: the op time (ms), the `top` op types and every part of `PARTS`, each in ms and as a fraction
  of the op time (parts sorted by time, empty ones left out)."""
  if steps < 1:
    raise ValueError(f"steps={steps} must be >= 1")
  kinds, parts = collections.Counter(), collections.Counter()
  for name, kind, ms in events:
    kinds[kind] += ms / steps
    parts[part_of(name, kind)] += ms / steps
  total = sum(kinds.values())

  def rows(counter: collections.Counter, n=None) -> List[Dict]:
    return [{"name": k, "ms": v, "fraction": v / total if total else 0.0} for k, v in counter.most_common(n)]
  return {"steps": steps, "op_ms_per_step": total, "top_ops": rows(kinds, top), "parts": rows(parts)}


def markdown_lines(row: Dict) -> List[str]:
  """The profile of one bench_step row as a markdown list: parts, then top op types."""
  profile = row.get("profile")
  if not profile:
    return []
  lines = [f"- profile of {row['arch']} {row['image_size']}, {row['precision']}, XLA "
           f"{'on' if row.get('xla') else 'off'}: {profile['op_ms_per_step']:.1f} ms of op time per step "
           f"over {profile['steps']} steps (all threads; the step took {row['median_ms']:.1f} ms)"]
  lines.append("  - parts: " + "; ".join(f"{p['name']} {p['ms']:.1f} ms ({100 * p['fraction']:.0f}%)"
                                         for p in profile["parts"]))
  lines.append("  - top op types: " + "; ".join(f"{p['name']} {p['ms']:.1f} ms ({100 * p['fraction']:.0f}%)"
                                                for p in profile["top_ops"]))
  return lines
