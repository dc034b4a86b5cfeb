"""The 3-sample (relative similarity) test and the KID-driven learning-rate adaptation."""

import dataclasses
import os

import numpy as np
import pytest
import scipy.stats
import keras
import tensorflow as tf

from mmd_gan_tf import adaptation
from mmd_gan_tf.config import EvalConfig
from mmd_gan_tf.metrics import lr_adaptation
from mmd_gan_tf.metrics import three_sample


def _k(a, b):
  return (np.dot(a, b) / len(a) + 1.0) ** 3


def _oracle_mmd2(real, fake):
  m, n = len(real), len(fake)
  within_real = sum(_k(real[i], real[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  within_fake = sum(_k(fake[i], fake[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
  cross = sum(_k(r, f) for r in real for f in fake) / (m * n)
  return within_real + within_fake - 2 * cross


def _oracle_test(real, new, old):
  """Bounliphone et al.'s test, pair by pair in float64: returns (diff, variance, p)."""
  m = len(real)
  h = np.zeros((m, m))
  for i in range(m):
    for j in range(m):
      if i != j:
        h[i, j] = (_k(new[i], new[j]) - _k(old[i], old[j]) - _k(real[i], new[j]) - _k(real[j], new[i])
                   + _k(real[i], old[j]) + _k(real[j], old[i]))
  theta = h.sum() / (m * (m - 1))
  g = np.array([sum(h[i, j] for j in range(m) if j != i) / (m - 1) for i in range(m)])
  zeta1 = np.mean(g ** 2) - theta ** 2
  zeta2 = np.sum(h ** 2) / (m * (m - 1)) - theta ** 2
  variance = (4 * (m - 2) * zeta1 + 2 * zeta2) / (m * (m - 1))
  diff = _oracle_mmd2(real, new) - _oracle_mmd2(real, old)
  return diff, variance, scipy.stats.norm.cdf(diff / np.sqrt(variance))


M, DIM = 24, 6
RNG = np.random.default_rng(0)
REAL = RNG.normal(size=(M, DIM))
CLOSE = RNG.normal(0.1, 1.0, size=(M, DIM))
FAR = RNG.normal(0.9, 1.3, size=(M, DIM))
ALSO_REAL = RNG.normal(size=(M, DIM))


@pytest.mark.parametrize("new, old", [(CLOSE, FAR), (FAR, CLOSE), (ALSO_REAL, CLOSE), (CLOSE, ALSO_REAL)])
def test_relative_similarity_matches_oracle(new, old):
  result = three_sample.relative_similarity_test(REAL, new, old)
  diff, variance, p_value = _oracle_test(REAL, new, old)
  np.testing.assert_allclose(result.diff.numpy(), diff, rtol=1e-9)
  np.testing.assert_allclose(result.variance.numpy(), variance, rtol=1e-9)
  np.testing.assert_allclose(result.p_value.numpy(), p_value, rtol=1e-7, atol=1e-12)
  assert (result.p_value.numpy() > 0.1) == (p_value > 0.1)


def test_relative_similarity_decides_the_obvious_cases():
  assert three_sample.relative_similarity_test(REAL, CLOSE, FAR).p_value.numpy() < 0.1
  assert three_sample.relative_similarity_test(REAL, FAR, CLOSE).p_value.numpy() > 0.9


def test_relative_similarity_needs_equal_counts():
  with pytest.raises(ValueError, match="equal counts"):
    three_sample.relative_similarity_test(REAL, CLOSE[:10], FAR)


def _oracle_schedule(p_values, threshold=0.1, patience=3, decay=0.5, min_factor=0.0):
  failures, factor, history = 0, 1.0, []
  for p in p_values:
    failures = failures + 1 if p > threshold else 0
    if failures == patience:
      factor, failures = max(factor * decay, min_factor), 0
    history.append((failures, factor))
  return history


def test_adaptation_rule_matches_oracle():
  p_values = [0.5, 0.2, 0.05, 0.3, 0.4, 0.11, 0.9, 0.01, 0.2, 0.3, 0.6, 0.7, 0.8, 0.95]
  failures, factor = tf.constant(0, tf.int64), tf.constant(1.0, tf.float64)
  for p, (want_failures, want_factor) in zip(p_values, _oracle_schedule(p_values, min_factor=0.2)):
    update = lr_adaptation.adaptation_update(failures, factor, tf.constant(p, tf.float64), 0.1, 3, 0.5,
                                             0.2)
    failures, factor = update.failures, update.lr_factor
    assert int(failures) == want_failures and float(factor) == pytest.approx(want_factor)
    assert bool(update.failed) == (p > 0.1)


def test_state_decisions_match_oracle_on_fixed_features():
  # Each test's p-value comes from the oracle; the decisions must follow the oracle's schedule.
  sequence = [(FAR, CLOSE), (ALSO_REAL, CLOSE), (FAR, ALSO_REAL), (CLOSE, FAR), (FAR, CLOSE),
              (FAR, CLOSE), (FAR, CLOSE)]
  oracle_p = [_oracle_test(REAL, new, old)[2] for new, old in sequence]
  expected = _oracle_schedule(oracle_p)
  state = lr_adaptation.LrAdaptation(base_learning_rates=(5e-4, 2e-4))
  for (new, old), p, (failures, factor) in zip(sequence, oracle_p, expected):
    logged = state.test(REAL, new, old)
    np.testing.assert_allclose(logged["p_value"].numpy(), p, rtol=1e-7, atol=1e-12)
    assert int(logged["failures"]) == failures == int(state.failures)
    assert float(state.lr_factor) == pytest.approx(factor)
    np.testing.assert_allclose([float(lr) for lr in logged["learning_rates"]],
                               [5e-4 * factor, 2e-4 * factor], rtol=1e-6)
  assert int(state.num_tests) == len(sequence)
  assert float(state.lr_factor) < 1.0  # the sequence does decay


def test_learning_rates_are_floored():
  state = lr_adaptation.LrAdaptation(base_learning_rates=(8e-6, 2e-6), patience=1, lr_floor=1e-6)
  for _ in range(6):
    state.test(REAL, FAR, CLOSE)
  assert [float(lr) for lr in state.learning_rates()] == pytest.approx([1e-6, 1e-6])
  assert float(state.lr_factor) == pytest.approx(1e-6 / 8e-6)


def test_state_is_checkpointed(tmp_path):
  state = lr_adaptation.LrAdaptation.from_config(EvalConfig(lr_adaptation_patience=2), (1e-4, 1e-4))
  for new, old in [(FAR, CLOSE), (FAR, CLOSE), (FAR, CLOSE)]:
    state.test(REAL, new, old)
  path = tf.train.Checkpoint(lr_adaptation=state).save(str(tmp_path / "ckpt"))
  restored = lr_adaptation.LrAdaptation((1e-4, 1e-4), patience=2)
  tf.train.Checkpoint(lr_adaptation=restored).restore(path).assert_consumed()
  assert int(restored.failures) == 1 and float(restored.lr_factor) == pytest.approx(0.5)
  assert int(restored.num_tests) == 3
  np.testing.assert_allclose(restored.last_p_value.numpy(), state.last_p_value.numpy())


def test_state_works_under_a_strategy(two_replica_strategy):
  with two_replica_strategy.scope():
    state = lr_adaptation.LrAdaptation((1e-4, 5e-5), patience=1)
  logged = tf.function(state.test)(REAL, FAR, CLOSE)  # cross-replica context, as in the trainer
  assert bool(logged["decayed"])
  copies = two_replica_strategy.experimental_local_results(state.lr_factor)
  assert len(copies) == 2 and all(c.numpy() == pytest.approx(0.5) for c in copies)


def test_bad_settings_are_errors():
  with pytest.raises(ValueError, match="base_learning_rates"):
    lr_adaptation.LrAdaptation(base_learning_rates=(0.0,))
  with pytest.raises(ValueError, match="decay=1.5"):
    lr_adaptation.LrAdaptation((1e-4,), decay=1.5)


def test_fake_code_history_returns_the_lagged_codes(tmp_path):
  history = lr_adaptation.FakeCodeHistory(lag=3, num_codes=2, dim=2)
  for step in range(6):
    history.push(np.full((2, 2), step, np.float32))
    assert bool(history.ready()) == (step >= 3)
    np.testing.assert_array_equal(history.newest().numpy(), np.full((2, 2), step))
    if step >= 3:
      np.testing.assert_array_equal(history.lagged().numpy(), np.full((2, 2), step - 3))
  path = tf.train.Checkpoint(history=history).save(str(tmp_path / "ckpt"))
  restored = lr_adaptation.FakeCodeHistory(lag=3, num_codes=2, dim=2)
  tf.train.Checkpoint(history=restored).restore(path)
  np.testing.assert_array_equal(restored.lagged().numpy(), np.full((2, 2), 2))


# --- the trainer's adapter: codes on disk, decisions applied to real optimizers, state restored ---



def _adapter(tmp_path, scripted_codes, **eval_overrides):
  eval_cfg = dataclasses.replace(EvalConfig(lr_adaptation=True, lr_adaptation_every=2, lr_adaptation_lag=1),
                                 **eval_overrides)
  variable = keras.Variable(np.zeros(3, np.float32))
  optimizers = (keras.optimizers.Adam(4e-4), keras.optimizers.Adam(1e-4))
  for optimizer in optimizers:
    optimizer.build([variable])
  fake_codes = lambda generator, step: tf.constant(scripted_codes[step], tf.float32)
  return adaptation.KidLrAdapter(eval_cfg, optimizers, (4e-4, 1e-4), REAL, fake_codes, str(tmp_path)), optimizers


def test_adapter_decays_after_three_failures_and_prunes_old_codes(tmp_path):
  # Memory 1: every test is against the one remembered set; a failure keeps it (the new set is dropped).
  drifting = {step: RNG.normal(0.15 * step, 1.0, size=(M, DIM)) for step in range(2, 12, 2)}
  adapter, (critic_opt, generator_opt) = _adapter(tmp_path, drifting)
  assert adapter({}, 2) == {"lr_adaptation/memory": 1.0}  # filling the memory, nothing to compare with
  decisions = [adapter({}, step) for step in (4, 6, 8)]
  for step, decision in zip((4, 6, 8), decisions):
    _, _, p_value = _oracle_test(REAL, drifting[step], drifting[2])
    assert decision["lr_adaptation/old_step"] == 2.0
    assert decision["lr_adaptation/p_value"] == pytest.approx(p_value, rel=1e-5)
    assert p_value > 0.1 and decision["lr_adaptation/failed"] == 1.0
  assert [d["lr_adaptation/decayed"] for d in decisions] == [0.0, 0.0, 1.0]
  assert float(critic_opt.learning_rate.numpy()) == pytest.approx(2e-4)
  assert float(generator_opt.learning_rate.numpy()) == pytest.approx(5e-5)
  # After the decay the memory is the newest set only; nothing else stays on disk.
  assert adapter.state.remembered() == [8]
  assert sorted(os.listdir(tmp_path)) == ["fake_codes_00000008.npy"]


def test_adapter_success_resets_failures_and_keeps_rates(tmp_path):
  improving = {2: FAR, 4: CLOSE}
  adapter, (critic_opt, _) = _adapter(tmp_path, improving)
  adapter({}, 2)
  decision = adapter({}, 4)
  assert decision["lr_adaptation/p_value"] < 0.1 and decision["lr_adaptation/failed"] == 0.0
  assert decision["lr_adaptation/failures"] == 0.0
  assert float(critic_opt.learning_rate.numpy()) == pytest.approx(4e-4)
  assert adapter.state.remembered() == [4]  # a success advances the memory


def _binkowski_scorer(code_sets, memory, keep, patience, floor=1e-5, p_threshold=0.1, decay=0.5):
  """Binkowski's `Scorer` lr schedule (gan/utils/scorer.py) in numpy, with the test of `_oracle_test`.

  Returns one dict per evaluation: None while filling the memory, else the index tested against, p,
  p without the variance floor, the variance, the lr factor and the memory before and after.
  """
  remembered, failures, factor, log = [], 0, 1.0, []
  for index, codes in enumerate(code_sets):
    if len(remembered) < memory:
      remembered.append(index)
      log.append(None)
      continue
    before = list(remembered)
    diff, variance, p_raw = _oracle_test(REAL, codes, code_sets[before[0]])
    p = scipy.stats.norm.cdf(diff / np.sqrt(max(variance, floor)))
    if p > p_threshold:
      failures += 1
      if failures >= patience:
        factor *= decay
        remembered, failures = (remembered + [index])[-keep:], 0
    else:
      remembered, failures = remembered[1:] + [index], 0
    log.append(dict(oldest=before[0], p=p, p_raw=p_raw, variance=variance, factor=factor, before=before,
                    after=list(remembered)))
  return log


def test_adapter_follows_binkowskis_scorer_on_a_scripted_sequence(tmp_path):
  rng = np.random.default_rng(7)
  shifts = [0.9, 0.6, 1.2, 1.4, 0.3, 0.05, 1.0, 0.0]
  code_sets = [rng.normal(shift, 1.0, size=(M, DIM)) for shift in shifts]
  # Two nearly equal tiny code sets: Var(diff) ~ 1e-9, so the 1e-5 floor turns a clear "better" into a failure.
  tiny = 0.004 * rng.normal(size=(M, DIM))
  code_sets = [tiny] + code_sets[:2] + [tiny + 0.0003 * REAL.mean(0)] + code_sets[2:]
  want = _binkowski_scorer(code_sets, memory=3, keep=2, patience=2)
  steps = [2 * (index + 1) for index in range(len(code_sets))]
  adapter, (critic_opt, _) = _adapter(tmp_path, dict(zip(steps, code_sets)), lr_adaptation_lag=3,
                                      lr_adaptation_keep=2, lr_adaptation_patience=2)
  for step, expected in zip(steps, want):
    decision = adapter({}, step)
    if expected is None:
      assert "lr_adaptation/p_value" not in decision
      continue
    assert decision["lr_adaptation/old_step"] == steps[expected["oldest"]]
    assert decision["lr_adaptation/p_value"] == pytest.approx(expected["p"], rel=1e-5, abs=1e-9)
    assert decision["lr_adaptation/lr_factor"] == pytest.approx(expected["factor"])
    assert adapter.state.remembered() == [steps[i] for i in expected["after"]]
    assert float(critic_opt.learning_rate.numpy()) == pytest.approx(4e-4 * expected["factor"])
  # The script exercises every rule: a success, a failure that keeps the memory, a decay that cuts
  # it to `keep` sets, and a test that the floor turned from a success into a failure.
  tested = [w for w in want if w is not None]
  assert any(w["p"] <= 0.1 for w in tested)
  assert any(w["p"] > 0.1 and w["after"] == w["before"] for w in tested)
  assert any(len(w["after"]) == 2 and w["factor"] < 1 for w in tested)
  assert any(w["variance"] < 1e-5 and w["p_raw"] <= 0.1 < w["p"] for w in tested)


def test_adapter_state_round_trips_through_a_checkpoint(tmp_path):
  drifting = {step: RNG.normal(0.2 * step, 1.0, size=(M, DIM)) for step in range(2, 12, 2)}
  adapter, _ = _adapter(tmp_path / "codes", drifting, lr_adaptation_patience=1)
  adapter({}, 2)
  adapter({}, 4)  # one failure with patience 1: factor 0.5
  path = tf.train.Checkpoint(lr_adaptation=adapter.state).save(str(tmp_path / "ckpt"))
  restored, (critic_opt, generator_opt) = _adapter(tmp_path / "codes", drifting, lr_adaptation_patience=1)
  tf.train.Checkpoint(lr_adaptation=restored.state).restore(path).assert_existing_objects_matched()
  restored.apply_learning_rates()
  assert float(restored.state.lr_factor.numpy()) == 0.5
  assert float(critic_opt.learning_rate.numpy()) == pytest.approx(2e-4)
  assert float(generator_opt.learning_rate.numpy()) == pytest.approx(5e-5)
  # The decay cut the memory to the newest set (step 4): the restored adapter tests step 6 against it.
  assert restored.state.remembered() == [4]
  assert restored({}, 6)["lr_adaptation/old_step"] == 4.0


def test_adapter_skips_a_corrupt_old_code_file(tmp_path):
  adapter, _ = _adapter(tmp_path, {2: FAR, 4: CLOSE})
  adapter({}, 2)
  (tmp_path / "fake_codes_00000002.npy").write_bytes(b"not a numpy file")
  assert adapter({}, 4) == {}
  assert adapter.state.remembered() == [4]  # the unreadable set left the memory


def test_code_sets_are_taken_when_the_reference_scorers_take_them():
  # Binkowski's and Arbel's scorers run after the generator update of their 0-based step s, s % every == 0
  # (s = 0 included): our steps 1, every + 1, ...; with a memory of 10 sets the first test is at 20,001.

  every = 2000
  taken = [s for s in range(0, 20002) if adaptation.is_test_step(s, every)]
  assert taken[:3] == [1, 2001, 4001] and len(taken) == 11 and taken[10] == 20001
  assert [adaptation.next_test_step(c, every) for c in (0, 1, 2000, 2001)] == [1, 2001, 2001, 4001]
  assert all(adaptation.is_test_step(s, 1) for s in range(1, 5)) and not adaptation.is_test_step(0, 1)
