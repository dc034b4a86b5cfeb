"""README command 1 alone makes every command the README shows work.

A user runs README command 1 (install, then the first training run) and then the README's other commands:
`tools/sample.py`, `tools/evaluate.py`, ... from the repository root. Those import `mmd_gan_tf`, which only an
installed package provides. `.ci/run` makes a fresh venv, `.venv-user`, with exactly the install part of
README command 1 (read from README.md) and sets README_VENV to it; the test here starts each program the README
runs with that venv's Python, from the repository root, without PYTHONPATH, and needs its `--helpfull` to list
its flags instead of a traceback. Elsewhere (no README_VENV) that test skips; in CI a missing venv fails.
"""

import os
import pathlib
import subprocess
from typing import List, Optional

import pytest

import test_docs
from helpers import ROOT


def readme_install_line(readme: str) -> Optional[str]:
  """The install part of README command 1: the first code line that installs requirements.txt and then runs
  main.py, cut before the run (`python3 -m venv .venv && .venv/bin/pip install -r requirements.txt -e .`)."""
  for _, line in test_docs.code_block_lines(readme):
    if "requirements.txt" in line and "main.py" in line:
      parts = [part.strip() for part in line.split("&&")]
      return " && ".join(part for part in parts if "main.py" not in part)
  return None


def installs_the_package(install_line: str) -> bool:
  """Whether a `pip install` of the line installs this repository (`-e .` or `.`), not only its requirements."""
  for segment in install_line.split("&&"):
    tokens = segment.split()
    if "pip" in " ".join(tokens[:1]) and "install" in tokens:
      if "." in tokens[tokens.index("install") + 1:]:
        return True
  return False


def readme_programs(readme: str) -> List[str]:
  """Each program (main.py, tools/<name>.py) that a README command runs, once, in order of first mention."""
  seen = []
  for command in test_docs.extract_commands(readme):
    if command.script not in seen:
      seen.append(command.script)
  return seen


def _readme() -> str:
  return (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_command_1_installs_the_package():
  line = readme_install_line(_readme())
  assert line is not None, "README.md shows no install line of requirements.txt followed by main.py"
  assert installs_the_package(line), f"README command 1 does not install the package: {line}"


def test_the_helpers_can_fail():
  assert readme_install_line("```bash\npython main.py\n```\n") is None
  assert not installs_the_package("python3 -m venv .venv && .venv/bin/pip install -r requirements.txt")
  assert installs_the_package("python3 -m venv .venv && .venv/bin/pip install -r requirements.txt -e .")
  assert readme_programs("```bash\npython tools/sample.py --num=1\npython main.py\npython -m tools.sample\n```\n") \
      == ["tools/sample.py", "main.py"]


def test_readme_shows_the_tools():
  assert {"main.py", "tools/sample.py", "tools/evaluate.py"} <= set(readme_programs(_readme()))


def test_every_readme_program_runs_in_the_venv_of_command_1():
  venv = os.environ.get("README_VENV")
  if not venv:
    if os.environ.get("CI"):
      pytest.fail("CI=true but README_VENV is not set: .ci/run makes it with README command 1's install")
    pytest.skip("README_VENV not set (.ci/run makes it with README command 1's install line)")
  python = pathlib.Path(venv) / "bin" / "python"
  env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
  failures = []
  for program in readme_programs(_readme()):
    result = subprocess.run([str(python), program, "--helpfull"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    output = result.stdout + result.stderr
    if "Traceback" in output or "\nflags:" not in result.stdout:
      failures.append(f"{program}: {output.strip().splitlines()[-1] if output.strip() else 'no output'}")
    elif "cuda" in result.stderr.lower():  # TensorFlow's no-GPU lines: every entry point filters them
      failures.append(f"{program} prints: {result.stderr.strip().splitlines()[0]}")
  if any("tensorboard --logdir" in line for _, line in test_docs.code_block_lines(_readme())):
    result = subprocess.run([str(python.parent / "tensorboard"), "--help"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
      failures.append(f"tensorboard: {(result.stdout + result.stderr).strip()[-300:]}")
  assert not failures, "after README command 1 alone:\n" + "\n".join(failures)
