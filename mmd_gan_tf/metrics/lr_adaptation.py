"""KID-driven learning-rate adaptation (Binkowski et al. 2018, section 5).

Every `lr_adaptation_every` generator steps the trainer compares 2048 real codes against the newest
generated codes and against the oldest code set in a memory of up to `memory` (= `lr_adaptation_lag`,
10) sets, with the relative-similarity test (`three_sample.py`), t = diff / sqrt(max(Var, 1e-5)).
The memory follows Binkowski's scorer (`gan/utils/scorer.py`):
  - while the memory is not full, the new set is appended and nothing is tested;
  - p <= p_threshold (0.1), a success: the oldest set leaves, the new one enters, failures = 0;
  - p > p_threshold, a failure: the memory is unchanged (the new set is dropped), failures += 1;
  - the `patience`-th (3rd) failure in a row: both learning rates times `decay` (0.5; 0.8 in Arbel),
    failures = 0, and the memory keeps only its newest `keep_after_decay` (3) sets including the new
    one, so the next test comes after the memory has refilled (7 evaluations).
Each learning rate is floored at `lr_floor` (1e-6).

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
               patience: int = 3, decay: float = 0.5, lr_floor: float = 1e-6, memory: int = 10,
               keep_after_decay: int = 3, variance_floor: float = 1e-5, name: str = "lr_adaptation"):
    super().__init__(name=name)
    if not base_learning_rates or min(base_learning_rates) <= 0:
      raise ValueError(f"base_learning_rates must be positive, got {base_learning_rates}")
    if not 0 < decay < 1 or patience < 1 or not 0 < p_threshold < 1:
      raise ValueError(f"bad lr adaptation settings: decay={decay}, patience={patience}, "
                       f"p_threshold={p_threshold}")
    if memory < 1 or keep_after_decay < 1:
      raise ValueError(f"bad lr adaptation memory: memory={memory}, keep_after_decay={keep_after_decay}")
    self.memory, self.keep_after_decay = int(memory), min(int(keep_after_decay), int(memory))
    self.variance_floor = float(variance_floor)
    self.base_learning_rates = tuple(float(lr) for lr in base_learning_rates)
    self.p_threshold, self.patience, self.decay, self.lr_floor = p_threshold, patience, decay, lr_floor
    # Once the factor brings the largest base rate to the floor, every rate sits at the floor.
    self.min_factor = min(1.0, lr_floor / max(self.base_learning_rates))
    self.failures = tf.Variable(0, dtype=tf.int64, trainable=False, name="failures")
    self.lr_factor = tf.Variable(1.0, dtype=tf.float64, trainable=False, name="lr_factor")
    self.num_tests = tf.Variable(0, dtype=tf.int64, trainable=False, name="num_tests")
    self.last_p_value = tf.Variable(float("nan"), dtype=tf.float64, trainable=False,
                                    name="last_p_value")
    # The remembered code sets, by the step that made them, oldest first: memory_steps[:memory_size].
    self.memory_steps = tf.Variable(tf.fill([self.memory], tf.constant(-1, tf.int64)), trainable=False,
                                    name="memory_steps")
    self.memory_size = tf.Variable(0, dtype=tf.int64, trainable=False, name="memory_size")

  def remembered(self) -> list:
    """The steps of the remembered code sets, oldest first (eager)."""
    return [int(s) for s in self.memory_steps.numpy()[:int(self.memory_size.numpy())]]

  def set_memory(self, steps: Sequence[int]) -> None:
    steps = list(steps)[-self.memory:]
    padded = steps + [-1] * (self.memory - len(steps))
    self.memory_steps.assign(tf.constant(padded, tf.int64))
    self.memory_size.assign(len(steps))

  def full(self) -> bool:
    return int(self.memory_size.numpy()) >= self.memory

  def next_memory(self, step: int, failed: bool, decayed: bool) -> list:
    """Binkowski's memory rule after a test of the codes of `step` against the oldest remembered set."""
    memory = self.remembered()
    if decayed:
      return (memory + [step])[-self.keep_after_decay:]
    if failed:
      return memory
    return memory[1:] + [step]

  @classmethod
  def from_config(cls, eval_cfg, base_learning_rates: Sequence[float]) -> "LrAdaptation":
    """From `EvalConfig` (lr_adaptation_p, _patience, _factor, lr_floor)."""
    return cls(base_learning_rates, p_threshold=eval_cfg.lr_adaptation_p,
               patience=eval_cfg.lr_adaptation_patience, decay=eval_cfg.lr_adaptation_factor,
               lr_floor=eval_cfg.lr_floor, memory=eval_cfg.lr_adaptation_lag,
               keep_after_decay=eval_cfg.lr_adaptation_keep, variance_floor=eval_cfg.lr_adaptation_variance_floor)

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
    result = three_sample.relative_similarity_test(real_codes, new_fake_codes, old_fake_codes,
                                                   variance_floor=self.variance_floor)
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
