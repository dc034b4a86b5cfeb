"""On-disk cache of real-data Inception features.

Real features depend only on (dataset, split, image size, preprocessing, sample count, network weights,
resize); they are computed once and stored as `<cache_dir>/features/<sha256 of the key>.npz`, next to the
key itself (JSON) so that a cached file can be audited. Writes are atomic (temporary file + rename), so
concurrent runs at worst compute the same features twice.
"""

import hashlib
import json
import logging
import os
import pathlib
import tempfile
import zipfile
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from mmd_gan_tf.metrics import inception_weights

RESIZE_PROTOCOL = "tf.raw_ops.ResizeBilinear 299x299 align_corners=False half_pixel_centers=False"
FeatureFn = Callable[[], Tuple[np.ndarray, Optional[np.ndarray]]]


def cache_key(fields: Dict) -> str:
  """sha256 of the canonical JSON of `fields` (plus the resize protocol)."""
  canonical = json.dumps({**fields, "resize": RESIZE_PROTOCOL}, sort_keys=True, default=str)
  return hashlib.sha256(canonical.encode()).hexdigest()


def cache_path(fields: Dict, cache_dir=None) -> pathlib.Path:
  cache_dir = pathlib.Path(cache_dir) if cache_dir else inception_weights.default_cache_dir()
  return cache_dir / "features" / f"{cache_key(fields)}.npz"


def cached_features(fields: Dict, compute: FeatureFn, cache_dir=None,
                    need_logits: bool = False) -> Tuple[np.ndarray, Optional[np.ndarray], bool]:
  """Features for `fields` from the cache, or `compute()`d and stored.

  Args:
    fields: JSON-able identity of the features, e.g. {"source": "cifar10:test", "num": 10000,
      "image_size": 32, "preprocessing": "default", "weights_sha256": ...}.
    compute: returns (features [N, 2048], logits [N, K] or None).
    cache_dir: root of the cache (default ~/.cache/mmd_gan_tf).
    need_logits: a cached entry without logits is recomputed.

  Returns:
    (features, logits or None, hit: whether it came from the cache).
  """
  path = cache_path(fields, cache_dir)
  if path.exists():
    try:
      with np.load(path) as data:
        if not need_logits or "logits" in data.files:
          return data["features"], (data["logits"] if "logits" in data.files else None), True
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:  # cut short, or not ours
      logging.warning("the cached features %s are unreadable (%s: %s): computed again", path,
                      type(error).__name__, error)
  features, logits = compute()
  arrays = {"features": features, "key": np.array(json.dumps(fields, sort_keys=True, default=str))}
  if logits is not None:
    arrays["logits"] = logits
  path.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as f:
    np.savez(f, **arrays)
  os.replace(f.name, path)
  return features, logits, False
