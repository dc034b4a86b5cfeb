"""Inception Score (Salimans et al. 2016), when the weights have the classifier layer.

IS = exp(E_x KL(p(y|x) || p(y))), computed per split of the samples (10 splits by convention) and
reported as the mean and std over splits; p(y) is the split's mean prediction. Softmax over all logits
of the 2015 graph (1008 classes), float64.
"""

from typing import NamedTuple

import numpy as np
import tensorflow as tf


class InceptionScore(NamedTuple):
  mean: float
  std: float
  values: np.ndarray


def inception_score_from_logits(logits, num_splits: int = 10) -> InceptionScore:
  """Args: logits [N, K]; num_splits: N is split into this many consecutive, near-equal parts.

  Returns:
    InceptionScore(mean, std (ddof 0), per-split scores [num_splits]).

  Raises:
    ValueError: num_splits < 1 or more splits than samples.
  """
  logits = tf.cast(logits, tf.float64)
  count = int(logits.shape[0])
  if num_splits < 1 or num_splits > count:
    raise ValueError(f"inception score: num_splits={num_splits} must be in [1, {count}]")
  log_probs = tf.nn.log_softmax(logits, axis=-1)
  scores = []
  for part in np.array_split(np.arange(count), num_splits):
    part_log_probs = tf.gather(log_probs, part)
    log_marginal = tf.math.log(tf.reduce_mean(tf.exp(part_log_probs), axis=0))
    kl = tf.reduce_sum(tf.exp(part_log_probs) * (part_log_probs - log_marginal), axis=-1)
    scores.append(float(tf.exp(tf.reduce_mean(kl))))
  scores = np.asarray(scores)
  return InceptionScore(float(scores.mean()), float(scores.std()), scores)
