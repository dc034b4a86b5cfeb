"""tools/step_flops.py: the dense FLOPs of traced graphs against hand counts (2 per multiply-add)."""

import sys

import tensorflow as tf

from helpers import ROOT

sys.path.insert(0, str(ROOT))
from tools import step_flops  # noqa: E402  pylint: disable=wrong-import-position

A = tf.ones([4, 5])
B = tf.ones([5, 6])
IMAGES = tf.ones([2, 8, 8, 3])
KERNEL = tf.Variable(tf.ones([3, 3, 3, 4]))
MATMUL_FLOPS = 2 * 4 * 5 * 6
CONV_FLOPS = 2 * (2 * 8 * 8 * 4) * (3 * 3 * 3)  # 2 x output elements x multiply-adds per output


def _graph(fn, *args):
  return tf.function(fn).get_concrete_function(*args).graph


def test_forward_matmul_and_convolution_match_hand_counts():
  assert step_flops.graph_flops(_graph(lambda a, b: tf.linalg.matmul(a, b), A, B)) == MATMUL_FLOPS
  conv = lambda x: tf.nn.conv2d(x, KERNEL, 1, "SAME")
  assert step_flops.graph_flops(_graph(conv, IMAGES)) == CONV_FLOPS
  # Element-wise ops are not dense work.
  assert step_flops.graph_flops(_graph(lambda x: tf.nn.relu(conv(x)) * 2.0, IMAGES)) == CONV_FLOPS


def test_the_backward_pass_adds_the_input_and_filter_gradients():
  def forward_backward(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(tf.nn.conv2d(x, KERNEL, 1, "SAME") ** 2)
    return tape.gradient(loss, [x, KERNEL])
  # Conv2DBackpropInput and Conv2DBackpropFilter each cost what the forward convolution costs.
  assert step_flops.graph_flops(_graph(forward_backward, IMAGES)) == 3 * CONV_FLOPS

  def filter_gradient_only(x):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.nn.conv2d(x, KERNEL, 1, "SAME") ** 2)
    return tape.gradient(loss, KERNEL)
  # The gradient function adds the images' gradient too, but nothing reads it: TensorFlow does not run it.
  graph = _graph(filter_gradient_only, IMAGES)
  assert "Conv2DBackpropInput" in {op.type for op in graph.get_operations()}
  assert step_flops.graph_flops(graph) == 2 * CONV_FLOPS

  def update(x):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.nn.conv2d(x, KERNEL, 1, "SAME") ** 2)
    KERNEL.assign_sub(0.1 * tape.gradient(loss, KERNEL))  # a variable write with no output: still run
  assert step_flops.graph_flops(_graph(update, IMAGES)) == 2 * CONV_FLOPS


def test_a_loop_or_an_unknown_shape_is_not_counted():
  def loop(a, b):
    return tf.while_loop(lambda i, m: i < 3, lambda i, m: (i + 1, tf.linalg.matmul(m, b[:, :5])), [0, a])[1]
  assert step_flops.graph_flops(_graph(loop, A, tf.ones([5, 5]))) is None
  unknown = tf.TensorSpec([None, 5])
  assert step_flops.graph_flops(_graph(lambda a, b: tf.linalg.matmul(a, b), unknown, B)) is None


def test_flops_per_step_weights_each_function_by_its_calls():
  matmul = step_flops.CountedCalls(tf.function(lambda a: tf.linalg.matmul(a, B)))
  unused = step_flops.CountedCalls(tf.function(lambda a: tf.linalg.matmul(tf.ones([100, 4]), a)))
  for _ in range(10):  # 2 generator steps of 5 calls each
    matmul(A)
  assert matmul.calls == 10 and unused.calls == 0
  assert step_flops.flops_per_step([matmul, unused], 2, A) == 5 * MATMUL_FLOPS
