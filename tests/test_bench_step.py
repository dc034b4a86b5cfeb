"""tools/bench_step.py: the arithmetic, the preset of every arch, a tiny matrix end to end, and the GPU script."""

import json
import re
import subprocess
import sys

import pytest
import tensorflow as tf

from helpers import ROOT, asset_path, tool_env

sys.path.insert(0, str(ROOT))
from flags import presets  # noqa: E402  pylint: disable=wrong-import-position
from mmd_gan_tf import models  # noqa: E402  pylint: disable=wrong-import-position
from tools import bench_step  # noqa: E402  pylint: disable=wrong-import-position

SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def test_median_and_images_per_second():
  # Median of an even count is the mean of the middle two: (0.2 + 0.3) / 2 s; 8 images / 0.25 s = 32 images/s.
  result = bench_step.summarize([0.3, 0.1, 0.5, 0.2], batch_size=8)
  assert result["median_ms"] == pytest.approx(250.0)
  assert result["min_ms"] == pytest.approx(100.0)
  assert result["images_per_s"] == pytest.approx(32.0)
  assert bench_step.summarize([0.04, 0.01, 0.02], 64)["images_per_s"] == pytest.approx(3200.0)
  with pytest.raises(ValueError, match="--steps"):
    bench_step.summarize([], 8)


def test_matrix_covers_every_arch_size_and_precision():
  matrix = bench_step.parse_matrix(list(models.ARCHS), [], list(bench_step.PRECISIONS), ["off", "on"], ["1", "4"])
  expected = {(a, s, p, x, k) for a, spec in models.ARCHS.items() for s in spec.sizes
              for p in bench_step.PRECISIONS for x in (False, True) for k in (1, 4)}
  assert len(matrix) == len(expected) and set(matrix) == expected
  assert bench_step.parse_matrix(["dcgan", "sngan"], ["32"], ["float32"]) == [("dcgan", 32, "float32", False, 1),
                                                                              ("sngan", 32, "float32", False, 1)]
  with pytest.raises(ValueError, match="--xla=maybe"):
    bench_step.parse_matrix(["dcgan"], [], ["float32"], ["maybe"])
  with pytest.raises(ValueError, match="--steps_per_loop=0"):
    bench_step.parse_matrix(["dcgan"], [], ["float32"], ["off"], ["0"])
  with pytest.raises(ValueError, match="--archs: unknown"):
    bench_step.parse_matrix(["vgg"], [], ["float32"])
  with pytest.raises(ValueError, match="--precisions"):
    bench_step.parse_matrix(["dcgan"], [], ["float16"])
  with pytest.raises(ValueError, match="--sizes=160"):
    bench_step.parse_matrix(["dcgan"], ["160"], ["float32"])


@pytest.mark.parametrize("arch", list(models.ARCHS))
def test_every_arch_has_a_paper_preset_that_resolves(arch):
  dataset, loss = bench_step.PAPER_PRESETS[arch]
  # Where the presets themselves pick an arch for this pair, it is this one (no preset picks resnet).
  assert presets.resolve_preset(dataset, loss)["model.arch"] == ("dcgan" if arch == "resnet" else arch)
  for size in models.ARCHS[arch].sizes:
    cfg = bench_step.resolve_config(arch, size, "bfloat16", None, None, 0)
    assert (cfg.model.arch, cfg.model.image_size, cfg.data.image_size) == (arch, size, size)
    assert cfg.preset == f"{dataset}/{loss}" and cfg.train.mixed_precision == "true"
  small = bench_step.resolve_config(arch, models.ARCHS[arch].sizes[0], "float32", 8, 0.25, 2)
  assert (small.train.batch_size, small.model.width, small.cpu_devices) == (8, 0.25, 2)
  assert small.train.mixed_precision == "false"


def test_outputs_append_runs(tmp_path):
  run = {"command": "python -m tools.bench_step", "date": "today", "rows": [],
         "machine": {"cpu": "cpu", "cores": 2, "gpus": [], "tensorflow": "2", "platform": "linux",
                     "load_average": 1.0, "strategy": None, "devices": []}}
  json_path, md_path = tmp_path / "b.json", tmp_path / "b.md"
  bench_step.Outputs(str(json_path), str(md_path), append=False).write(run)
  bench_step.Outputs(str(json_path), str(md_path), append=True).write(dict(run, date="tomorrow"))
  assert [r["date"] for r in json.loads(json_path.read_text())["runs"]] == ["today", "tomorrow"]
  assert md_path.read_text().count("## Step benchmark, ") == 2
  bench_step.Outputs(str(json_path), None, append=False).write(run)
  assert len(json.loads(json_path.read_text())["runs"]) == 1


def _run_tool(args, tmp_path):
  command = [sys.executable, "-m", "tools.bench_step", f"--output_json={tmp_path / 'step.json'}",
             f"--output_md={tmp_path / 'step.md'}", *args]
  result = subprocess.run(command, capture_output=True, text=True, cwd=str(ROOT), timeout=600, check=False,
                          env=tool_env())
  assert result.returncode == 0, result.stderr[-3000:]
  [run] = json.loads((tmp_path / "step.json").read_text())["runs"]
  return run, (tmp_path / "step.md").read_text()


@pytest.mark.end_to_end
def test_tiny_matrix_end_to_end(tmp_path):
  run, text = _run_tool(["--archs=dcgan,dcgan5", "--sizes=32", "--width=0.125", "--batch_size=8",
                         "--precisions=float32", "--warmup_steps=2", "--steps=2", "--cpu_devices=2",
                         "--profile_steps=1", f"--profile_dir={tmp_path / 'profile'}"], tmp_path)
  rows = run["rows"]
  assert [(r["arch"], r["image_size"], r["precision"]) for r in rows] == [("dcgan", 32, "float32"),
                                                                          ("dcgan5", 32, "float32")]
  for row in rows:
    assert row["batch_size"] == 8 and row["width"] == 0.125 and row["replicas"] == 2
    assert row["steps"] == 2 and row["warmup_steps"] == 2
    for key in ("median_ms", "min_ms", "images_per_s", "peak_host_mib", "generator_params", "critic_params"):
      assert row[key] > 0, key
    assert row["min_ms"] <= row["median_ms"]
    assert row["images_per_s"] == pytest.approx(8 / (row["median_ms"] / 1000))
    assert row["peak_device_mib"] is None  # no GPU here
    assert row["gflop_per_step"] > 0  # the dense work of the traced step (tests/test_step_flops.py)
  # The schedules of the presets: Wang's one simultaneous step, Binkowski's 5 critic steps per generator step.
  assert [(r["preset"], r["schedule"], r["critic_steps"]) for r in rows] == [
      ("cifar10/rep", "simultaneous", 1), ("cifar10/mmd_gp", "alternating", 5)]
  assert run["machine"]["cores"] > 0 and run["machine"]["tensorflow"] and run["machine"]["cpu"]
  assert "--archs=dcgan,dcgan5" in run["command"] and "inception" not in run
  lines = text.splitlines()
  assert f"- command: `{run['command']}`" in lines
  assert any(line.startswith("- machine: ") and "logical cores" in line and "TensorFlow" in line for line in lines)
  table = [line for line in lines if line.startswith("|")]
  assert table[0].startswith("| arch | size | preset | precision |") and len(table) == 2 + len(rows)
  assert table[2].startswith("| dcgan | 32 | cifar10/rep | float32 | off | 1 | 8 | 0.125 | 1 |")
  assert table[3].startswith("| dcgan5 | 32 | cifar10/mmd_gp | float32 | off | 1 | 8 | 0.125 | 5 |")
  # GFLOP / step and GFLOP/s given, the fraction of the ceiling empty without --inception's matmul rates.
  assert all(f"| {row['gflop_per_step']:.2f} | " in line and " |  | " in line for row, line in zip(rows, table[2:]))
  # --profile_steps: where each row's time went, per generator step, from a trace kept per row.
  for index, row in enumerate(rows):
    profile = row["profile"]
    parts = {p["name"]: p for p in profile["parts"]}
    assert profile["steps"] == 1 and profile["op_ms_per_step"] > 0
    assert parts["convolutions"]["ms"] > 0 and parts["optimizer updates"]["ms"] > 0
    assert sum(p["fraction"] for p in profile["parts"]) == pytest.approx(1.0)
    assert sum(p["ms"] for p in profile["parts"]) == pytest.approx(profile["op_ms_per_step"])
    assert list((tmp_path / "profile" / f"row_{index}").rglob("*.xplane.pb"))
  assert sum(line.startswith("- profile of dcgan") for line in lines) == 2
  assert any(line.startswith("  - parts: convolutions") or "convolutions" in line for line in lines)


@pytest.mark.end_to_end
def test_a_row_with_xla_and_a_loop_of_steps():
  """One replica (XLA cannot place replicas on logical CPU devices): Wang's simultaneous step, 3 generator
  steps per compiled call, the time reported per generator step (the 5 critic steps of an alternating
  preset are counted in test_tiny_matrix_end_to_end)."""
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  cfg = bench_step.resolve_config("dcgan", 32, "float32", 4, 0.0625, 0, xla=True)
  assert cfg.train.jit_compile == "true"
  row = bench_step.bench_row(strategy, cfg, warmup_steps=1, steps=2, steps_per_loop=3)
  assert row["xla"] and row["steps_per_loop"] == 3 and row["critic_steps"] == 1 and row["replicas"] == 1
  assert 0 < row["min_ms"] <= row["median_ms"]
  assert row["images_per_s"] == pytest.approx(4 / (row["median_ms"] / 1000))
  assert row["gflop_per_step"] is None  # the loop's steps run in a while loop: not counted


def test_the_fraction_of_the_ceiling_uses_the_rows_precision():
  row = {"precision": "auto: bfloat16", "gflop_per_step": 2.0, "median_ms": 100.0}
  rates = {"matmul_gflops": 40.0, "matmul_gflops_bfloat16": 80.0}
  assert bench_step.ceiling_fraction(row, rates) == pytest.approx(20.0 / 80.0)
  assert bench_step.ceiling_fraction(dict(row, precision="float32"), rates) == pytest.approx(20.0 / 40.0)
  assert bench_step.ceiling_fraction(row, {}) is None
  assert bench_step.ceiling_fraction(dict(row, gflop_per_step=None), rates) is None


def test_xla_rows_follow_the_trainers_rule_for_several_cpu_replicas():
  """bench_step asks `trainer.use_xla`, as training does: XLA with 2 logical CPU replicas is one error."""
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  cfg = bench_step.resolve_config("dcgan", 32, "float32", 8, 0.125, 2, xla=True)
  with pytest.raises(ValueError, match="--jit_compile=true needs a single replica on a CPU; got 2 replicas"):
    bench_step.bench_row(strategy, cfg, warmup_steps=1, steps=1)
  assert bench_step.resolve_config("dcgan", 32, "float32", 8, 0.125, 2).train.jit_compile == "false"


@pytest.mark.end_to_end
def test_inception_and_matmul_rates(tmp_path):
  weights = asset_path("inception/fid_inception_v3_2015_12_05.npz")
  run, text = _run_tool(["--archs=", "--inception", f"--inception_weights={weights}", "--inception_images=8",
                         "--inception_batch_size=4", "--matmul_size=256"], tmp_path)
  assert run["rows"] == []
  result = run["inception"]
  assert result["matmul_size"] == 256 and result["matmul_gflops"] > 0 and result["matmul_gflops_bfloat16"] > 0
  assert result["feature_extraction"]["images"] == 8 and result["feature_extraction"]["images_per_s"] > 0
  assert "- float32 matmul 256 x 256: " in text and "- bfloat16 matmul 256 x 256: " in text
  assert "- Inception feature extraction: 8 images" in text


def test_gpu_script_parses_and_stays_in_the_repository():
  result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr
  text = SCRIPT.read_text()
  body = text.split("\n", 1)[1]  # after the shebang
  absolute = set(re.findall(r"(?:^|[\s\"'=:(>])(/[\w.~-][\w./~-]*)", body))
  assert absolute <= {"/dev/null"}, absolute
  assert "../" not in body and "~/" not in body and "$HOME" not in body
  # It leaves its results where the brief says, and runs both precisions of the step benchmark.
  assert '"${OUT:-$PWD/gpu_results}"' in text and "--precisions=float32,bfloat16" in text
  assert "timeout" in text and "nvidia-smi" in text and "--dataset=shapes" in text
