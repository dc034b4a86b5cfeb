"""Loading the Inception weights from a GraphDef with the original 2015 node names."""

import io
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from helpers import asset_path
from mmd_gan_tf.metrics import inception
from mmd_gan_tf.metrics import inception_graphdef
from mmd_gan_tf.metrics import inception_weights


def _const(graph_def, name, value):
  node = graph_def.node.add()
  node.name, node.op = name, "Const"
  node.attr["dtype"].type = tf.float32.as_datatype_enum
  node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.asarray(value, np.float32)))


def _conv_layer(graph_def, scope, tensors, stride, padding, input_name):
  """The nodes of one conv layer as the 2015 graph names them."""
  _const(graph_def, f"{scope}/conv2d_params", tensors["kernel"])
  for name in ("beta", "moving_mean", "moving_variance"):
    _const(graph_def, f"{scope}/batchnorm/{name}", tensors[name])
  _const(graph_def, f"{scope}/batchnorm/gamma", np.ones_like(tensors["beta"]))
  conv = graph_def.node.add()
  conv.name, conv.op = f"{scope}/Conv2D", "Conv2D"
  conv.input.extend([input_name, f"{scope}/conv2d_params"])
  conv.attr["strides"].list.i.extend([1, stride, stride, 1])
  conv.attr["padding"].s = padding.encode()
  bn = graph_def.node.add()
  bn.name, bn.op = f"{scope}/batchnorm", "BatchNormWithGlobalNormalization"
  bn.input.extend([f"{scope}/Conv2D"] + [f"{scope}/batchnorm/{n}" for n in
                                         ("moving_mean", "moving_variance", "beta", "gamma")])
  bn.attr["variance_epsilon"].f = 1e-3
  bn.attr["scale_after_normalization"].b = False
  relu = graph_def.node.add()
  relu.name, relu.op = f"{scope}/CONV", "Relu"
  relu.input.append(f"{scope}/batchnorm")
  return relu.name


def _random_tensors(scope, rng):
  spec = inception.LAYERS[scope]
  cout = spec.kernel_hwio[-1]
  return {"kernel": rng.normal(size=spec.kernel_hwio), "beta": rng.normal(size=cout),
          "moving_mean": rng.normal(size=cout), "moving_variance": rng.uniform(0.5, 2, size=cout)}


def _padding_attr(spec):
  return "VALID" if spec.padding_hw == (0, 0) else "SAME"


def test_tiny_graphdef_with_original_names():
  rng = np.random.default_rng(0)
  graph_def = tf.compat.v1.GraphDef()
  previous = "Mul"
  tensors = {scope: _random_tensors(scope, rng) for scope in ("conv", "conv_1", "conv_2")}
  for scope, values in tensors.items():
    spec = inception.LAYERS[scope]
    previous = _conv_layer(graph_def, scope, values, spec.stride, _padding_attr(spec), previous)
  serialized = graph_def.SerializeToString()
  arrays = inception_graphdef.arrays_from_serialized_graphdef(serialized)
  assert sorted(arrays) == sorted(f"{s}/{n}" for s in tensors for n in inception_weights.TENSOR_NAMES)
  for scope, values in tensors.items():
    for name, value in values.items():
      np.testing.assert_array_equal(arrays[f"{scope}/{name}"], value.astype(np.float32))
  geometry = inception_graphdef.conv_geometry(inception_graphdef.parse_graphdef(serialized))
  assert geometry == {"conv": (2, (0, 0), "VALID"), "conv_1": (1, (0, 0), "VALID"),
                      "conv_2": (1, (1, 1), "SAME")}
  # A tiny graph is not the network: the verification names what is missing.
  with pytest.raises(ValueError, match="conv layers missing"):
    inception_weights.weights_from_arrays(arrays, "x", "tiny")


def test_graphdef_geometry_mismatch_is_an_error():
  rng = np.random.default_rng(1)
  graph_def = tf.compat.v1.GraphDef()
  _conv_layer(graph_def, "conv_2", _random_tensors("conv_2", rng), 1, "VALID", "Mul")  # needs SAME
  with pytest.raises(ValueError, match="conv_2/Conv2D"):
    inception_graphdef.arrays_from_graphdef(graph_def)
  graph_def = tf.compat.v1.GraphDef()
  _conv_layer(graph_def, "conv", _random_tensors("conv", rng), 2, "SAME", "Mul")  # asymmetric pad
  with pytest.raises(ValueError, match="unsupported padding"):
    inception_graphdef.arrays_from_graphdef(graph_def)


@pytest.fixture(scope="module")
def full_graph(tmp_path_factory):
  """The whole network as a GraphDef with the original names, from the shared .npz, plus a classifier."""
  weights = inception_weights.load_inception_weights(
      str(asset_path("inception/fid_inception_v3_2015_12_05.npz")))
  rng = np.random.default_rng(2)
  logits = (rng.normal(size=(2048, 1008)).astype(np.float32), rng.normal(size=1008).astype(np.float32))
  graph_def = tf.compat.v1.GraphDef()
  for scope, spec in inception.LAYERS.items():
    _conv_layer(graph_def, scope, weights.convs[scope], spec.stride, _padding_attr(spec), "Mul")
  _const(graph_def, "softmax/weights", logits[0])
  _const(graph_def, "softmax/biases", logits[1])
  directory = tmp_path_factory.mktemp("graph")
  pb = directory / inception_graphdef.PB_NAME
  pb.write_bytes(graph_def.SerializeToString())
  tgz = directory / "inception-2015-12-05.tgz"
  with tarfile.open(tgz, "w:gz", compresslevel=1) as archive:
    archive.add(pb, arcname=inception_graphdef.PB_NAME)
    readme = b"not the graph"
    info = tarfile.TarInfo("LICENSE")
    info.size = len(readme)
    archive.addfile(info, io.BytesIO(readme))
  return weights, logits, pb, tgz


@pytest.mark.parametrize("kind", ["pb", "tgz"])
def test_full_graphdef_loads_the_same_weights(full_graph, kind):
  weights, logits, pb, tgz = full_graph
  loaded = inception_weights.load_inception_weights(str(pb if kind == "pb" else tgz))
  assert loaded.sha256 == inception_weights.file_sha256(pb if kind == "pb" else tgz)
  for scope in inception.LAYERS:
    for name in inception_weights.TENSOR_NAMES:
      np.testing.assert_array_equal(loaded.convs[scope][name], weights.convs[scope][name])
  np.testing.assert_array_equal(loaded.logits[0], logits[0])
  np.testing.assert_array_equal(loaded.logits[1], logits[1])


def test_cache_conversion_from_a_local_tgz_keeps_logits(full_graph, tmp_path):
  _, logits, _, tgz = full_graph
  (tmp_path / "inception-2015-12-05.tgz").symlink_to(tgz)  # as if downloaded before
  assert not (tmp_path / inception_weights.CONVERTED_NAME).exists()
  inception_weights.convert_download(tmp_path)  # finds the archive, does not download
  loaded = inception_weights.load_inception_weights(None, cache_dir=tmp_path, download=False)
  np.testing.assert_array_equal(loaded.logits[0], logits[0])
  model = inception.build_fid_inception(loaded)
  features = np.random.default_rng(3).uniform(0, 1, size=(3, 2048)).astype(np.float32)
  expected = features.astype(np.float64) @ logits[0] + logits[1]
  np.testing.assert_allclose(model.logits(tf.constant(features)).numpy(), expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("name", ["weights.pb", "weights.tgz"])
def test_a_weights_file_of_random_bytes_is_one_line_naming_it(tmp_path, name):
  path = tmp_path / name
  path.write_bytes(np.random.default_rng(0).bytes(4096))
  with pytest.raises(ValueError, match=f"{name} is not a readable Inception graph"):
    inception_weights.load_inception_weights(str(path))


def test_weights_with_a_nan_are_refused():
  """One NaN tensor in the weights made every KID 0.0, written to eval.jsonl as a result."""
  with np.load(asset_path("inception/fid_inception_v3_2015_12_05.npz")) as data:
    arrays = {key: data[key] for key in data.files}
  inception_weights.weights_from_arrays(arrays, "x", "asset")  # as shipped: accepted
  arrays["conv/beta"] = arrays["conv/beta"].copy()
  arrays["conv/beta"][0] = np.nan
  with pytest.raises(ValueError, match="conv/beta holds NaN or infinite values: the file is damaged"):
    inception_weights.weights_from_arrays(arrays, "x", "asset")
