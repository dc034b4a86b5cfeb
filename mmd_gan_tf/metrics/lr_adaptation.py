"""KID-driven learning-rate adaptation (Binkowski et al. 2018, section 5; SPEC section 8).

Every `lr_adaptation_every` generator steps the trainer compares 2048 real codes against the newest
generated codes and against codes generated `lr_adaptation_lag` evaluations earlier with the
relative-similarity test (`three_sample.py`). p > p_threshold (0.1) is a failure; `patience` (3)
failures in a row multiply both learning rates by `decay` (0.5; 0.8 in Arbel) and reset the count; a
success resets it too. Each learning rate is floored at `lr_floor` (1e-6).

The state (failures, lr factor, test count, last p-value) lives in tf.Variables of a tf.Module, so it goes
into the trainer's tf.train.Checkpoint. Call `LrAdaptation.test` in cross-replica context (outside
`strategy.run`). `FakeCodeHistory` is an optional checkpointable ring buffer for the old codes.
"""

from typing import Dict, NamedTuple, Sequence

import tensorflow as tf

from mmd_gan_tf.metrics import three_sample


class AdaptationUpdate(NamedTuple):
  """One step of the failure counter: failed (bool), failures (int64), lr_factor (float64), decayed."""
  failed: tf.Tensor
  failures: tf.Tensor
  lr_factor: tf.Tensor
  decayed: tf.Tensor


def adaptation_update(failures, lr_factor, p_value, p_threshold: float, patience: int,
                      decay: float, min_factor: float) -> AdaptationUpdate:
  """Pure rule: failure if p > p_threshold; `patience` in a row -> lr_factor * decay (>= min_factor).

  Args:
    failures: int64 scalar, consecutive failures so far.
    lr_factor: float64 scalar, current multiplier of the base learning rates.
    p_value: float64 scalar of the 3-sample test.
    p_threshold, patience, decay, min_factor: the rule's constants.
  """
  failed = p_value > p_threshold
  failures = tf.where(failed, failures + 1, tf.zeros_like(failures))
  decayed = failures >= patience
  new_factor = tf.where(decayed, tf.maximum(lr_factor * decay, tf.cast(min_factor, lr_factor.dtype)),
                        lr_factor)
  failures = tf.where(decayed, tf.zeros_like(failures), failures)
  return AdaptationUpdate(failed, failures, new_factor, decayed)


class LrAdaptation(tf.Module):
  """Checkpointable state of the adaptation. Learning rates = max(base * lr_factor, lr_floor)."""

  def __init__(self, base_learning_rates: Sequence[float], p_threshold: float = 0.1,
               patience: int = 3, decay: float = 0.5, lr_floor: float = 1e-6,
               name: str = "lr_adaptation"):
    super().__init__(name=name)
    if not base_learning_rates or min(base_learning_rates) <= 0:
      raise ValueError(f"base_learning_rates must be positive, got {base_learning_rates}")
    if not 0 < decay < 1 or patience < 1 or not 0 < p_threshold < 1:
      raise ValueError(f"bad lr adaptation settings: decay={decay}, patience={patience}, "
                       f"p_threshold={p_threshold}")
    self.base_learning_rates = tuple(float(lr) for lr in base_learning_rates)
    self.p_threshold, self.patience, self.decay, self.lr_floor = p_threshold, patience, decay, lr_floor
    # Once the factor brings the largest base rate to the floor, every rate sits at the floor.
    self.min_factor = min(1.0, lr_floor / max(self.base_learning_rates))
    self.failures = tf.Variable(0, dtype=tf.int64, trainable=False, name="failures")
    self.lr_factor = tf.Variable(1.0, dtype=tf.float64, trainable=False, name="lr_factor")
    self.num_tests = tf.Variable(0, dtype=tf.int64, trainable=False, name="num_tests")
    self.last_p_value = tf.Variable(float("nan"), dtype=tf.float64, trainable=False,
                                    name="last_p_value")

  @classmethod
  def from_config(cls, eval_cfg, base_learning_rates: Sequence[float]) -> "LrAdaptation":
    """From `EvalConfig` (lr_adaptation_p, _patience, _factor, lr_floor)."""
    return cls(base_learning_rates, p_threshold=eval_cfg.lr_adaptation_p,
               patience=eval_cfg.lr_adaptation_patience, decay=eval_cfg.lr_adaptation_factor,
               lr_floor=eval_cfg.lr_floor)

  def learning_rates(self):
    """[max(base_i * lr_factor, lr_floor)] as float32 scalars, in the order of base_learning_rates."""
    factor = tf.cast(self.lr_factor, tf.float32)
    return [tf.maximum(base * factor, self.lr_floor) for base in self.base_learning_rates]

  def test(self, real_codes, new_fake_codes, old_fake_codes) -> Dict[str, tf.Tensor]:
    """Runs the 3-sample test on codes [m, d] each, updates the state, returns what to log.

    Returns:
      dict: p_value, t_stat, diff, mmd2_new, mmd2_old, failed, decayed, failures, lr_factor,
      learning_rates (list).
    """
    result = three_sample.relative_similarity_test(real_codes, new_fake_codes, old_fake_codes)
    update = adaptation_update(self.failures, self.lr_factor, result.p_value, self.p_threshold,
                               self.patience, self.decay, self.min_factor)
    self.failures.assign(update.failures)
    self.lr_factor.assign(update.lr_factor)
    self.num_tests.assign_add(1)
    self.last_p_value.assign(result.p_value)
    return {"p_value": result.p_value, "t_stat": result.t_stat, "diff": result.diff,
            "mmd2_new": result.mmd2_new, "mmd2_old": result.mmd2_old, "failed": update.failed,
            "decayed": update.decayed, "failures": update.failures, "lr_factor": update.lr_factor,
            "learning_rates": self.learning_rates()}


class FakeCodeHistory(tf.Module):
  """Ring buffer of the last `lag + 1` sets of fake codes [num_codes, dim] (float32), checkpointable.

  Memory: (lag + 1) * num_codes * dim * 4 bytes (184 MB for 10 + 1 sets of 2048 x 2048).
  """

  def __init__(self, lag: int, num_codes: int, dim: int, name: str = "fake_code_history"):
    super().__init__(name=name)
    if lag < 1:
      raise ValueError(f"lag must be >= 1, got {lag}")
    self.lag = lag
    self.codes = tf.Variable(tf.zeros([lag + 1, num_codes, dim]), trainable=False, name="codes")
    self.count = tf.Variable(0, dtype=tf.int64, trainable=False, name="count")

  def push(self, codes) -> None:
    slot = self.count % (self.lag + 1)
    self.codes.scatter_nd_update([[slot]], tf.cast(codes, tf.float32)[None])
    self.count.assign_add(1)

  def ready(self) -> tf.Tensor:
    """True once the codes of `lag` pushes before the newest exist."""
    return self.count > self.lag

  def newest(self) -> tf.Tensor:
    return self.codes[(self.count - 1) % (self.lag + 1)]

  def lagged(self) -> tf.Tensor:
    """The codes pushed `lag` pushes before the newest one."""
    return self.codes[(self.count - 1 - self.lag) % (self.lag + 1)]
