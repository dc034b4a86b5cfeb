"""The cluster launch scripts in scripts/ start main.py with flags it accepts."""

import json
import os
import re
import subprocess
import sys

from helpers import ROOT


def test_the_slurm_script_runs_main_py_as_a_multi_worker_job(tmp_path):
  # A stand-in `srun` that runs its command once with --dry_run (main.py resolves every flag, writes nothing).
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  (bin_dir / "srun").write_text(f'#!/bin/bash\necho "srun $*" >> {tmp_path}/calls\n'
                                f'shift\nexec {sys.executable} "$@" --dry_run\n')
  (bin_dir / "srun").chmod(0o755)
  env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_SUBMIT_DIR=str(ROOT),
             SLURM_JOB_NAME="test", TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run(["bash", str(ROOT / "scripts" / "slurm_multi_worker.sbatch"), "--loss=rep_b",
                           "--width=0.5"], env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  config = json.loads(result.stdout)
  assert config["strategy"] == "multi_worker" and config["data"]["dataset"] == "cifar10"
  assert config["loss"]["name"] == "rep_b" and config["model"]["width"] == 0.5  # the user's flags win
  assert config["workdir"] == "runs/slurm_test"
  assert "--strategy=multi_worker" in (tmp_path / "calls").read_text()
  assert "given twice" not in result.stderr  # the script's defaults give way to the user's flags


def test_the_kubeflow_manifest_runs_main_py_with_flags_it_accepts():
  text = (ROOT / "scripts" / "kubeflow_tfjob.yaml").read_text()
  assert re.search(r"^kind: TFJob$", text, re.M) and "replicas: 2" in text
  command = json.loads(re.search(r"command: (\[.*?\])", text, re.S).group(1))
  assert command[:2] == ["python", "main.py"] and "--strategy=multi_worker" in command
  result = subprocess.run([sys.executable, str(ROOT / "main.py"), *command[2:], "--dry_run"], cwd=ROOT,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert json.loads(result.stdout)["strategy"] == "multi_worker"
