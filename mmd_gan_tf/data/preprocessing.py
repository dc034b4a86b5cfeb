"""Named preprocessing presets per dataset and paper.

A preset maps one decoded image, float32 [H, W, C] in [0, 1], to float32 [S, S, C] in [0, 1]; random presets
draw from a per-example stateless seed (int64 [2]), so the stream depends only on the pipeline seed.
Named crops per source family (`MNIST`, `CIFAR10`, ..., each a dict name -> `Preset(fn, random, split)`, which
`data.DATASETS` entries refer to); `split` (when set) replaces the default split "train"
(Binkowski's CIFAR-10 uses train+test, STL-10 the 100k unlabelled images).
"""

import dataclasses
from typing import Callable, Optional

import tensorflow as tf

RESIZE_METHODS = ("bilinear", "area", "lanczos3", "bicubic")


@dataclasses.dataclass(frozen=True)
class Preset:
  fn: Callable  # (image [H, W, C], size, seed [2]) -> [size, size, C]
  random: bool = False  # uses random crops/flips (cannot be baked into TFRecords)
  split: Optional[str] = None  # the split that "train" means for this preset


def resize(image: tf.Tensor, height: int, width: int, method: str = "bilinear") -> tf.Tensor:
  """Antialiased resize of [H, W, C] to [height, width, C], clipped to [0, 1] (Lanczos overshoots)."""
  out = tf.image.resize(image, [height, width], method=method, antialias=True)
  return tf.clip_by_value(out, 0.0, 1.0)


def resize_square(image: tf.Tensor, size: int, method: str = "bilinear") -> tf.Tensor:
  """Resize to [size, size] unless the image already has that size (static shapes only)."""
  if image.shape[0] == size and image.shape[1] == size:
    return image
  return resize(image, size, size, method)


def centre_crop(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
  """The central [height, width] window of [H, W, C] (offsets rounded down, as PIL and torchvision)."""
  shape = tf.shape(image)
  top, left = (shape[0] - height) // 2, (shape[1] - width) // 2
  return image[top:top + height, left:left + width]


def short_side_resize(image: tf.Tensor, size: int, method: str = "bilinear") -> tf.Tensor:
  """Resize so that the shorter side is `size`, keeping the aspect ratio (longer side rounded)."""
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  scale = size / tf.reduce_min(shape)
  new = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), size)
  out = tf.image.resize(image, new, method=method, antialias=True)
  return tf.clip_by_value(out, 0.0, 1.0)


def _short_side_centre(image, size, seed):
  del seed
  cropped = centre_crop(short_side_resize(image, size), size, size)
  return tf.ensure_shape(cropped, [size, size, None])


def _short_side_random(image, size, seed):
  resized = short_side_resize(image, size)
  return tf.image.stateless_random_crop(resized, [size, size, tf.shape(image)[2]], seed)


def _squash(image, size, seed):
  del seed
  return resize(image, size, size)


def _mnist_pad(image, size, seed):
  """28 -> S by centred zero padding (black border, MNIST's background); smaller S: area resize."""
  del seed
  if size < 28:
    return resize(image, size, size, "area")
  before = (size - 28) // 2
  return tf.pad(image, [[before, size - 28 - before], [before, size - 28 - before], [0, 0]])


def _mnist_resize(image, size, seed):
  """28 -> S by bilinear resize (what torchvision's Scale did in Li et al.'s code)."""
  del seed
  return resize_square(image, size)


def _native(method):
  def fn(image, size, seed):
    del seed
    return resize_square(image, size, method)
  return fn


def _celeb_a_wang(image, size, seed):
  """Wang et al.: resize 178x218 to 72x88 (w x h), centre crop 64, then to S."""
  del seed
  return resize_square(centre_crop(resize(image, 88, 72), 64, 64), size)


def _celeb_a_binkowski(image, size, seed):
  """Binkowski et al.: centre crop 178x178, random flip, random crop 160, resize to S."""
  flip_seed, crop_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  image = tf.image.stateless_random_flip_left_right(centre_crop(image, 178, 178), flip_seed)
  image = tf.image.stateless_random_crop(image, [160, 160, tf.shape(image)[2]], crop_seed)
  return resize(image, size, size)


def _celeb_a_li(image, size, seed):
  """Li et al.: resize to 64x78 (w x h), keep rows 7..70 (64 rows), then to S."""
  del seed
  return resize_square(resize(image, 78, 64)[7:71], size)


# The named crops of each source family: `--preprocessing=NAME` picks one (each `DataSource` of
# `data.DATASETS` names its set; "default" is the one used unless the flag is given).
LSUN_LIKE = {
    "default": Preset(_short_side_centre),
    "center": Preset(_short_side_centre),
    "wang": Preset(_short_side_centre),
    "random": Preset(_short_side_random, random=True),
    "binkowski": Preset(_short_side_random, random=True),
}
MNIST = {"default": Preset(_mnist_pad), "pad": Preset(_mnist_pad), "resize": Preset(_mnist_resize),
         "li": Preset(_mnist_resize)}
CIFAR10 = {"default": Preset(_native("area")), "wang": Preset(_native("area")),
           "binkowski": Preset(_native("area"), split="train+test")}
STL10 = {"default": Preset(_native("lanczos3"), split="unlabelled"),
         "lanczos": Preset(_native("lanczos3"), split="unlabelled"),
         "area": Preset(_native("area"), split="unlabelled")}
CELEB_A = {"default": Preset(_celeb_a_wang), "wang": Preset(_celeb_a_wang),
           "binkowski": Preset(_celeb_a_binkowski, random=True), "li": Preset(_celeb_a_li)}
FOLDER = dict(LSUN_LIKE, resize=Preset(_squash))
NATIVE = {"default": Preset(_native("area"))}
# Arrays of any size: square ones of size S pass unchanged ("default" = "area" resize otherwise).
ARRAYS = dict(LSUN_LIKE, default=Preset(_native("area")), area=Preset(_native("area")), resize=Preset(_squash),
              pad=Preset(_mnist_pad))
SQUASH = {"default": Preset(_squash)}


def named(crops: dict, dataset: str, name: str) -> Preset:
  """crops[name] of a source's named crops, or ValueError naming the bad preset and the valid ones."""
  if name not in crops:
    raise ValueError(f"preprocessing {name!r} is not available for dataset {dataset!r}; "
                     f"expected one of {sorted(crops)}")
  return crops[name]


def quantise(image: tf.Tensor) -> tf.Tensor:
  """Rounds [0, 1] floats to 8-bit levels (uint8), as stored images are: makes TFRecord copies exact."""
  return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8)
