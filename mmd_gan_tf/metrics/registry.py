"""The metrics by name: `METRICS = {"kid": ..., "fid": ..., "is": ...}`, one small function each.

tools/evaluate.py (its --metrics choices and its dispatch) and in-training evaluation
(`training_eval.generator_scores`) both go through this dict, so a metric is added in one place.

Every metric has the same signature

  metric(real, fake, fake_logits, settings) -> {name: value, name_<detail>: value, ...}

  real:        [M, d] Inception pool_3 features of real images (d = 2048).
  fake:        [N, d] features of generated images; M != N allowed.
  fake_logits: [N, K] softmax-layer logits of the generated images (K = 1008), or None; only "is" needs
               them (and features of real images are not used by "is").
  settings:    `MetricSettings` (subset sizes, minimum counts, seed, eager or in-graph).

and returns a flat dict of scalars whose first key is the metric's name (its headline value) and whose
other keys are `<name>_<detail>` (e.g. "kid_std"): the names of the training scalars in TensorBoard.
"""

import dataclasses
from typing import Any, Callable, Dict, Optional

from mmd_gan_tf.metrics import fid as fid_lib
from mmd_gan_tf.metrics import inception_score
from mmd_gan_tf.metrics import kid as kid_lib


@dataclasses.dataclass(frozen=True)
class MetricSettings:
  """How the metrics are computed.

  Attributes:
    kid_subsets, kid_subset_size: KID's S subsets of this many features per set (kid.py).
    fid_min_samples: FID refuses sets smaller than this (fid.py).
    is_splits: the Inception Score's number of splits.
    seed: seed of the KID subsets: an int, or a scalar int tensor in graph mode (the training step).
    in_graph: True inside a tf.function (training): KID draws its subsets with stateless TF ops and
      reports mean and std as float64 tensors. False (tools): KID draws them with numpy's seeded
      generator, the protocol of the published numbers, and also reports the standard error.
  """
  kid_subsets: int = 100
  kid_subset_size: int = 1000
  fid_min_samples: int = fid_lib.DEFAULT_MIN_SAMPLES
  is_splits: int = 10
  seed: Any = 0
  in_graph: bool = False


def kid_metric(real, fake, fake_logits, settings: MetricSettings) -> Dict[str, Any]:
  """KID (Binkowski et al. 2018, section 4; kid.py): {"kid", "kid_std"}, eager also stderr and x1e3."""
  del fake_logits
  if settings.in_graph:
    mean, std = kid_lib.kid_in_graph(real, fake, settings.kid_subsets, settings.kid_subset_size,
                                     settings.seed)
    return {"kid": mean, "kid_std": std}
  result = kid_lib.kid(real, fake, settings.kid_subsets, settings.kid_subset_size, settings.seed)
  return {"kid": result.mean, "kid_std": result.std, "kid_stderr": result.stderr,
          "kid_mean_x1e3": result.mean * 1e3, "kid_std_x1e3": result.std * 1e3}


def fid_metric(real, fake, fake_logits, settings: MetricSettings) -> Dict[str, Any]:
  """FID (Heusel et al. 2017; fid.py): {"fid"}, a float64 scalar tensor."""
  del fake_logits
  return {"fid": fid_lib.fid(real, fake, settings.fid_min_samples)}


def is_metric(real, fake, fake_logits, settings: MetricSettings) -> Dict[str, Any]:
  """Inception Score (Salimans et al. 2016) of the generated images: {"is", "is_std", "is_splits"}.

  Raises:
    ValueError: no logits (weights without the softmax layer).
  """
  del real, fake
  if fake_logits is None:
    raise ValueError("the Inception Score needs the softmax logits of the generated images")
  score = inception_score.inception_score_from_logits(fake_logits, settings.is_splits)
  return {"is": score.mean, "is_std": score.std, "is_splits": settings.is_splits}


METRICS: Dict[str, Callable[[Any, Any, Optional[Any], MetricSettings], Dict[str, Any]]] = {
    "kid": kid_metric,
    "fid": fid_metric,
    "is": is_metric,
}

# Metrics that need the generated images' softmax logits (weights with the softmax layer).
NEEDS_LOGITS = frozenset({"is"})
