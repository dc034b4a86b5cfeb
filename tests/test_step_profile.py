"""tools/step_profile.py: which part of a step an op belongs to, the sums per step, and a real trace read back."""

import sys

import pytest
import tensorflow as tf

from helpers import ROOT

sys.path.insert(0, str(ROOT))
from tools import step_profile  # noqa: E402  pylint: disable=wrong-import-position


@pytest.mark.parametrize("name, kind, part", [
    ("gradient_tape/critic/critic_network/sn_conv2d_5/Conv2DBackpropFilter", "_MklNativeConv2DBackpropFilter",
     "convolutions"),
    ("critic/critic_network/leaky_re_lu_2/LeakyRelu", "_MklNativeFusedConv2D", "convolutions"),
    ("critic/critic_network/sn_dense/MatMul", "_MklMatMul", "matmuls"),
    ("LeakyReluGrad_13", "LeakyReluGrad", "activation gradients"),
    ("generator/re_lu/Relu", "Relu", "activations"),
    ("gradient_tape/generator/batch_normalization_2/moments/Tile_3", "Tile", "batch normalization"),
    ("gradient_tape/generator/batch_norm_1/FusedBatchNormGradV3", "_MklFusedBatchNormGradV3", "batch normalization"),
    ("adam/update/Sqrt", "Sqrt", "optimizer updates"),
    ("adam_1/update_0_2/Mul_3", "Mul", "optimizer updates"),  # the second Adam (the generator's or critic's)
    ("rms_prop_12/update/Sub", "Sub", "optimizer updates"),
    ("adamantine/Mul", "Mul", "other (kernel maths, losses, power iterations, ...)"),
    ("critic/critic_network/Cast", "Cast", "casts"),
    ("Iterator::Root::Prefetch::Generator", "Iterator::Generator", "input pipeline"),
    ("CollectiveGatherV2", "CollectiveGatherV2", "collectives (all-gather, all-reduce)"),
    ("SquaredDifference_3", "SquaredDifference", "other (kernel maths, losses, power iterations, ...)"),
])
def test_every_op_falls_in_one_part(name, kind, part):
  assert step_profile.part_of(name, kind) == part


def test_summarize_per_step_top_ops_and_parts():
  events = [("a/Conv2D", "Conv2D", 6.0), ("b/Conv2D", "Conv2D", 2.0), ("adam/update/Mul", "Mul", 1.0),
            ("x/Mul", "Mul", 1.0)]
  result = step_profile.summarize(events, steps=2, top=1)
  assert result["steps"] == 2 and result["op_ms_per_step"] == pytest.approx(5.0)
  assert result["top_ops"] == [{"name": "Conv2D", "ms": 4.0, "fraction": pytest.approx(0.8)}]
  assert [(p["name"], p["ms"]) for p in result["parts"]] == [
      ("convolutions", 4.0), ("optimizer updates", 0.5),
      ("other (kernel maths, losses, power iterations, ...)", 0.5)]
  assert step_profile.summarize([], steps=1)["op_ms_per_step"] == 0
  with pytest.raises(ValueError, match="steps=0"):
    step_profile.summarize(events, steps=0)


def test_a_real_trace_is_read_back(tmp_path):
  with pytest.raises(FileNotFoundError, match="no profiler trace"):
    step_profile.trace_file(str(tmp_path))

  @tf.function
  def work(a, b):
    return tf.nn.relu(tf.matmul(a, b)) + tf.cast(tf.cast(a, tf.bfloat16), tf.float32)

  a = tf.random.stateless_normal([256, 256], seed=[1, 2])
  work(a, a)
  tf.profiler.experimental.start(str(tmp_path))
  for _ in range(3):
    work(a, a).numpy()
  tf.profiler.experimental.stop()
  events = list(step_profile.op_events(step_profile.trace_file(str(tmp_path))))
  kinds = {kind for _, kind, _ in events}
  assert {"Relu", "Cast"} <= kinds and any("MatMul" in kind for kind in kinds), kinds
  assert all(ms >= 0 for _, _, ms in events)
  parts = {p["name"] for p in step_profile.summarize(events, steps=3)["parts"]}
  assert {"matmuls", "activations", "casts"} <= parts
