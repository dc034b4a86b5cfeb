"""tools/sn_report.py: the per-layer sigma estimates of a trained run against converged power iterations."""

import sys

import numpy as np
import pytest

from conftest import ROOT, make_two_replica_strategy
from flags import build as config_builder
from mmd_gan_tf import trainer

sys.path.insert(0, str(ROOT))
from tools import sn_report  # noqa: E402  pylint: disable=wrong-import-position


def test_report_of_a_trained_run(tmp_path):
  cfg = config_builder.build_config(dict(dataset="shapes", loss="rep", width=0.125, batch_size=8, steps=3,
                                         log_every=1, sample_every=10, checkpoint_every=10,
                                         workdir=str(tmp_path / "run")))
  trainer.train(cfg, strategy=make_two_replica_strategy())
  result = sn_report.report(str(tmp_path / "run"), iterations=200)
  assert result["step"] == 3 and len(result["layers"]) == 8
  for layer in result["layers"]:
    # Three power iterations from a random start underestimate sigma; converged iterations never go down.
    assert layer["sigma_converged"] >= layer["sigma_estimate"] * (1 - 1e-4)
    assert layer["multiplier"] == pytest.approx(64 ** (1 / 8))  # Wang's C = 64^(1/L), L = 8 layers
  bound = np.prod([layer["multiplier"] * layer["ratio"] for layer in result["layers"]])
  assert result["lipschitz_bound"] == pytest.approx(bound) and bound > 64.0  # C^L times the underestimates
