"""Weights of the FID Inception-v3: the project's .npz layout, Google's .tgz / .pb, download and cache.

The .npz layout (`fid_inception_v3_2015_12_05.npz`): for each conv
scope of `inception.LAYERS`, `<scope>/kernel` (HWIO), `<scope>/beta`, `<scope>/moving_mean`,
`<scope>/moving_variance`; optionally `softmax/weights` [2048, 1008] and `softmax/biases` [1008] (the
.npz this module writes when it converts Google's graph keeps them, for the Inception Score).
"""

import dataclasses
import hashlib
import os
import pathlib
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from typing import Dict, Optional, Tuple

import numpy as np

from mmd_gan_tf.metrics import inception
from mmd_gan_tf.metrics import inception_graphdef

INCEPTION_URL = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
CONVERTED_NAME = "fid_inception_v3_2015_12_05.npz"
TENSOR_NAMES = ("kernel", "beta", "moving_mean", "moving_variance")


@dataclasses.dataclass(frozen=True)
class InceptionWeights:
  """Verified weights. convs: scope -> {kernel, beta, moving_mean, moving_variance};
  logits: (softmax weights [2048, K], biases [K]) or None; sha256 of the file they came from."""
  convs: Dict[str, Dict[str, np.ndarray]]
  logits: Optional[Tuple[np.ndarray, np.ndarray]]
  sha256: str
  source: str


ARCHIVE_NAME = "inception-2015-12-05.tgz"


# Set (to anything non-empty) to forbid every download, e.g. in tests and on clusters without internet access.
NO_DOWNLOAD_ENV = "MMD_GAN_TF_NO_DOWNLOAD"


def default_cache_dir() -> pathlib.Path:
  """$MMD_GAN_TF_CACHE, else ~/.cache/mmd_gan_tf."""
  return pathlib.Path(os.environ.get("MMD_GAN_TF_CACHE", "~/.cache/mmd_gan_tf")).expanduser()


def file_sha256(path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def verify_weights(convs, logits) -> None:
  """Raises ValueError unless every layer of `inception.LAYERS` is there with the right shapes."""
  missing = [s for s in inception.LAYERS if s not in convs]
  if missing:
    raise ValueError(f"Inception weights: {len(missing)} conv layers missing (for example {', '.join(missing[:3])})")
  for scope in inception.LAYERS:
    for name in TENSOR_NAMES:
      if name not in convs[scope]:
        raise ValueError(f"Inception weights: {scope}/{name} is missing")
      inception.check_weights_shape(scope, name, convs[scope][name])
      if not np.isfinite(convs[scope][name]).all():  # one NaN made every KID 0.0, reported as a result
        raise ValueError(f"Inception weights: {scope}/{name} holds NaN or infinite values: the file is damaged")
  if logits is not None:
    weights, biases = logits
    if not (np.isfinite(weights).all() and np.isfinite(biases).all()):
      raise ValueError("Inception weights: the softmax weights hold NaN or infinite values: the file is damaged")
    if weights.ndim != 2 or weights.shape[0] != inception.FEATURE_DIM or biases.shape != weights.shape[1:]:
      raise ValueError(f"Inception weights: softmax weights {weights.shape} / biases {biases.shape} "
                       f"do not fit [{inception.FEATURE_DIM}, K] / [K]")


def weights_from_arrays(arrays: Dict[str, np.ndarray], sha256: str, source: str) -> InceptionWeights:
  """Builds and verifies `InceptionWeights` from a flat dict in the .npz layout."""
  convs = {scope: {name: np.asarray(arrays[f"{scope}/{name}"], np.float32)
                   for name in TENSOR_NAMES if f"{scope}/{name}" in arrays}
           for scope in inception.LAYERS}
  convs = {scope: tensors for scope, tensors in convs.items() if tensors}
  logits = None
  if "softmax/weights" in arrays:
    logits = (np.asarray(arrays["softmax/weights"], np.float32),
              np.asarray(arrays["softmax/biases"], np.float32))
  verify_weights(convs, logits)
  return InceptionWeights(convs, logits, sha256, source)


def arrays_from_weights(weights: InceptionWeights) -> Dict[str, np.ndarray]:
  """Inverse of `weights_from_arrays`: the flat .npz layout."""
  arrays = {f"{scope}/{name}": tensor for scope, tensors in weights.convs.items()
            for name, tensor in tensors.items()}
  if weights.logits is not None:
    arrays["softmax/weights"], arrays["softmax/biases"] = weights.logits
  return arrays


def load_npz(path) -> InceptionWeights:
  """Weights from the project's .npz.

  Raises:
    ValueError: a truncated or corrupt file (named), or arrays that do not fit the network.
  """
  try:
    with np.load(path) as data:
      arrays = {key: data[key] for key in data.files}
  except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as error:
    raise ValueError(f"{path} is not a readable Inception weights .npz ({error}); it is truncated or "
                     "corrupt: delete it and download or convert it again") from error
  return weights_from_arrays(arrays, file_sha256(path), str(path))


def load_graphdef_file(path) -> InceptionWeights:
  """Google's `classify_image_graph_def.pb`, or the `inception-2015-12-05.tgz` holding it."""
  import tarfile  # pylint: disable=import-outside-toplevel
  from google.protobuf import message  # pylint: disable=import-outside-toplevel
  path = pathlib.Path(path)
  try:
    if path.suffix == ".pb":
      serialized = path.read_bytes()
    else:
      serialized = inception_graphdef.read_pb_from_tgz(path)
    arrays = inception_graphdef.arrays_from_serialized_graphdef(serialized, check_geometry=True)
  except (tarfile.TarError, EOFError, zlib.error, message.DecodeError) as error:
    raise ValueError(f"{path} is not a readable Inception graph ({type(error).__name__}: {error}); it is "
                     "truncated or not the classify_image_graph_def.pb / inception-2015-12-05.tgz") from None
  return weights_from_arrays(arrays, file_sha256(path), str(path))


def load_inception_weights(path: Optional[str] = None, cache_dir=None,
                           download: bool = True) -> InceptionWeights:
  """Loads verified weights from `path` (.npz, .pb, .tgz / .tar.gz), else from the cache.

  With no path: the converted .npz in `cache_dir` (default `default_cache_dir()`); when missing, the
  .tgz is downloaded once (progress bar), converted, verified and cached there.

  Raises:
    ValueError: unknown file type or weights that do not fit the network.
    FileNotFoundError: `path` does not exist.
    RuntimeError: no path, nothing cached and the download failed (e.g. offline).
  """
  if path:
    path = pathlib.Path(path).expanduser()
    if not path.exists():
      raise FileNotFoundError(f"--inception_weights={path}: no such file")
    if not path.is_file():  # a folder, or a FIFO that reading would wait on forever
      raise ValueError(f"--inception_weights={path} is not a regular file")
    name = path.name.lower()
    if name.endswith(".npz"):
      return load_npz(path)
    if name.endswith((".pb", ".tgz", ".tar.gz")):
      return load_graphdef_file(path)
    raise ValueError(f"--inception_weights={path}: expected a .npz, .pb or .tgz file")
  cache_dir = pathlib.Path(cache_dir) if cache_dir else default_cache_dir()
  converted = cache_dir / CONVERTED_NAME
  download = download and not os.environ.get(NO_DOWNLOAD_ENV)
  if not converted.exists():
    if not download and not (cache_dir / ARCHIVE_NAME).exists():
      raise RuntimeError(_offline_message(cache_dir, "downloads are disabled"))
    convert_download(cache_dir)
  return load_npz(converted)


def _offline_message(cache_dir, reason) -> str:
  return (f"The FID Inception weights are not cached in {cache_dir} and could not be downloaded "
          f"({reason}). Download {INCEPTION_URL} on a machine with internet access and pass "
          f"--inception_weights=/path/to/inception-2015-12-05.tgz (or the classify_image_graph_def.pb "
          f"inside it, or a converted .npz); or put the .tgz at {cache_dir}/inception-2015-12-05.tgz.")


def convert_download(cache_dir) -> pathlib.Path:
  """Downloads the .tgz into `cache_dir` (unless already there), converts it to the cached .npz."""
  cache_dir = pathlib.Path(cache_dir)
  cache_dir.mkdir(parents=True, exist_ok=True)
  archive = cache_dir / ARCHIVE_NAME
  if not archive.exists():
    try:
      _download(INCEPTION_URL, archive)
    except (urllib.error.URLError, OSError) as error:
      raise RuntimeError(_offline_message(cache_dir, error)) from error
  weights = load_graphdef_file(archive)
  return save_npz(weights, cache_dir / CONVERTED_NAME)


def save_npz(weights: InceptionWeights, path) -> pathlib.Path:
  """Writes the .npz layout atomically (a temporary file renamed into place)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as f:
    np.savez(f, **arrays_from_weights(weights))
  os.replace(f.name, path)
  return path


def _download(url, destination: pathlib.Path) -> None:
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel
  partial = destination.with_suffix(".part")
  with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as f:
    total = int(response.headers.get("Content-Length") or 0) or None
    with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {url}") as bar:
      for chunk in iter(lambda: response.read(1 << 20), b""):
        f.write(chunk)
        bar.update(len(chunk))
  inception_graphdef.read_pb_from_tgz(partial)  # a truncated download fails here, not later
  os.replace(partial, destination)
