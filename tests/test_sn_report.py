"""tools/sn_report.py: the per-layer sigma estimates of a trained run against converged power iterations."""

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
  (tmp_path / "scalars.json").write_text('{"run": {"loss/critic": [[1, 0.5]]}}')
  plot_scalars.check_out(str(tmp_path / "scalars"))  # an earlier output is replaced
  plot_scalars.check_out(str(tmp_path / "fresh"))
