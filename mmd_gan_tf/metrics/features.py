"""Batched Inception feature extraction over arrays or iterables of image batches."""

import weakref
from typing import Iterable, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from mmd_gan_tf.metrics import inception
from mmd_gan_tf.metrics import inception_weights

Images = Union[np.ndarray, Iterable[np.ndarray]]
_EXTRACTORS = weakref.WeakKeyDictionary()  # model -> {with_logits: tf.function}


def make_extractor(model: inception.FidInceptionV3, with_logits: bool = False):
  """A tf.function: pixels float32 [N, H, W, 3] in [0, 255] -> features [N, 2048] (, logits).

  One per (model, with_logits), reused: tracing and optimising the graph takes seconds on a CPU.
  """
  cached = _EXTRACTORS.setdefault(model, {})
  if with_logits not in cached:
    cached[with_logits] = _new_extractor(model, with_logits)
  return cached[with_logits]


def _new_extractor(model, with_logits):

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
  def extract(pixels):
    features = model(pixels)
    return (features, model.logits(features)) if with_logits else features

  return extract


def _batches(images: Images, batch_size: int):
  if isinstance(images, np.ndarray):
    for start in range(0, len(images), batch_size):
      yield images[start:start + batch_size]
  else:
    yield from images


def load_fid_inception(path: Optional[str] = None, download: bool = True) -> inception.FidInceptionV3:
  """The FID Inception-v3 (2015) as a Keras model, from `path` (.tgz, its .pb or the converted .npz) or from
  the cache; with neither, downloaded once, converted, checked and cached (as `tools/evaluate.py` does)."""
  return inception.build_fid_inception(inception_weights.load_inception_weights(path, download=download))


def extract_features(model: inception.FidInceptionV3, images: Images, batch_size: int = 100,
                     image_range: str = "pixels", with_logits: bool = False,
                     progress: Optional[str] = None, total: Optional[int] = None,
                     extractor=None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
  """Features (and logits) of images, batch by batch.

  Args:
    model: the FID Inception network.
    images: uint8 / float array [N, H, W, C] (C in {1, 3}), or an iterable of such batches.
    batch_size: batch size when `images` is an array.
    image_range: range of float images: "pixels" [0, 255], "tanh" [-1, 1], "sigmoid" [0, 1].
    with_logits: also return the classifier logits (needs weights with the softmax layer).
    progress: a tqdm description to show a progress bar, None for none.
    total: number of images, for the progress bar of an iterable.
    extractor: a `make_extractor` function to reuse (avoids retracing across calls).

  Returns:
    (features float32 [N, 2048], logits float32 [N, K] or None).
  """
  extractor = extractor or make_extractor(model, with_logits)
  if total is None and isinstance(images, np.ndarray):
    total = len(images)
  bar = None
  if progress:
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    bar = tqdm(total=total, desc=progress, unit="img")
  features, logits = [], []
  for batch in _batches(images, batch_size):
    pixels = inception.to_inception_pixels(tf.convert_to_tensor(batch), image_range)
    out = extractor(pixels)
    if with_logits:
      features.append(out[0].numpy())
      logits.append(out[1].numpy())
    else:
      features.append(out.numpy())
    if bar is not None:
      bar.update(len(batch))
  if bar is not None:
    bar.close()
  if not features:
    raise ValueError("extract_features: no images")
  return np.concatenate(features), (np.concatenate(logits) if with_logits else None)
