"""The FID Inception-v3 network of 2015-12-05 as a Keras model.

This is the network of Google's `inception-2015-12-05.tgz` (`classify_image_graph_def.pb`) up to its
2048-d `pool_3` features, the network FID and KID are defined with. It is NOT
`keras.applications.InceptionV3`: its batch norms have no scale (eps 1e-3), its 3x3/1 average pools
exclude the padding from the count, the pool branch of the last block (`mixed_10`) is a max pool, and
its input is resized with TF1 bilinear semantics (`half_pixel_centers=False`), which `tf.image.resize`
no longer implements.

`LAYERS` is the geometry of its 94 conv layers keyed by their scope in the original graph; the weight
loaders (`inception_weights.py`) check every tensor against it.
"""

import dataclasses
from typing import Dict, Tuple

import keras
import numpy as np
import tensorflow as tf

from mmd_gan_tf import images as images_lib

FEATURE_DIM = 2048
INPUT_SIZE = 299
BN_EPSILON = 1e-3


@dataclasses.dataclass(frozen=True)
class ConvSpec:
  """One conv layer: kernel [kh, kw, cin, cout] (HWIO), stride, explicit symmetric padding (h, w)."""
  kernel_hwio: Tuple[int, int, int, int]
  stride: int
  padding_hw: Tuple[int, int]


def _conv(kh, kw, cin, cout, stride=1):
  """Stride-1 convs are 'SAME' in the graph (symmetric for odd kernels); strided ones are 'VALID'."""
  padding = ((kh - 1) // 2, (kw - 1) // 2) if stride == 1 else (0, 0)
  return ConvSpec((kh, kw, cin, cout), stride, padding)


def _block_35(cin, pool_channels):
  return {"conv": _conv(1, 1, cin, 64), "tower/conv": _conv(1, 1, cin, 48),
          "tower/conv_1": _conv(5, 5, 48, 64), "tower_1/conv": _conv(1, 1, cin, 64),
          "tower_1/conv_1": _conv(3, 3, 64, 96), "tower_1/conv_2": _conv(3, 3, 96, 96),
          "tower_2/conv": _conv(1, 1, cin, pool_channels)}


def _block_17(c):
  return {"conv": _conv(1, 1, 768, 192), "tower/conv": _conv(1, 1, 768, c),
          "tower/conv_1": _conv(1, 7, c, c), "tower/conv_2": _conv(7, 1, c, 192),
          "tower_1/conv": _conv(1, 1, 768, c), "tower_1/conv_1": _conv(7, 1, c, c),
          "tower_1/conv_2": _conv(1, 7, c, c), "tower_1/conv_3": _conv(7, 1, c, c),
          "tower_1/conv_4": _conv(1, 7, c, 192), "tower_2/conv": _conv(1, 1, 768, 192)}


def _block_8(cin):
  return {"conv": _conv(1, 1, cin, 320), "tower/conv": _conv(1, 1, cin, 384),
          "tower/mixed/conv": _conv(1, 3, 384, 384), "tower/mixed/conv_1": _conv(3, 1, 384, 384),
          "tower_1/conv": _conv(1, 1, cin, 448), "tower_1/conv_1": _conv(3, 3, 448, 384),
          "tower_1/mixed/conv": _conv(1, 3, 384, 384), "tower_1/mixed/conv_1": _conv(3, 1, 384, 384),
          "tower_2/conv": _conv(1, 1, cin, 192)}


def _layer_specs() -> Dict[str, ConvSpec]:
  valid = (0, 0)  # conv_1 and conv_4 are stride-1 'VALID' convs in the graph
  specs = {"conv": _conv(3, 3, 3, 32, 2), "conv_1": ConvSpec((3, 3, 32, 32), 1, valid),
           "conv_2": _conv(3, 3, 32, 64), "conv_3": _conv(1, 1, 64, 80),
           "conv_4": ConvSpec((3, 3, 80, 192), 1, valid)}
  blocks = {"mixed": _block_35(192, 32), "mixed_1": _block_35(256, 64), "mixed_2": _block_35(288, 64),
            "mixed_3": {"conv": _conv(3, 3, 288, 384, 2), "tower/conv": _conv(1, 1, 288, 64),
                        "tower/conv_1": _conv(3, 3, 64, 96), "tower/conv_2": _conv(3, 3, 96, 96, 2)},
            "mixed_4": _block_17(128), "mixed_5": _block_17(160), "mixed_6": _block_17(160),
            "mixed_7": _block_17(192),
            "mixed_8": {"tower/conv": _conv(1, 1, 768, 192), "tower/conv_1": _conv(3, 3, 192, 320, 2),
                        "tower_1/conv": _conv(1, 1, 768, 192), "tower_1/conv_1": _conv(1, 7, 192, 192),
                        "tower_1/conv_2": _conv(7, 1, 192, 192),
                        "tower_1/conv_3": _conv(3, 3, 192, 192, 2)},
            "mixed_9": _block_8(1280), "mixed_10": _block_8(2048)}
  for block, convs in blocks.items():
    specs.update({f"{block}/{scope}": spec for scope, spec in convs.items()})
  return specs


LAYERS: Dict[str, ConvSpec] = _layer_specs()


def resize_tf1_bilinear(images: tf.Tensor, size: int = INPUT_SIZE) -> tf.Tensor:
  """TF1 bilinear resize (align_corners=False, half_pixel_centers=False).

  Args:
    images: float32 [N, H, W, C].
    size: output height and width.

  Returns:
    float32 [N, size, size, C]. `tf.image.resize` uses half-pixel centres and gives other pixels.
  """
  return tf.raw_ops.ResizeBilinear(images=images, size=[size, size], align_corners=False,
                                   half_pixel_centers=False)


class _ConvBN(keras.layers.Layer):
  """conv (no bias, explicit symmetric zero padding) -> batch norm with beta only -> ReLU."""

  def __init__(self, scope: str, spec: ConvSpec, **kwargs):
    super().__init__(name=scope.replace("/", "__"), dtype="float32", trainable=False, **kwargs)
    self.scope, self.spec = scope, spec
    cout = spec.kernel_hwio[-1]
    self.kernel = self.add_weight(shape=spec.kernel_hwio, initializer="zeros", trainable=False,
                                  name="kernel")
    self.beta = self.add_weight(shape=(cout,), initializer="zeros", trainable=False, name="beta")
    self.moving_mean = self.add_weight(shape=(cout,), initializer="zeros", trainable=False,
                                       name="moving_mean")
    self.moving_variance = self.add_weight(shape=(cout,), initializer="ones", trainable=False,
                                           name="moving_variance")

  def call(self, x):
    # The batch norm is folded into the conv: (conv(x, W) - mean) * s + beta = conv(x, W * s) + bias,
    # s = 1 / sqrt(var + eps). On the CPU this halves the time spent outside the convolutions.
    scale = tf.math.rsqrt(self.moving_variance + BN_EPSILON)
    bias = self.beta - self.moving_mean * scale
    pad_h, pad_w = self.spec.padding_hw
    stride = self.spec.stride
    x = tf.nn.conv2d(x, self.kernel * scale, strides=[1, stride, stride, 1],
                     padding=[[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])
    return tf.nn.relu(tf.nn.bias_add(x, bias))


def _avg_pool_3x3(x):
  # TF's SAME average pool divides by the number of in-image pixels: padding is excluded.
  return tf.nn.avg_pool2d(x, 3, 1, "SAME")


def _max_pool_3x3(x, stride):
  return tf.nn.max_pool2d(x, 3, stride, "SAME" if stride == 1 else "VALID")


class FidInceptionV3(keras.Model):
  """FID Inception-v3: images [N, H, W, C] float pixels in [0, 255] -> pool_3 features [N, 2048].

  Build it with `build_fid_inception(weights)`. Always inference mode, float32 whatever the global
  mixed-precision policy. `logits(features)` exists when the weights have the softmax layer.
  """

  def __init__(self, has_logits: bool = False, num_classes: int = 1008, **kwargs):
    super().__init__(name="fid_inception_v3", dtype="float32", trainable=False, **kwargs)
    self.conv_layers = [_ConvBN(scope, spec) for scope, spec in LAYERS.items()]
    self._by_scope = {layer.scope: layer for layer in self.conv_layers}
    self.has_logits = has_logits
    if has_logits:
      self.softmax_weights = self.add_weight(shape=(FEATURE_DIM, num_classes), initializer="zeros",
                                             trainable=False, name="softmax_weights")
      self.softmax_biases = self.add_weight(shape=(num_classes,), initializer="zeros",
                                            trainable=False, name="softmax_biases")

  def _c(self, scope, x):
    return self._by_scope[scope](x)

  def _chain(self, x, *scopes):
    for scope in scopes:
      x = self._c(scope, x)
    return x

  def _block_35(self, b, x):
    return tf.concat([self._c(f"{b}/conv", x),
                      self._chain(x, f"{b}/tower/conv", f"{b}/tower/conv_1"),
                      self._chain(x, f"{b}/tower_1/conv", f"{b}/tower_1/conv_1", f"{b}/tower_1/conv_2"),
                      self._c(f"{b}/tower_2/conv", _avg_pool_3x3(x))], axis=-1)

  def _block_17(self, b, x):
    return tf.concat([self._c(f"{b}/conv", x),
                      self._chain(x, *[f"{b}/tower/conv{s}" for s in ("", "_1", "_2")]),
                      self._chain(x, *[f"{b}/tower_1/conv{s}" for s in ("", "_1", "_2", "_3", "_4")]),
                      self._c(f"{b}/tower_2/conv", _avg_pool_3x3(x))], axis=-1)

  def _block_8(self, b, x, max_pool_branch):
    tower = self._c(f"{b}/tower/conv", x)
    tower_1 = self._chain(x, f"{b}/tower_1/conv", f"{b}/tower_1/conv_1")
    pooled = _max_pool_3x3(x, 1) if max_pool_branch else _avg_pool_3x3(x)
    return tf.concat([self._c(f"{b}/conv", x),
                      self._c(f"{b}/tower/mixed/conv", tower), self._c(f"{b}/tower/mixed/conv_1", tower),
                      self._c(f"{b}/tower_1/mixed/conv", tower_1),
                      self._c(f"{b}/tower_1/mixed/conv_1", tower_1),
                      self._c(f"{b}/tower_2/conv", pooled)], axis=-1)

  def call(self, images, training=False):
    """Args: images float [N, H, W, 3] in [0, 255], any H, W. Returns: float32 [N, 2048]."""
    x = resize_tf1_bilinear(tf.cast(images, tf.float32))
    x = (x - 128.0) * (1.0 / 128.0)
    x = _max_pool_3x3(self._chain(x, "conv", "conv_1", "conv_2"), 2)
    x = _max_pool_3x3(self._chain(x, "conv_3", "conv_4"), 2)
    for b in ("mixed", "mixed_1", "mixed_2"):
      x = self._block_35(b, x)
    x = tf.concat([self._c("mixed_3/conv", x),
                   self._chain(x, "mixed_3/tower/conv", "mixed_3/tower/conv_1", "mixed_3/tower/conv_2"),
                   _max_pool_3x3(x, 2)], axis=-1)
    for b in ("mixed_4", "mixed_5", "mixed_6", "mixed_7"):
      x = self._block_17(b, x)
    x = tf.concat([self._chain(x, "mixed_8/tower/conv", "mixed_8/tower/conv_1"),
                   self._chain(x, *[f"mixed_8/tower_1/conv{s}" for s in ("", "_1", "_2", "_3")]),
                   _max_pool_3x3(x, 2)], axis=-1)
    x = self._block_8("mixed_9", x, max_pool_branch=False)
    x = self._block_8("mixed_10", x, max_pool_branch=True)  # the 2015 graph's quirk
    return tf.reduce_mean(x, axis=[1, 2])

  def logits(self, features):
    """Args: features float32 [N, 2048]. Returns: the classifier logits [N, num_classes]."""
    if not self.has_logits:
      raise ValueError("these Inception weights have no softmax layer (the FID .npz has none); "
                       "load Google's inception-2015-12-05.tgz / classify_image_graph_def.pb for IS")
    return tf.matmul(features, self.softmax_weights) + self.softmax_biases


def build_fid_inception(weights) -> FidInceptionV3:
  """Builds the network and assigns `weights` (an `InceptionWeights`, already verified).

  Create it inside `strategy.scope()` to get mirrored variables under a distribution strategy.
  """
  logits = weights.logits
  model = FidInceptionV3(has_logits=logits is not None,
                         num_classes=1008 if logits is None else logits[0].shape[1])
  for layer in model.conv_layers:
    tensors = weights.convs[layer.scope]
    for name in ("kernel", "beta", "moving_mean", "moving_variance"):
      getattr(layer, name).assign(np.asarray(tensors[name], np.float32))
  if logits is not None:
    model.softmax_weights.assign(np.asarray(logits[0], np.float32))
    model.softmax_biases.assign(np.asarray(logits[1], np.float32))
  return model


def to_inception_pixels(images: tf.Tensor, image_range: str, quantize: bool = True) -> tf.Tensor:
  """Maps generator/data images to the network's input: float pixels in [0, 255], 3 channels.

  Args:
    images: [N, H, W, C], C in {1, 3}; uint8 (already pixels) or float in the range `image_range`.
    image_range: "tanh" ([-1, 1]), "sigmoid" ([0, 1]) or "pixels" ([0, 255]); ignored for uint8.
    quantize: round to whole pixel values, as saving the samples as 8-bit images would.

  Returns:
    float32 [N, H, W, 3].
  """
  if images.dtype == tf.uint8:
    pixels = tf.cast(images, tf.float32)
  else:
    pixels = images_lib.to_pixels(images, image_range, quantize=quantize)
  channels = pixels.shape[-1]
  if channels == 1:
    pixels = tf.tile(pixels, [1, 1, 1, 3])
  elif channels != 3:
    raise ValueError(f"images must have 1 or 3 channels, got shape {pixels.shape}")
  return pixels


def check_weights_shape(scope: str, name: str, array: np.ndarray) -> None:
  """Raises ValueError when `array` is not the shape `LAYERS[scope]` needs for tensor `name`."""
  spec = LAYERS[scope]
  expected = spec.kernel_hwio if name == "kernel" else (spec.kernel_hwio[-1],)
  if tuple(array.shape) != tuple(expected):
    raise ValueError(f"Inception weights: {scope}/{name} has shape {tuple(array.shape)}, "
                     f"expected {tuple(expected)}")

