"""The suite's tiers: the default run leaves the slow tier out, named tests run whatever their tier, and an
entry of tests/slow_tests.txt that names no test is found (a renamed test would move into the fast tier)."""

import subprocess
import sys

from helpers import ROOT, is_slow, slow_tests, unmatched_entries


def test_slow_entries_match_a_function_or_one_parametrization_and_stale_ones_are_named():
  entries = {"tests/test_a.py::test_one", "tests/test_a.py::test_two[x-1]", "tests/test_b.py::test_gone"}
  assert is_slow("tests/test_a.py::test_one", entries) and is_slow("tests/test_a.py::test_one[p]", entries)
  assert is_slow("tests/test_a.py::test_two[x-1]", entries) and not is_slow("tests/test_a.py::test_two[y]", entries)
  assert not is_slow("tests/test_a.py::test_one_more", entries)
  nodeids = ["tests/test_a.py::test_one[p]", "tests/test_a.py::test_two[x-1]", "tests/test_a.py::test_two[y]"]
  assert unmatched_entries(entries, nodeids) == ["tests/test_b.py::test_gone"]
  assert len(slow_tests()) > 20 and all("::test_" in entry for entry in slow_tests())


def test_the_default_run_leaves_the_slow_tier_out_and_named_tests_run():
  def collected(*args):
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-n0", "-p",
                             "no:cacheprovider", *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            check=False)
    return {line for line in result.stdout.splitlines() if "::" in line}
  named = "tests/test_train.py"
  in_file = collected(named)
  fast = collected("--tier=fast", named)
  slow = collected("--tier=slow", named)
  assert "tests/test_train.py::test_sigkill_then_rerun_resumes" in in_file  # named: every tier
  assert "tests/test_train.py::test_sigkill_then_rerun_resumes" in slow - fast
  assert "tests/test_train.py::test_resume_continues_step_optimizer_and_noise" in fast - slow
  assert fast | slow == in_file and not fast & slow
