"""tools/quality.py end to end on a tiny budget: two configurations, KID at 3 points, JSON/table/plot/grids."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from helpers import ROOT, asset_path, tool_env
from mmd_gan_tf import kernel_health

sys.path.insert(0, str(ROOT))
from tools import quality  # noqa: E402  pylint: disable=wrong-import-position


def test_parse_configs_and_budget_errors():
  configs = quality.parse_configs(["rep"], ["fast:--loss=rep --critic_lr=1e-3"])
  assert configs == {"rep": ["--loss=rep"], "fast": ["--loss=rep", "--critic_lr=1e-3"]}
  with pytest.raises(ValueError, match="given twice"):
    quality.parse_configs(["rep"], ["rep:--loss=hinge"])
  with pytest.raises(ValueError, match="at least one"):
    quality.parse_configs([], [])
  with pytest.raises(ValueError, match="not both"):
    quality.budget_flags(10, 1.0, 2)
  assert quality.budget_flags(8, None, 4) == ["--steps=8", "--eval_every=2"]
  assert "--max_train_minutes=2.0" in quality.budget_flags(None, 2.0, 4)


def test_out_never_replaces_a_users_files_and_odd_eval_lines_are_skipped(tmp_path):
  """--out holding a table.md or results.json of the user's was overwritten; an eval.jsonl line without a
  step was a KeyError."""
  quality.check_out(str(tmp_path / "new"))
  quality.check_out(str(tmp_path))  # empty
  (tmp_path / "runs").mkdir()
  quality.check_out(str(tmp_path))  # an interrupted first configuration: only its run so far
  (tmp_path / "table.md").write_text("notes\n")
  (tmp_path / "results.json").write_text("x\n")
  with pytest.raises(ValueError, match=r"--out=.* holds results.json, table.md but no results.json of an "
                                       r"earlier run of this tool"):
    quality.check_out(str(tmp_path))
  assert (tmp_path / "table.md").read_text() == "notes\n"
  result = subprocess.run([sys.executable, str(ROOT / "tools" / "quality.py"), f"--out={tmp_path}", "--losses=rep",
                           "--steps=2"], capture_output=True, text=True, timeout=120, check=False, env=tool_env())
  assert result.returncode == 2 and "but no results.json of an earlier run" in result.stderr, result.stderr[-600:]
  assert not (tmp_path / "runs" / "rep").exists() and (tmp_path / "table.md").read_text() == "notes\n"
  (tmp_path / "results.json").write_text(json.dumps({"configs": {}, "command": "tools/quality.py"}))
  quality.check_out(str(tmp_path))  # an earlier output of the tool is updated
  (tmp_path / "file").write_text("")
  with pytest.raises(ValueError, match="exists and is not a folder"):
    quality.check_out(str(tmp_path / "file"))
  run = tmp_path / "run"
  run.mkdir()
  (run / "eval.jsonl").write_text('{"kid": 0.5}\n[1]\n{"step": 2, "kid": 0.4, "train_seconds": 1.0}\n{"step"\n')
  assert [r["step"] for r in quality.read_records(str(run))] == [2]


def test_seeds_expand_seed_major_and_refuse_a_given_seed():
  configs = {"rep": ["--loss=rep"], "hinge": ["--loss=hinge"]}
  assert quality.expand_seeds(configs, 1) == configs
  assert quality.expand_seeds(configs, 2) == {
      "rep_s0": ["--loss=rep", "--seed=0"], "hinge_s0": ["--loss=hinge", "--seed=0"],
      "rep_s1": ["--loss=rep", "--seed=1"], "hinge_s1": ["--loss=hinge", "--seed=1"]}
  assert list(quality.expand_seeds(configs, 2)) == ["rep_s0", "hinge_s0", "rep_s1", "hinge_s1"]
  with pytest.raises(ValueError, match="sets --seed"):
    quality.expand_seeds({"x": ["--seed=3"]}, 2)
  with pytest.raises(ValueError, match="--seeds=0"):
    quality.expand_seeds(configs, 0)


def test_kernel_state_names_wangs_saturation_and_the_all_zero_state():
  assert kernel_health.kernel_state(0.0, 1.0, 0.0) == "saturated"
  assert kernel_health.kernel_state(0.01, 0.97, 0.02) == "saturated"
  assert kernel_health.kernel_state(1e-4, 1e-3, 1e-4) == "all-zero"
  assert kernel_health.kernel_state(0.19, 0.88, 0.39) == "healthy"  # rep_b's means on MNIST
  assert kernel_health.kernel_state(0.0, 0.9, 0.0) == "healthy"  # fake features not collapsed
  # The last fifth of the logged steps is averaged: one late outlier does not decide.
  scalars = {"kernel/real_real": [(s, 0.0) for s in range(10)],
             "kernel/fake_fake": [(s, 1.0) for s in range(9)] + [(9, 0.9)],
             "kernel/real_fake": [(s, 0.0) for s in range(10)]}
  assert quality.final_kernel_means(scalars) == pytest.approx((0.0, 0.95, 0.0))
  assert quality.final_kernel_means({"kernel/real_real": []}) is None


def test_over_seeds_mean_std_states_and_median():
  def run(*kids):
    return {"points": [{"step": 10 * (i + 1), "kid": k} for i, k in enumerate(kids)]}
  results = {"rep_s0": run(0.5, 0.30), "rep_s1": run(0.5, 0.10), "rep_s2": run(0.5, 0.20), "hinge_s0": run(0.4)}
  states = {"rep_s0": "saturated", "rep_s1": "healthy", "rep_s2": "all-zero", "hinge_s0": None}
  summary = quality.over_seeds(results, ["rep", "hinge", "absent"], 3, states)
  assert set(summary) == {"rep", "hinge"}
  row = summary["rep"]
  assert row["kid"] == [0.30, 0.10, 0.20] and row["steps"] == [20, 20, 20]
  assert row["kid_mean"] == pytest.approx(0.2)
  assert row["kid_std"] == pytest.approx(0.1)  # ddof 1: sqrt((0.01 + 0.01 + 0) / 2)
  assert row["median_run"] == "rep_s2"
  assert row["stuck_fraction"] == pytest.approx(2 / 3)
  assert summary["hinge"]["kid_std"] == 0.0 and summary["hinge"]["stuck_fraction"] is None
  table = quality.seeds_table(summary).splitlines()
  assert table[2] == ("| rep | 3 | 20 | 200.0 +- 100.0 | 300.0, 100.0, 200.0 | saturated, healthy, all-zero "
                      "| 67% |")


@pytest.mark.end_to_end
def test_two_configurations_end_to_end(tmp_path):
  weights = asset_path("inception/fid_inception_v3_2015_12_05.npz")
  out = tmp_path / "quality"
  command = [sys.executable, str(ROOT / "tools" / "quality.py"), f"--out={out}", "--losses=rep",
             "--config=hinge_small:--loss=hinge --critic_dim=4", "--steps=4", "--eval_points=2",
             "--num_samples=12", "--kid_subset_size=6", "--kid_subsets=2", f"--inception_weights={weights}",
             "--poll_seconds=1",
             "--common=--arch=li --width=0.0625 --batch_size=4 --cpu_devices=1 --log_every=2 --sample_every=2 "
             "--checkpoint_every=2"]
  result = subprocess.run(command, capture_output=True, text=True, cwd=str(tmp_path), timeout=900,
                          check=False, env=tool_env())
  assert result.returncode == 0, result.stderr[-3000:]
  assert "[hinge_small] step       4" in result.stdout  # progress on the console
  summary = json.loads((out / "results.json").read_text())
  assert set(summary["configs"]) == {"rep", "hinge_small"}
  for config in summary["configs"].values():
    # the baseline after step 1, then every 4 // 2 = 2 steps
    assert [p["step"] for p in config["points"]] == [1, 2, 4]
    assert all(p["kid_std"] >= 0 and p["num_samples"] == 12 and p["train_seconds"] > 0
               for p in config["points"])
    assert "--loss=" in config["command"]
  table = (out / "table.md").read_text().splitlines()
  assert table[0].startswith("| config |") and len(table) == 2 + 6
  with Image.open(out / "kid.png") as plot:
    assert plot.size[0] > 600
  assert sorted(os.listdir(out / "grids")) == ["hinge_small.png", "rep.png"]
  # Re-running finds the finished runs: the same points, no new training.
  again = subprocess.run(command, capture_output=True, text=True, cwd=str(tmp_path), timeout=900, check=False,
                         env=tool_env())
  assert again.returncode == 0, again.stderr[-3000:]
  assert again.stdout.count("finished earlier with the same command: skipped") == 2  # no main.py started
  assert json.loads((out / "results.json").read_text())["configs"]["rep"]["points"] == \
      summary["configs"]["rep"]["points"]
  # Another command into the same --out (one configuration, the other's run folder gone) keeps the earlier
  # results: a later rerun of the first command would otherwise train them again.
  shutil.rmtree(out / "runs" / "hinge_small")
  other = subprocess.run([arg for arg in command if not arg.startswith("--config=")], capture_output=True,
                         text=True, cwd=str(tmp_path), timeout=900, check=False, env=tool_env())
  assert other.returncode == 0, other.stderr[-3000:]
  kept = json.loads((out / "results.json").read_text())["configs"]
  assert kept["hinge_small"] == summary["configs"]["hinge_small"] and set(kept) == {"rep", "hinge_small"}
  assert len((out / "table.md").read_text().splitlines()) == 2 + 6


@pytest.mark.end_to_end
def test_a_stop_signal_reaches_the_run_once_and_the_tool_exits_resumable(tmp_path):
  """SIGTERM to the tool (or its process group) left main.py training as an orphan, or made the tool exit 143
  with nothing said; now every stop signal (SIGTERM, SIGINT, SIGHUP) reaches the run once, the run saves its
  step, the tool exits 75, and the same command continues."""
  import signal  # pylint: disable=import-outside-toplevel
  import time  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import checkpointing  # pylint: disable=import-outside-toplevel
  out = tmp_path / "quality"
  command = [sys.executable, str(ROOT / "tools" / "quality.py"), f"--out={out}", "--losses=rep", "--steps=5000",
             "--eval_points=1", "--num_samples=12", "--kid_subset_size=6", "--kid_subsets=2",
             f"--inception_weights={asset_path('inception/fid_inception_v3_2015_12_05.npz')}", "--poll_seconds=1",
             "--common=--arch=li --width=0.0625 --batch_size=4 --cpu_devices=1 --log_every=1 --checkpoint_every=5000"]
  tool = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(tmp_path),
                          env=tool_env(), start_new_session=True)
  log = out / "logs" / "rep.log"
  deadline = time.monotonic() + 300
  while time.monotonic() < deadline and not (log.exists() and "step 3/" in log.read_text(errors="replace")):
    time.sleep(0.5)
  assert log.exists() and "step 3/" in log.read_text(errors="replace"), "the run did not start training"
  # Ctrl-C in a terminal: the whole process group. Had the run been in it, it would have seen two (the
  # terminal's and the forwarded one) and stopped without saving.
  os.killpg(tool.pid, signal.SIGINT)
  _, stderr = tool.communicate(timeout=300)
  assert tool.returncode == 75 and "interrupted: [rep] interrupted: its run saved its step" in stderr, stderr[-800:]
  workdir = out / "runs" / "rep"
  assert checkpointing.checkpoints_on_disk(str(workdir / "checkpoints"))  # the interrupted step was saved
  checkpointing.WorkdirLock(str(workdir)).release()  # no main.py left holding the run


def test_a_changed_command_is_refused_where_its_run_already_exists(tmp_path):
  """A rerun with another --common said "done" with the old run's points: main.py had resumed that run at
  its last step and trained nothing."""
  workdir = tmp_path / "runs" / "rep"
  workdir.mkdir(parents=True)
  command = [sys.executable, "main.py", "--loss=rep", "--batch_size=16", f"--workdir={workdir}"]
  earlier = {"command": "main.py --loss=rep --batch_size=8 --workdir=" + str(workdir), "finished": True,
             "points": [{"step": 4, "kid": 0.5}]}
  with pytest.raises(RuntimeError, match=r"\[rep\] its run .*rep was made by another command \(main.py --loss=rep "
                                         r"--batch_size=8 .*\); give another --out"):
    quality.run_config("rep", command, str(tmp_path), earlier)


def test_a_finished_record_outlives_a_shorter_restart_in_its_folder(tmp_path):
  """A finished run's folder later held a restart of the same name stopped at its first evaluation: the record
  (KID at 1500, end state) was replaced by that restart's step-1 KID and kernel state."""
  workdir = tmp_path / "runs" / "rep_s0"
  workdir.mkdir(parents=True)
  (workdir / "eval.jsonl").write_text('{"step": 1, "train_seconds": 2.0, "kid": 0.52, "kid_std": 0.01}\n')
  command = [sys.executable, "main.py", "--loss=rep", f"--workdir={workdir}"]
  points = [{"step": 1, "train_seconds": 1.0, "kid": 0.51, "kid_std": 0.01},
            {"step": 1500, "train_seconds": 900.0, "kid": 0.18, "kid_std": 0.01}]
  earlier = {"command": "main.py --loss=rep --workdir=" + str(workdir), "workdir": str(workdir), "finished": True,
             "points": points, "grid": "grids/rep_s0.png", "state": "healthy"}
  result = quality.run_config("rep_s0", command, str(tmp_path), earlier)
  assert result["points"] == points and result["grid"] == "grids/rep_s0.png"
  assert quality._state(result) == "healthy"  # pylint: disable=protected-access
  # The folder that does hold the finished run is read (its records may be newer than the copy in the record).
  (workdir / "eval.jsonl").write_text("".join(json.dumps(dict(p, kid=p["kid"] + 0.001)) + "\n" for p in points))
  result = quality.run_config("rep_s0", command, str(tmp_path), earlier)
  assert [p["kid"] for p in result["points"]] == pytest.approx([0.511, 0.181])
  assert quality._state(result) is None  # pylint: disable=protected-access  (no kernel scalars in that folder)


def _quality_main(monkeypatch, *argv):
  """tools/quality.py ARGV in this process (its flags on a FlagValues of their own); starting a main.py child
  is a test failure."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  flag_values = flags.FlagValues()
  quality.define_flags(flag_values)
  flag_values(["quality.py", *argv])
  monkeypatch.setattr(quality, "FLAGS", flag_values)
  monkeypatch.setattr(quality, "install_signal_forwarding", lambda: None)

  def no_child(name, command, out, earlier=None):
    raise AssertionError(f"[{name}] main.py was started: {command}")

  monkeypatch.setattr(quality, "run_config", no_child)
  return quality.main(["quality.py"])


# (flags, the one-line error) that quality.py itself refuses, before main.py starts.
_REFUSED = {
    "unknown_loss": (("--losses=rep,bogus",), r"^--losses=rep,bogus: unknown loss 'bogus'; known: .*\brep_b\b"),
    "no_samples": (("--losses=rep", "--num_samples=0"), r"^--num_samples=0 must be >= 1$"),
    "no_real": (("--losses=rep", "--num_real=0"), r"^--num_real=0 must be >= 1$"),
    "no_subset": (("--losses=rep", "--kid_subset_size=0"), r"^--kid_subset_size=0 must be >= 1$"),
    "no_subsets": (("--losses=rep", "--kid_subsets=-1"), r"^--kid_subsets=-1 must be >= 1$"),
    "no_poll": (("--losses=rep", "--poll_seconds=0"), r"^--poll_seconds=0 must be >= 1$"),
    "nan_minutes": (("--losses=rep", "--minutes=nan"), r"^--minutes=nan must be a finite number > 0$"),
    "inf_minutes": (("--losses=rep", "--minutes=inf"), r"^--minutes=inf must be a finite number > 0$"),
    "no_colon": (("--config=bad",), r"^--config=bad must be NAME:FLAGS, e\.g\. --config='rep_fast:--loss=rep "),
    "main_flag": (("--losses=rep", "--common=--batch_size=1"),
                  r"^configuration 'rep': --batch_size=1 must be >= 2"),
    "unknown_main_flag": (("--losses=rep", "--common=--no_such_flag=3"),
                          r"^configuration 'rep': .*no_such_flag"),
    # What the tool sets for every run itself: a user's value was silently overridden (the last flag wins).
    "owned_steps": (("--losses=rep", "--common=--steps=100 --width=0.25"),
                    r"^configuration 'rep': --steps=100 is set by this tool for every run"),
    "owned_workdir": (("--config=long:--loss=rep --workdir=/tmp/elsewhere",),
                      r"^configuration 'long': --workdir=/tmp/elsewhere is set by this tool"),
    "owned_eval": (("--losses=rep", "--common=--eval_every=0"), r"^configuration 'rep': --eval_every=0 is set"),
    "owned_fid": (("--losses=rep", "--common=--nofid"), r"^configuration 'rep': --nofid is set by this tool"),
    "dry_run": (("--losses=rep", "--common=--dry_run"), r"^configuration 'rep': --dry_run is set by this tool"),
    # An unclosed quote: one line naming the flag (it was "No closing quotation" alone).
    "common_quote": (("--losses=rep", "--common=--width='0.25"), r"^--common=--width='0\.25: No closing quotation"),
    "config_quote": (("--config=a:--loss=rep --width=\"1",), r"^--config=a:--loss=rep --width=\"1: No closing "),
    "common_twice": (("--losses=rep", "--common=--width=0.25 --width=0.5"),
                     r"^configuration 'rep': --width is given twice \(--width=0\.25, then --width=0\.5\); give it once$"),
    # Weights that cannot be found: refused before OUT/logs/ is written (the first main.py found out).
    "no_weights": (("--losses=rep", "--inception_weights=/nowhere/w.npz"), r"^every configuration computes KID "
                   r"with the FID Inception weights: --inception_weights=/nowhere/w.npz: no such file"),
}


@pytest.mark.parametrize("case", list(_REFUSED))
def test_bad_flags_are_refused_before_anything_is_written(tmp_path, monkeypatch, case):
  """--losses=bogus, --num_samples=0, --kid_subset_size=0, --minutes=nan started main.py (which failed) after
  OUT/logs/ was written; --config=bad trained a default configuration named "bad"."""
  argv, message = _REFUSED[case]
  with pytest.raises(ValueError, match=message):
    budget = [] if any(arg.startswith("--minutes=") for arg in argv) else ["--steps=2"]
    _quality_main(monkeypatch, f"--out={tmp_path / 'out'}", *budget, *argv)
  assert not (tmp_path / "out").exists()


def test_out_that_is_a_training_run_is_refused_before_anything_is_written(tmp_path, monkeypatch):
  """--out=RUN wrote RUN/logs/ (and would have put the configurations' runs inside that run)."""
  run = tmp_path / "run"
  (run / "checkpoints").mkdir(parents=True)
  (run / "config.json").write_text("{}")
  for out, where in ((run, "a training run"), (run / "quality", f"inside the training run {run}")):
    with pytest.raises(ValueError, match=rf"^--out={out} is {where}: the configurations' runs and logs would be "
                                         r"written into that run's folder; give another --out$"):
      _quality_main(monkeypatch, f"--out={out}", "--losses=rep", "--steps=2")
  with pytest.raises(ValueError, match=r"^--out=.*checkpoints is inside the run .* \(its checkpoints/\)"):
    quality.check_out(str(run / "checkpoints"))
  assert sorted(os.listdir(run)) == ["checkpoints", "config.json"] and not os.listdir(run / "checkpoints")


def test_a_users_own_log_file_is_refused(tmp_path, monkeypatch):
  """OUT/logs/NAME.log of the user's got main.py's output appended to it."""
  logs = tmp_path / "logs"
  logs.mkdir()
  (logs / "rep.log").write_text("my notes\n")
  with pytest.raises(ValueError, match=rf"^--out={tmp_path}: logs/rep.log exists and was not written by this "
                                       r"tool for configuration 'rep'; move it or give another --out$"):
    _quality_main(monkeypatch, f"--out={tmp_path}", "--losses=rep", "--steps=2")
  assert (logs / "rep.log").read_text() == "my notes\n" and sorted(os.listdir(tmp_path)) == ["logs"]
  # The tool's own logs: its first line names the configuration, or the run folder or results.json has it.
  (logs / "hinge.log").write_text("tools/quality.py [hinge] main.py --loss=hinge\n")
  (tmp_path / "runs" / "rep").mkdir(parents=True)
  (logs / "mmd.log").write_text("older log\n")
  quality.check_logs(str(tmp_path), ["rep", "hinge", "mmd", "new"], {"mmd": {"command": "main.py --loss=mmd"}})
  with pytest.raises(ValueError, match="logs/mmd.log exists"):
    quality.check_logs(str(tmp_path), ["mmd"], {})


def test_each_command_is_checked_as_main_py_would_and_resolves_the_preset_steps(tmp_path, monkeypatch):
  monkeypatch.setattr(quality, "FLAGS", _parsed(f"--out={tmp_path}", "--num_samples=12", "--kid_subset_size=6"))
  command = quality.run_command("rep", ["--loss=rep", "--v=1"], str(tmp_path))
  steps = quality.main_config(["--loss=rep"]).train.steps
  assert f"--eval_every={steps // 4}" in command and command[-1] == f"--workdir={tmp_path / 'runs' / 'rep'}"
  assert not os.listdir(tmp_path)
  # A configuration's own value replaces --common's (main.py refuses a flag given twice).
  monkeypatch.setattr(quality, "FLAGS", _parsed(f"--out={tmp_path}", "--num_samples=12", "--kid_subset_size=6",
                                                "--steps=4", "--common=--width=0.25 --nomixed_precision"))
  command = quality.run_command("wide", ["--loss=rep", "--width=0.5", "--mixed_precision=true"], str(tmp_path))
  assert [arg for arg in command if "width" in arg or "mixed_precision" in arg] == [
      "--width=0.5", "--mixed_precision=true"]


def _parsed(*argv):
  from absl import flags  # pylint: disable=import-outside-toplevel
  flag_values = flags.FlagValues()
  quality.define_flags(flag_values)
  flag_values(["quality.py", *argv])
  return flag_values


def test_the_tools_own_log_is_recognised_by_its_first_line(tmp_path, monkeypatch):
  """A configuration whose main.py failed before making its run folder: the log is still the tool's."""
  monkeypatch.setattr(quality, "FLAGS", _parsed(f"--out={tmp_path}", "--poll_seconds=1"))
  workdir = tmp_path / "runs" / "rep"
  with pytest.raises(RuntimeError, match="wrote no evaluation"):
    quality.run_config("rep", [sys.executable, "-c", "print('child')", f"--workdir={workdir}"], str(tmp_path))
  log = (tmp_path / "logs" / "rep.log").read_text().splitlines()
  assert log[0].startswith("tools/quality.py [rep] -c ") and log[1] == "child" and not workdir.exists()
  quality.check_logs(str(tmp_path), ["rep"], {})
