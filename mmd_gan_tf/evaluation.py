"""The loop's side of in-training evaluation: KID (and FID) every `eval_every` steps or minutes, and the
KID-driven learning-rate adaptation, sharing one Inception network (metrics/training_eval.py computes;
this module decides where results go: TensorBoard via the trainer, `<workdir>/eval.jsonl`, the best-KID
checkpoint, the lr-adaptation state in the checkpoint). `adaptation.py` holds the adaptation itself.
"""

import json
import os
from typing import Optional

import numpy as np
import tensorflow as tf
from absl import logging

from mmd_gan_tf import adaptation
from mmd_gan_tf import checkpointing
from mmd_gan_tf import config as config_lib
from mmd_gan_tf import data
from mmd_gan_tf import distribute
from mmd_gan_tf import files
from mmd_gan_tf import noise
from mmd_gan_tf import steps as steps_lib
from mmd_gan_tf.metrics import inception_weights
from mmd_gan_tf.metrics import training_eval


def recorded_best_kid(prefix: str) -> Optional[float]:
  """The best KID a checkpoint of best_kid/ recorded, or None when it holds none or does not read back."""
  try:
    return float(tf.train.load_variable(prefix, "best_kid/.ATTRIBUTES/VARIABLE_VALUE"))
  except (tf.errors.OpError, ValueError):
    return None


class Evaluator:
  """KID (and FID) of generated vs cached real Inception features every `eval_every` steps.

  Keeps the best-KID checkpoint in <workdir>/best_kid (its own CheckpointManager, one kept), and appends
  each result to <workdir>/eval.jsonl (chief only): step, training seconds so far, kid, kid_std (, fid).
  """

  def __init__(self, cfg: config_lib.Config, checkpoint: tf.train.Checkpoint, best_dir: str, inception,
               log_path: Optional[str] = None):
    self._log_path = log_path
    self._cfg = cfg
    self._weights, self._network = inception
    self._num_real = cfg.eval.num_real or cfg.eval.num_samples
    try:
      self._real = training_eval.real_features(cfg, self._weights, self._network, self._num_real)
    except data.TooFewImages as error:
      flag = "--eval_num_real" if cfg.eval.num_real else "--eval_num_samples"
      raise ValueError(f"{flag}={self._num_real}: too many for the held-out real images of KID ({error}); "
                       f"lower {flag} or give more held-out images") from None
    self.best_kid = tf.Variable(np.inf, dtype=tf.float64, trainable=False, name="best_kid")
    self._best_dir = best_dir
    if log_path:  # the chief
      self._set_aside_unreadable_best(best_dir)
    self._best = tf.train.CheckpointManager(checkpoint, best_dir, max_to_keep=1)

  @staticmethod
  def _set_aside_unreadable_best(best_dir: str) -> None:
    """Moves a best-KID checkpoint that does not read back to best_kid/corrupt/ (kept, not deleted)."""
    for prefix in checkpointing.checkpoints_on_disk(best_dir):
      if not checkpointing.readable(prefix):
        folder = checkpointing.set_aside(best_dir, prefix)
        logging.warning("the best-KID checkpoint %s is unreadable: moved to best_kid/%s/", prefix, folder)
    if not checkpointing.checkpoints_on_disk(best_dir) and os.path.exists(os.path.join(best_dir, "checkpoint")):
      os.remove(os.path.join(best_dir, "checkpoint"))

  def after_restore(self, step: int) -> None:
    """A resumed run whose best_kid/ holds no checkpoint (deleted or unreadable) tracks the best KID anew, so
    that the next evaluation saves one instead of comparing against a checkpoint that is gone; one whose
    best_kid/ holds a better generator of a step after `step` (evaluated by an attempt killed before its next
    checkpoint) keeps that one's KID as the best, so that no worse generator replaces it."""
    for prefix in checkpointing.checkpoints_on_disk(self._best_dir):
      later_best = recorded_best_kid(prefix)
      if later_best is None:
        continue
      if int(prefix.rsplit("-", 1)[1]) > step and later_best < float(self.best_kid.numpy()):
        if self._log_path:
          logging.info("best_kid/ holds the generator of step %s (KID %.5g), evaluated after the checkpoint "
                       "of step %d: it stays the best KID", prefix.rsplit("-", 1)[1], later_best, step)
        self.best_kid.assign(later_best)
    if np.isfinite(float(self.best_kid.numpy())) and not checkpointing.checkpoints_on_disk(self._best_dir):
      if self._log_path:
        logging.warning("best_kid/ holds no readable checkpoint (best KID %.5g recorded): the best KID is "
                        "tracked again from the next evaluation", float(self.best_kid.numpy()))
      self.best_kid.assign(np.inf)

  def __call__(self, generator, step: int) -> dict:
    cfg = self._cfg
    sample = lambda batch, index: noise.sample_z(cfg.model, batch,
                                                 noise.stream_seed(cfg.train.seed, noise.EVALUATION, index))
    fake = training_eval.generated_features(generator, sample, self._network, cfg.eval.num_samples,
                                         cfg.eval.eval_batch_size, cfg.data.image_range)
    scores = {f"eval/{k}": float(v) for k, v in
              training_eval.generator_scores(self._real, fake, cfg.eval, seed=step).items()}
    if scores["eval/kid"] < float(self.best_kid.numpy()):
      self.best_kid.assign(scores["eval/kid"])
      self._best.save(checkpoint_number=step)
    scores["eval/best_kid"] = float(self.best_kid.numpy())
    return scores

  def log(self, step: int, train_seconds: float, scores: dict) -> None:
    """Appends one JSON line {step, train_seconds, kid, kid_std, ...} to the eval log (chief only)."""
    if not self._log_path:
      return
    record = {"step": step, "train_seconds": round(train_seconds, 3), "num_samples": self._cfg.eval.num_samples,
              "num_real": self._num_real,
              **{k.split("/", 1)[1]: v for k, v in scores.items()}}
    files.unshare(self._log_path)  # a hard-linked copy of a run must not append to the original's log
    with open(self._log_path, "ab+") as f:
      line = (json.dumps(record) + "\n").encode("utf-8")
      if f.seek(0, os.SEEK_END):  # a line cut by a crash is ended first, so that this record stays a line
        f.seek(-1, os.SEEK_END)
        if f.read(1) != b"\n":
          line = b"\n" + line
      f.write(line)


def drop_records_after(log_path: str, step: int) -> int:
  """Removes from an eval.jsonl the records of steps after `step` (a resume from the checkpoint of `step`
  trains and evaluates those steps again); other lines are kept. Returns how many records went."""
  try:
    with open(log_path, "rb") as f:
      lines = f.read().splitlines(keepends=True)
  except FileNotFoundError:
    return 0
  kept = [line for line in lines if not _record_after(line, step)]
  if len(kept) < len(lines):
    files.atomic_write_bytes(log_path, b"".join(kept))
  return len(lines) - len(kept)


def _record_after(line: bytes, step: int) -> bool:
  try:
    record = json.loads(line)
  except ValueError:  # a line cut by a crash, or not JSON: kept as it is
    return False
  return isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] > step


def make_lr_adapter(cfg: config_lib.Config, nets: steps_lib.Networks, inception, codes_dir: str):
  """The KID-driven learning-rate adaptation on the shared Inception network."""
  weights, network = inception
  num = cfg.eval.lr_adaptation_samples
  try:
    real = training_eval.real_features(cfg, weights, network, num, held_out=False)  # Binkowski: training images
  except data.TooFewImages as error:
    raise ValueError(f"--lr_adaptation_samples={num}: too many for the training images ({error})") from None

  def fake_codes(generator, step):
    # Fresh noise per test (keyed by the step): the test assumes independent new and old samples.
    sample = lambda batch, index: noise.sample_z(
        cfg.model, batch, noise.stream_seed(cfg.train.seed, noise.LR_ADAPTATION, step, index))
    return training_eval.generated_features(generator, sample, network, num, cfg.eval.eval_batch_size,
                                            cfg.data.image_range)

  return adaptation.KidLrAdapter(cfg.eval, (nets.critic_optimizer, nets.generator_optimizer),
                                 (cfg.optim.critic_lr, cfg.optim.generator_lr), real, fake_codes, codes_dir)


# `--inception_weights=none`: no KID in training, nothing downloaded.
NO_WEIGHTS = "none"


def make_evaluation(cfg: config_lib.Config, nets: steps_lib.Networks, checkpoint: tf.train.Checkpoint,
                     strategy: tf.distribute.Strategy):
  """(Evaluator or None, KidLrAdapter or None) sharing one Inception network; their state joins the checkpoint.

  Call before restoring the checkpoint, so that the best KID and the lr adaptation state are restored too.
  """
  evaluator = lr_adapter = None
  if not (cfg.eval.periodic or cfg.eval.lr_adaptation):
    return evaluator, lr_adapter
  if cfg.eval.inception_weights == NO_WEIGHTS:  # flags/build.py turned the evaluation off; a library caller may not
    raise ValueError(f"--inception_weights={NO_WEIGHTS} with an evaluation or lr adaptation asked for")
  try:
    inception = training_eval.load_network(cfg.eval)
  except (RuntimeError, OSError, ValueError) as error:
    if cfg.eval.lr_adaptation:  # part of the recipe (Arbel's smmd): no silent constant-rate run
      raise ValueError(f"--lr_adaptation adapts the learning rates from KID and needs the FID Inception weights: "
                       f"{str(error).split('. ')[0]}; give --inception_weights=PATH to "
                       f"{inception_weights.INCEPTION_URL.rsplit('/', 1)[1]} (or its converted .npz), or add "
                       "--lr_adaptation=false to train at constant rates") from None
    if not cfg.eval.optional:  # asked for on the command line: a one-line refusal, not a traceback
      asked = (f"--eval_every={cfg.eval.eval_every}" if cfg.eval.eval_every
               else f"--eval_every_minutes={cfg.eval.eval_every_minutes:g}")
      raise ValueError(f"{asked} computes KID with the FID Inception weights: {str(error).split('. ')[0]}; give "
                       f"--inception_weights=PATH to {inception_weights.INCEPTION_URL.rsplit('/', 1)[1]} (or its "
                       "converted .npz), or train without evaluation (--eval_every=0 "
                       "--eval_every_minutes=0)") from None
    logging.warning("KID evaluation and lr adaptation are off: no FID Inception weights (given with "
                    "--inception_weights, or cached in %s). To get them: download %s on a machine with "
                    "internet access and pass --inception_weights=PATH (or put it in that folder). [%s]",
                    inception_weights.default_cache_dir() if not cfg.eval.feature_cache_dir
                    else cfg.eval.feature_cache_dir, inception_weights.INCEPTION_URL,
                    str(error).split(". ")[0])
    return evaluator, lr_adapter
  if cfg.eval.periodic:
    log_path = os.path.join(cfg.workdir, "eval.jsonl") if distribute.is_chief(strategy) else None
    evaluator = Evaluator(cfg, checkpoint,
                          distribute.write_dir(os.path.join(cfg.workdir, "best_kid"), strategy), inception,
                          log_path)
    checkpoint.best_kid = evaluator.best_kid  # tracked, so a resumed run keeps its best KID
  if cfg.eval.lr_adaptation:
    lr_adapter = make_lr_adapter(cfg, nets, inception,
                                  distribute.write_dir(os.path.join(cfg.workdir, "lr_adaptation"), strategy))
    checkpoint.lr_adaptation = lr_adapter.state  # failures and lr factor survive a restart
  return evaluator, lr_adapter
