"""The trainer's side of Binkowski et al.'s KID-driven learning-rate adaptation.

At steps 1, every + 1, 2 every + 1, ... (`is_test_step`, as the reference codes' scorers): generate `lr_adaptation_samples` images from fresh noise,
take their Inception codes, and run the 3-sample test (metrics/three_sample.py) of the real codes vs
these newest codes against the real codes vs the oldest remembered code set. The decision rule, the
memory rule (which code sets are remembered, Binkowski's scorer) and their checkpointed state are
`metrics.lr_adaptation.LrAdaptation`; this module keeps the code sets and sets the optimizers' rates.

Code sets live on disk as `<dir>/fake_codes_<step>.npy` (written atomically; 16 MB each for 2048 x
2048), not in the checkpoint; the checkpoint remembers which steps are in the memory. Files that left
the memory are deleted. A remembered file that is missing or unreadable (e.g. after resuming from an
older checkpoint) is dropped from the memory with a warning, and that evaluation tests nothing.
"""

import os
from typing import Callable, Dict, Optional

import numpy as np
import tensorflow as tf
from absl import logging

from mmd_gan_tf.metrics import lr_adaptation


def is_test_step(step: int, every: int) -> bool:
  """Whether the generator step `step` (1 after the first update) takes a code set: steps 1, every + 1,
  2 every + 1, ... . Binkowski's and Arbel's scorers run after the generator update at their 0-based step s
  with s % every == 0, s = 0 included; their step s is our step s + 1. With the default memory of 10 sets
  the first test comes at step 20,001, as in Arbel's code."""
  return step >= 1 and (step - 1) % every == 0


def next_test_step(current: int, every: int) -> int:
  """The first step after `current` at which `is_test_step` holds."""
  if current < 1:
    return 1
  return ((current - 1) // every + 1) * every + 1


def _codes_path(directory: str, step: int) -> str:
  return os.path.join(directory, f"fake_codes_{step:08d}.npy")


def save_codes(directory: str, step: int, codes: np.ndarray) -> None:
  """Atomic write of one code set [n, d] float32."""
  os.makedirs(directory, exist_ok=True)
  path = _codes_path(directory, step)
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "wb") as f:
    np.save(f, np.asarray(codes, np.float32))
  os.replace(tmp, path)


def load_codes(directory: str, step: int) -> Optional[np.ndarray]:
  """The code set saved at `step`, or None if there is none (or it is unreadable)."""
  path = _codes_path(directory, step)
  if not os.path.exists(path):
    return None
  try:
    return np.load(path)
  except (ValueError, OSError) as e:
    logging.warning("lr adaptation: ignoring unreadable %s (%s)", path, e)
    return None


def prune_codes(directory: str, keep_steps) -> None:
  """Deletes the code sets whose step is not in `keep_steps` (they can never be an old set again)."""
  if not os.path.isdir(directory):
    return
  keep = set(int(s) for s in keep_steps)
  for name in os.listdir(directory):
    if name.startswith("fake_codes_") and name.endswith(".npy"):
      try:
        step = int(name[len("fake_codes_"):-len(".npy")])
      except ValueError:
        continue
      if step not in keep:
        os.remove(os.path.join(directory, name))


class KidLrAdapter:
  """Runs the test every `every` steps and applies the learning rates it decides.

  Args:
    eval_cfg: EvalConfig (lr_adaptation_every, _lag, _p, _patience, _factor, lr_floor).
    optimizers: (critic optimizer, generator optimizer); their base rates are (critic_lr, generator_lr).
    base_learning_rates: (critic_lr, generator_lr) of the config.
    real_codes: [n, 2048] Inception codes of n real images.
    fake_codes: (generator, step) -> [n, 2048] codes of n images from noise keyed by `step`.
    codes_dir: where old code sets are kept.
  """

  def __init__(self, eval_cfg, optimizers, base_learning_rates, real_codes,
               fake_codes: Callable[[object, int], tf.Tensor], codes_dir: str):
    self.state = lr_adaptation.LrAdaptation.from_config(eval_cfg, base_learning_rates)
    self.every = eval_cfg.lr_adaptation_every
    self._optimizers = optimizers
    self._real = tf.convert_to_tensor(real_codes, tf.float32)
    self._fake_codes = fake_codes
    self._dir = codes_dir

  def apply_learning_rates(self) -> None:
    """Sets the optimizers' rates from the (possibly restored) lr factor."""
    for optimizer, rate in zip(self._optimizers, self.state.learning_rates()):
      optimizer.learning_rate.assign(rate)

  def due(self, step: int) -> bool:
    return is_test_step(step, self.every)

  def __call__(self, generator, step: int) -> Dict[str, float]:
    """Codes for `step`; the test against the oldest remembered set once the memory is full; what to log."""
    codes = self._fake_codes(generator, step).numpy()
    save_codes(self._dir, step, codes)
    state = self.state
    memory = state.remembered()
    if not state.full():
      state.set_memory(memory + [step])
      prune_codes(self._dir, state.remembered())
      return {"lr_adaptation/memory": float(len(memory) + 1)}
    old = load_codes(self._dir, memory[0])
    if old is None or old.shape != codes.shape:
      logging.warning("lr adaptation: the remembered codes of step %d are %s; dropping them, no test at "
                      "step %d", memory[0], "missing" if old is None else f"of shape {old.shape}", step)
      state.set_memory(memory[1:] + [step])
      prune_codes(self._dir, state.remembered())
      return {}
    result = state.test(self._real, codes, old)
    state.set_memory(state.next_memory(step, bool(result["failed"]), bool(result["decayed"])))
    self.apply_learning_rates()
    prune_codes(self._dir, state.remembered())
    logs = {f"lr_adaptation/{k}": float(result[k])
            for k in ("p_value", "t_stat", "diff", "mmd2_new", "mmd2_old", "failures", "lr_factor")}
    logs["lr_adaptation/failed"] = float(bool(result["failed"]))
    logs["lr_adaptation/decayed"] = float(bool(result["decayed"]))
    logs["lr_adaptation/old_step"] = float(memory[0])
    logs["lr_adaptation/memory"] = float(len(state.remembered()))
    return logs
