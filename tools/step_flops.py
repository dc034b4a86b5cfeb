"""The dense work of a traced training step, in FLOPs, for the step benchmark's fraction of the matmul ceiling.

`graph_flops` sums TensorFlow's own op statistics (`ops.get_stats_for_node_def(..., "flops")`, 2 FLOPs per
multiply-add) over the convolutions and matmuls of a traced graph, forward and backward (`Conv2DBackpropInput`,
`Conv2DBackpropFilter`) that the graph runs, including the graphs of functions it calls. The element-wise rest of a step (batch
normalization, activations, the optimizer) is left out: the ceiling it is compared with is a matmul's rate.
"""

from typing import Optional

from tensorflow.python.framework import ops as tf_ops  # get_stats_for_node_def: no public equivalent

DENSE_OPS = frozenset({"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "Conv3D", "DepthwiseConv2dNative",
                       "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"})
_FUNCTION_ATTRS = ("f", "then_branch", "else_branch", "body", "cond")


def _live_ops(graph) -> set:
  """The ops whose results the graph uses: its outputs, its control outputs and variable writes, and all they
  depend on. A gradient function adds ops that nothing reads (a convolution's gradient with respect to the
  images when only its filter's is asked for); TensorFlow prunes them before running the graph."""
  roots = [tensor.op for tensor in graph.outputs] + list(getattr(graph, "control_outputs", []))
  roots += [op for op in graph.get_operations() if op.type.startswith(("Assign", "ResourceApply"))]
  live, stack = set(), list(roots)
  while stack:
    op = stack.pop()
    if op.name in live:
      continue
    live.add(op.name)
    stack.extend(tensor.op for tensor in op.inputs)
    stack.extend(op.control_inputs)
  return live


def graph_flops(graph, op_types=DENSE_OPS) -> Optional[int]:
  """FLOPs of the ops of `op_types` that `graph` runs (`_live_ops`), and of the functions it calls (each call
  counted once); None when one of them has shapes TensorFlow cannot count or calls a function whose graph is
  not at hand (a loop's body runs a number of times the graph does not say, so loops are None too)."""
  total = 0
  live = _live_ops(graph)
  for op in graph.get_operations():
    if op.name not in live:
      continue
    if op.type in ("While", "StatelessWhile"):
      return None
    for attr in _FUNCTION_ATTRS:
      if attr in op.node_def.attr and op.node_def.attr[attr].func.name:
        nested = getattr(graph, "_functions", {}).get(op.node_def.attr[attr].func.name)
        flops = graph_flops(nested.graph, op_types) if hasattr(nested, "graph") else None
        if flops is None:
          return None
        total += flops
    if op.type in op_types:
      try:
        flops = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
      except ValueError:  # a dimension unknown at tracing
        return None
      if flops is None:
        return None
      total += int(flops)
  return total


class CountedCalls:
  """A step function that counts its calls (so a benchmark knows how often each ran per generator step)."""

  def __init__(self, fn):
    self.fn, self.calls = fn, 0

  def __call__(self, *args):
    self.calls += 1
    return self.fn(*args)


def flops_per_step(counted, generator_steps: int, *args) -> Optional[float]:
  """FLOPs per generator step of the tf.functions in `counted` (CountedCalls), each weighted by its calls over
  `generator_steps` steps; `args` are the arguments it was called with (for its traced graph). None if any
  called function's dense work cannot be counted."""
  total = 0.0
  for step_fn in counted:
    if not step_fn.calls:
      continue
    flops = graph_flops(step_fn.fn.get_concrete_function(*args).graph)
    if flops is None:
      return None
    total += flops * step_fn.calls / generator_steps
  return total
