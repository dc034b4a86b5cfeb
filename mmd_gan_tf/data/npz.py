"""Image arrays in `.npz` files: `--dataset=npz --data_dir=FILE.npz[:KEY]`.

The array must be uint8 `[N, H, W]` (grayscale) or `[N, H, W, C]` with C in {1, 3}. Without `:KEY` the
array is `x_<split>` when the file has it (`x_train` for the default split, as in Keras' `mnist.npz`),
else the file's only image array. The array is loaded once per process and kept in memory; the pipeline
shuffles indices and gathers images, so the preprocessing presets see the same uint8 `[H, W, C]` images
as the other sources do.
"""

import functools
import os
import zipfile
from typing import Tuple

import numpy as np

from mmd_gan_tf.config import ConfigError
from mmd_gan_tf.data.errors import TooFewImages

NPZ_SUFFIX = ".npz"


def parse_spec(spec: str) -> Tuple[str, str]:
  """'file.npz:key' -> ('file.npz', 'key'); 'file.npz' -> ('file.npz', '')."""
  path, sep, key = spec.rpartition(NPZ_SUFFIX + ":")
  if sep:
    return path + NPZ_SUFFIX, key
  return spec, ""


def _image_keys(data) -> list:
  return [k for k in data.files if data[k].ndim in (3, 4)]


def open_npz(path: str, context: str = ""):
  """np.load of an .npz archive (no pickles); ValueError "<context>PATH is not a readable .npz file (why)"."""
  try:
    data = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    why = "empty file" if isinstance(e, EOFError) else (
        "not a zip archive of arrays" if "pickle" in str(e) else str(e))
    raise ValueError(f"{context}{path!r} is not a readable .npz file ({why})") from None
  if not isinstance(data, np.lib.npyio.NpzFile):  # a single .npy array saved under an .npz name
    raise ValueError(f"{context}{path!r} is not a readable .npz file (a single .npy array, not an archive)")
  return data


@functools.lru_cache(maxsize=4)
def load_images(spec: str, split: str = "train") -> np.ndarray:
  """The uint8 [N, H, W, C] array named by `spec`; ValueError naming the file, key, dtype or shape."""
  path, key = parse_spec(spec)
  if not path.endswith(NPZ_SUFFIX):
    raise ValueError(f"data_dir {spec!r} must name a .npz file (FILE.npz or FILE.npz:KEY)")
  if not os.path.isfile(path):
    raise ValueError(f"data_dir {spec!r}: {path!r} does not exist or is not a file")
  data = open_npz(path, f"data_dir {spec!r}: ")
  with data:
    try:
      return _checked(spec, *_pick(spec, path, data, key, split))
    except ValueError as e:
      if "allow_pickle" not in str(e):
        raise
      raise ValueError(f"data_dir {spec!r}: {path!r} holds object arrays, which cannot be read as images "
                       "(expected uint8 arrays)") from None


def _pick(spec: str, path: str, data, key: str, split: str):
  """(key, array) of the image array of an opened .npz."""
  if not key:
    images = _image_keys(data)
    key = f"x_{split}" if f"x_{split}" in data.files else (images[0] if len(images) == 1 else "")
    if not key and not images:
      shapes = ", ".join(f"{k} {list(data[k].shape)}" for k in sorted(data.files))
      raise ValueError(f"data_dir {spec!r}: no array of images ([N, H, W] or [N, H, W, C]) in {path!r}; arrays: "
                       f"{shapes or 'none'}")
    if not key:
      raise ConfigError("data.split", split, f"{path} has no array x_{split}; its image arrays: {images} (give a "
                        f"split they name, or name the array as --data_dir={path}:KEY)")
  if key not in data.files:
    raise ValueError(f"data_dir {spec!r}: no array {key!r} in {path!r}; arrays: {sorted(data.files)}")
  return key, data[key]


def _checked(spec: str, key: str, array: np.ndarray) -> np.ndarray:
  if array.dtype != np.uint8:
    raise ValueError(f"data_dir {spec!r}: array {key!r} has dtype {array.dtype}; expected uint8 images "
                     "(0-255)")
  if array.ndim == 3 and array.shape[2] in (3, 4) and array.shape[1] > array.shape[2]:
    raise ValueError(f"data_dir {spec!r}: array {key!r} has shape {array.shape}, which reads as "
                     f"{array.shape[0]} grayscale images {array.shape[2]} px wide; one colour image is "
                     f"[1, {array.shape[0]}, {array.shape[1]}, {array.shape[2]}]")
  if array.ndim == 3:
    array = array[..., None]
  if array.ndim != 4 or array.shape[-1] not in (1, 3):
    raise ValueError(f"data_dir {spec!r}: array {key!r} has shape {array.shape}; expected [N, H, W] or "
                     "[N, H, W, C] with C = 1 or 3")
  if len(array) == 0 or min(array.shape[1:3]) == 0:
    raise ValueError(f"data_dir {spec!r}: array {key!r} has no images (shape {array.shape})")
  return array


def check_count(spec: str, available: int, batch_size: int, num_pipelines: int) -> None:
  """TooFewImages (a ValueError) when one input pipeline's shard has fewer images than one batch."""
  per_pipeline = available // num_pipelines
  if per_pipeline < batch_size:
    raise TooFewImages(f"data_dir {spec!r} has {available} images ({per_pipeline} per input pipeline), fewer "
                     f"than one batch of {batch_size}")
