"""The health of a kernel critic, read from its three kernel means (`losses.kernel_means`: the mean of
k(real, real), k(fake, fake) and k(real, fake) over a batch).

Two stuck states are known (docs/training.md, "Which loss at small widths"):
- saturated (0 / 1 / 0): the real features are far apart at the kernel's bandwidth, the fake ones collapsed
  onto one point; Wang's repulsive loss is at its optimum and the generator gets no gradient signal.
- all-zero (0 / 0 / 0): every pair of features is far apart: the features outgrew the bandwidth.

`kernel_state` names the state; `StallWatch` warns once when a training run stays in a stuck state.
"""

from typing import Mapping, Optional

# A kernel mean below LOW counts as 0, above 1 - LOW as 1.
KERNEL_LOW = 0.05
TAGS = ("kernel/real_real", "kernel/fake_fake", "kernel/real_fake")


def kernel_state(real_real: float, fake_fake: float, real_fake: float) -> str:
  """'saturated' (Wang's 0/1/0: real features far apart, fake ones collapsed), 'all-zero' (every pair far apart at
  the kernel's bandwidth: the features outgrew it) or 'healthy', from the three kernel means."""
  if max(real_real, fake_fake, real_fake) < KERNEL_LOW:
    return "all-zero"
  if real_real < KERNEL_LOW and real_fake < KERNEL_LOW and fake_fake > 1 - KERNEL_LOW:
    return "saturated"
  return "healthy"


_WHY = {"saturated": "the critic separates real from fake completely and the generator gets no signal",
        "all-zero": "every pair of critic features is far apart at the kernel's bandwidth"}


class StallWatch:
  """Warns once per episode when the logged kernel means stay in a stuck state for `patience` steps.

  `update(step, values)` takes the metrics of a logged step; it returns a warning line the first time the
  state has been stuck since a step at least `patience` steps back, else None. A healthy log ends the episode.
  Losses without kernel means are never warned about.
  """

  def __init__(self, loss: str, patience: int = 500):
    self.loss, self.patience = loss, patience
    self._state, self._since, self._warned = "healthy", None, False

  def update(self, step: int, values: Mapping[str, float]) -> Optional[str]:
    if not all(tag in values for tag in TAGS):
      return None
    means = [float(values[tag]) for tag in TAGS]
    state = kernel_state(*means)
    if state != self._state:
      self._state, self._since, self._warned = state, step, False
    if state == "healthy" or self._warned or step - self._since < self.patience:
      return None
    self._warned = True
    shown = ", ".join(f"{tag.split('/')[1]} {value:.2f}" for tag, value in zip(TAGS, means))
    instead = "--loss=rep_b" if self.loss == "rep" else "--loss=hinge"
    return (f"--loss={self.loss}: kernel means {state} ({shown}) since step {self._since}: {_WHY[state]}. A run "
            "may still leave this state, but at widths below 1 most runs stuck this long stayed stuck: consider "
            f"another --seed or {instead} (docs/training.md, 'Which loss at small widths')")
