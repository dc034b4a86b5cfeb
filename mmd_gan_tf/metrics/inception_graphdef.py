"""Reads the FID Inception weights out of Google's frozen TF1 GraphDef (classify_image_graph_def.pb).

The graph keeps every weight as a Const node: `<scope>/conv2d_params` (HWIO) and
`<scope>/batchnorm/{beta,gamma,moving_mean,moving_variance}` (gamma is unused: its batch norm does not
scale), and the classifier as `softmax/weights`, `softmax/biases`. The Conv2D node that consumes
`<scope>/conv2d_params` carries the stride and the padding ('SAME' / 'VALID'), which are checked against
`inception.LAYERS`. The graph is only parsed (`tf.compat.v1.GraphDef`), never imported or run: it uses
ops (BatchNormWithGlobalNormalization) that today's TensorFlow no longer executes.
"""

import pathlib
import tarfile
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from mmd_gan_tf.metrics import inception

PB_NAME = "classify_image_graph_def.pb"
_BN_NAMES = ("beta", "moving_mean", "moving_variance")


def read_pb_from_tgz(path) -> bytes:
  """The bytes of classify_image_graph_def.pb inside inception-2015-12-05.tgz."""
  with tarfile.open(path) as archive:
    members = [m for m in archive.getmembers() if pathlib.PurePosixPath(m.name).name == PB_NAME]
    if not members:
      raise ValueError(f"{path}: no {PB_NAME} in the archive")
    return archive.extractfile(members[0]).read()


def parse_graphdef(serialized: bytes) -> tf.compat.v1.GraphDef:
  graph_def = tf.compat.v1.GraphDef()
  graph_def.ParseFromString(serialized)
  return graph_def


def constants(graph_def) -> Dict[str, np.ndarray]:
  """Every Const node's value by node name."""
  return {node.name: tf.make_ndarray(node.attr["value"].tensor)
          for node in graph_def.node if node.op == "Const"}


def _strip_input(name: str) -> str:
  return name.split(":")[0].lstrip("^")


def conv_geometry(graph_def) -> Dict[str, Tuple[int, Tuple[int, int], str]]:
  """scope -> (stride, symmetric padding (h, w), padding attr) from the Conv2D nodes.

  'SAME' becomes (k - 1) // 2 per side for stride 1; a strided 'SAME' conv would pad asymmetrically,
  which the network does not have: it raises ValueError.
  """
  params = {node.name: tf.make_ndarray(node.attr["value"].tensor).shape
            for node in graph_def.node if node.op == "Const" and node.name.endswith("/conv2d_params")}
  geometry = {}
  for node in graph_def.node:
    if node.op != "Conv2D":
      continue
    kernel_inputs = [_strip_input(i) for i in node.input if _strip_input(i) in params]
    if not kernel_inputs:
      continue
    scope = kernel_inputs[0][:-len("/conv2d_params")]
    strides = list(node.attr["strides"].list.i)
    padding = node.attr["padding"].s.decode()
    if strides[1] != strides[2] or strides[0] != 1 or strides[3] != 1:
      raise ValueError(f"{node.name}: unsupported strides {strides}")
    kh, kw = params[kernel_inputs[0]][:2]
    if padding == "VALID":
      pad = (0, 0)
    elif padding == "SAME" and strides[1] == 1:
      pad = ((kh - 1) // 2, (kw - 1) // 2)
    else:
      raise ValueError(f"{node.name}: unsupported padding {padding} with strides {strides}")
    geometry[scope] = (strides[1], pad, padding)
  return geometry


def arrays_from_graphdef(graph_def, check_geometry: bool = True) -> Dict[str, np.ndarray]:
  """The weights in the project's flat .npz layout (`inception_weights` docstring).

  Args:
    graph_def: a parsed GraphDef with the original node names.
    check_geometry: raise ValueError when a conv's stride/padding differs from `inception.LAYERS`
      (scopes the network does not have are ignored; missing ones are left to `verify_weights`).
  """
  values = constants(graph_def)
  arrays = {}
  for name, value in values.items():
    if name.endswith("/conv2d_params"):
      scope = name[:-len("/conv2d_params")]
      arrays[f"{scope}/kernel"] = value
      for bn_name in _BN_NAMES:
        bn_value: Optional[np.ndarray] = values.get(f"{scope}/batchnorm/{bn_name}")
        if bn_value is not None:
          arrays[f"{scope}/{bn_name}"] = bn_value
  if "softmax/weights" in values and "softmax/biases" in values:
    weights = values["softmax/weights"]
    if weights.shape[0] != inception.FEATURE_DIM and weights.shape[-1] == inception.FEATURE_DIM:
      weights = weights.T
    arrays["softmax/weights"], arrays["softmax/biases"] = weights, values["softmax/biases"]
  if check_geometry:
    for scope, (stride, pad, padding) in conv_geometry(graph_def).items():
      spec = inception.LAYERS.get(scope)
      if spec is not None and (stride, pad) != (spec.stride, tuple(spec.padding_hw)):
        raise ValueError(f"{scope}/Conv2D: stride {stride}, padding {padding} {pad}; the network "
                         f"needs stride {spec.stride}, padding {spec.padding_hw}")
  return arrays


def arrays_from_serialized_graphdef(serialized: bytes, check_geometry: bool = True):
  return arrays_from_graphdef(parse_graphdef(serialized), check_geometry)
