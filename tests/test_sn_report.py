"""tools/sn_report.py: the per-layer sigma estimates of a trained run against converged power iterations."""

import logging
import sys

import numpy as np
import pytest

from helpers import ROOT

sys.path.insert(0, str(ROOT))
from tools import sn_report  # noqa: E402  pylint: disable=wrong-import-position


def test_report_of_a_trained_run(trained_run):
  workdir, _ = trained_run
  result = sn_report.report(str(workdir), iterations=200)
  assert result["step"] == 4 and len(result["layers"]) == 8
  for layer in result["layers"]:
    # Three power iterations from a random start underestimate sigma; converged iterations never go down.
    assert layer["sigma_converged"] >= layer["sigma_estimate"] * (1 - 1e-4)
    assert layer["multiplier"] == pytest.approx(64 ** (1 / 8))  # Wang's C = 64^(1/L), L = 8 layers
  bound = np.prod([layer["multiplier"] * layer["ratio"] for layer in result["layers"]])
  assert result["lipschitz_bound"] == pytest.approx(bound) and bound > 64.0  # C^L times the underestimates


def test_feature_geometry_against_a_float64_loop():
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)) * 3.0
  bandwidth = 2.0
  geometry = sn_report.feature_geometry(real, fake, bandwidth)
  pairs = {"real_real": [np.linalg.norm(a - b) for i, a in enumerate(real) for j, b in enumerate(real) if i != j],
           "fake_fake": [np.linalg.norm(a - b) for i, a in enumerate(fake) for j, b in enumerate(fake) if i != j],
           "real_fake": [np.linalg.norm(a - b) for a in real for b in fake]}
  for name, distances in pairs.items():
    scaled = np.array(distances) / bandwidth
    assert geometry[name]["median_distance"] == pytest.approx(np.median(scaled), rel=1e-9)
    assert geometry[name]["p10_distance"] == pytest.approx(np.percentile(scaled, 10), rel=1e-9)
    assert geometry[name]["kernel_mean"] == pytest.approx(np.mean(np.exp(-scaled ** 2 / 2)), rel=1e-9)
  assert geometry["feature_norm_fake"] == pytest.approx(np.linalg.norm(fake, axis=1).mean())
  # Scaling every feature by 10 scales every distance by 10: the "all kernel means near 0" failure.
  scaled_up = sn_report.feature_geometry(real * 10, fake * 10, bandwidth)
  assert scaled_up["real_fake"]["median_distance"] == pytest.approx(10 * geometry["real_fake"]["median_distance"])
  assert scaled_up["real_fake"]["kernel_mean"] < geometry["real_fake"]["kernel_mean"]


def test_features_of_a_trained_run_and_a_chosen_checkpoint(trained_run):
  workdir, _ = trained_run
  earlier = str(workdir / "checkpoints" / "ckpt-2")
  result = sn_report.report(str(workdir), iterations=5, checkpoint_path=earlier, features=16)
  assert result["step"] == 2 and result["checkpoint"] == earlier
  geometry = result["features"]
  assert geometry["bandwidth"] == 1.0  # Wang's single Gaussian bandwidth
  for name in ("real_real", "fake_fake", "real_fake"):
    assert 0.0 < geometry[name]["kernel_mean"] <= 1.0 and geometry[name]["median_distance"] > 0.0
  assert geometry["feature_norm_real"] > 0.0 and geometry["feature_norm_fake"] > 0.0
  with pytest.raises(ValueError, match="--features=1 must be 0"):
    sn_report.report(str(workdir), iterations=1, features=1)
  # A missing or non-checkpoint --checkpoint is one line (it was a NotFoundError / DataLossError traceback).
  (workdir.parent / "notes.txt").write_text("x")
  for bad in (workdir / "checkpoints" / "ckpt-99", workdir.parent / "notes.txt"):
    with pytest.raises(ValueError, match=rf"--checkpoint={bad} is not a readable checkpoint"):
      sn_report.report(str(workdir), iterations=1, checkpoint_path=str(bad))


def test_report_and_plot_outputs_never_replace_a_runs_files_or_a_users(trained_run, tmp_path):
  """sn_report.py --out replaced a checkpoint's index file; plot_scalars.py --out=RUN/config a run's config."""
  from tools import plot_scalars  # pylint: disable=import-outside-toplevel
  workdir = trained_run[0]
  for out in (workdir / "checkpoints" / "ckpt-4.index", workdir / "export" / "report.json"):
    with pytest.raises(ValueError, match="is inside the"):
      sn_report.check_out(str(out))
  (tmp_path / "notes.json").write_text('{"mine": 1}')
  with pytest.raises(ValueError, match="exists and is not a report of this tool"):
    sn_report.check_out(str(tmp_path / "notes.json"))
  (tmp_path / "earlier.json").write_text('{"checkpoint": "x", "layers": []}')
  sn_report.check_out(str(tmp_path / "earlier.json"))
  sn_report.check_out(str(tmp_path / "new.json"))
  with pytest.raises(ValueError, match=r"is inside the run .* \(its config.json\)"):
    plot_scalars.check_out(str(workdir / "config"))  # would replace the run's config.json
  with pytest.raises(ValueError, match="exist\\(s\\) and are not an earlier output"):
    plot_scalars.check_out(str(tmp_path / "notes"))
  with pytest.raises(ValueError, match="is inside the run"):
    plot_scalars.check_out(str(workdir / "samples" / "scalars"))
  # A user's JSON object of objects (or an empty one) is not an earlier output: it was replaced with .md and .png.
  for theirs in ('{"model": {"lr": 0.1}, "data": {"name": "mine"}}', "{}", '{"run": {"tag": [[1, 2, 3]]}}'):
    (tmp_path / "results.json").write_text(theirs)
    with pytest.raises(ValueError, match="exist\\(s\\) and are not an earlier output"):
      plot_scalars.check_out(str(tmp_path / "results"))
  (tmp_path / "scalars.json").write_text('{"run": {"loss/critic": [[1, 0.5]]}}')
  plot_scalars.check_out(str(tmp_path / "scalars"))  # an earlier output is replaced
  plot_scalars.check_out(str(tmp_path / "fresh"))


def test_fewer_than_one_power_iteration_is_refused(tmp_path):
  """--iterations=0 or -1 reported the estimate as "converged" (ratio 1.000, bound = intended) and exited 0."""
  for iterations in (0, -1):
    with pytest.raises(ValueError, match=rf"^--iterations={iterations} must be >= 1$"):
      sn_report.report(str(tmp_path), iterations=iterations)


def _scalar_run(workdir, series):
  """A run folder whose tensorboard/ holds `series` ({tag: [(step, value), ...]}), as the trainer logs them."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  writer = tf.summary.create_file_writer(str(workdir / "tensorboard"))
  with writer.as_default():
    for tag, points in series.items():
      for step, value in points:
        tf.summary.scalar(tag, value, step=step)
  writer.close()
  return str(workdir)


def _plot_scalars_main(monkeypatch, *argv):
  """tools/plot_scalars.py ARGV in this process (its flags on a FlagValues of their own)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  from tools import plot_scalars  # pylint: disable=import-outside-toplevel
  flag_values = flags.FlagValues()
  plot_scalars.define_flags(flag_values)
  flag_values(["plot_scalars.py", *argv])
  monkeypatch.setattr(plot_scalars, "FLAGS", flag_values)
  return plot_scalars.main([])


# (flags, the one-line error); FIRST and SECOND stand for the two runs' folders.
_REFUSED_PLOTS = {
    "every_zero": (("--every=0", "--run=a:FIRST"), r"^--every=0 must be >= 1$"),
    "every_negative": (("--every=-2", "--run=a:FIRST"), r"^--every=-2 must be >= 1$"),
    "no_run": (("--tags=kernel/real_real",), r"^give at least one --run=NAME:WORKDIR$"),
    "name_twice": (("--run=k2:FIRST", "--run=k2:SECOND"), r"^--run=k2:.*second: the name 'k2' is given twice$"),
    "unknown_tag": (("--run=a:FIRST", "--run=b:SECOND", "--tags=kernel/real_real,nonexistent/tag"),
                    r"^--tags=kernel/real_real,nonexistent/tag: no run logged 'nonexistent/tag'; the runs have "
                    r"kernel/real_real, loss/critic$"),
    "no_tags": (("--run=a:FIRST", "--tags="), r"^--tags is empty: name at least one scalar tag$")}


def _two_scalar_runs(tmp_path):
  return {"FIRST": _scalar_run(tmp_path / "first", {"kernel/real_real": [(0, 0.5), (50, 0.25)]}),
          "SECOND": _scalar_run(tmp_path / "second", {"kernel/real_real": [(0, 0.4)], "loss/critic": [(0, 1.0)]})}


@pytest.mark.parametrize("case", list(_REFUSED_PLOTS))
def test_plot_scalars_refuses_bad_flags_before_writing(tmp_path, monkeypatch, case):
  """--every=0 was a ZeroDivisionError after the .json was written; --run=k2:A --run=k2:B kept one run; no
  --run, or --tags naming a tag no run logged, wrote an empty table and said it had."""
  runs = _two_scalar_runs(tmp_path)
  argv, message = _REFUSED_PLOTS[case]
  argv = [arg.replace("FIRST", runs["FIRST"]).replace("SECOND", runs["SECOND"]) for arg in argv]
  with pytest.raises(ValueError, match=message):
    _plot_scalars_main(monkeypatch, f"--out={tmp_path / 'results' / 'scalars'}", *argv)
  assert not (tmp_path / "results").exists()  # nothing written


def test_plot_scalars_table_of_two_runs(tmp_path, monkeypatch):
  runs = _two_scalar_runs(tmp_path)
  out = tmp_path / "results" / "scalars"
  assert _plot_scalars_main(monkeypatch, f"--out={out}", f"--run=a:{runs['FIRST']}", f"--run=b:{runs['SECOND']}",
                            "--tags=kernel/real_real,loss/critic") == 0
  table = (tmp_path / "results" / "scalars.md").read_text().splitlines()
  assert table[2:] == ["| 0 | 0.500 |  | 0.400 | 1.000 |", "| 50 | 0.250 |  |  |  |"]


def test_plot_scalars_rows_at_each_runs_last_step_and_an_out_with_a_suffix(tmp_path, monkeypatch):
  """A run shorter than --every had a header-only table; --out=x.json wrote x.json.json, .md and .png."""
  short = _scalar_run(tmp_path / "short", {"kernel/real_real": [(2, 0.5), (4, 0.25), (16, 0.125)]})
  assert _plot_scalars_main(monkeypatch, f"--out={tmp_path / 'scalars.json'}", f"--run=a:{short}",
                            "--tags=kernel/real_real") == 0
  assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["scalars.json", "scalars.md", "scalars.png"]
  assert (tmp_path / "scalars.md").read_text().splitlines()[2:] == ["| 16 | 0.125 |"]


def test_reading_a_runs_scalars_leaves_no_tensorboard_info_lines(tmp_path, caplog):
  """Every read printed TensorBoard's 'No path found after <event file>' INFO line (quality.py once per run)."""
  from tools import plot_scalars  # pylint: disable=import-outside-toplevel
  run = _scalar_run(tmp_path / "run", {"kernel/real_real": [(0, 0.5)]})
  with caplog.at_level(logging.INFO, logger="tensorboard"):
    assert plot_scalars.read_scalars(run, ["kernel/real_real"]) == {"kernel/real_real": [(0, 0.5)]}
    assert logging.getLogger("tensorboard").level == logging.INFO  # the caller's level is back
  assert not [record.getMessage() for record in caplog.records if record.name.startswith("tensorboard")]
