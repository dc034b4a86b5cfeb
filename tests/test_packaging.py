"""pyproject.toml and the requirements files describe the same dependencies."""

import tomllib

from helpers import ROOT


def _requirement_lines(name: str) -> list:
  lines = (ROOT / name).read_text().splitlines()
  return [line.strip() for line in lines if line.strip() and not line.strip().startswith(("#", "-r"))]


def test_dev_extra_matches_requirements_dev():
  project = tomllib.loads((ROOT / "pyproject.toml").read_text())
  assert project["project"]["optional-dependencies"]["dev"] == _requirement_lines("requirements-dev.txt")


def test_runtime_dependencies_come_from_requirements_txt():
  project = tomllib.loads((ROOT / "pyproject.toml").read_text())
  assert project["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
  # setuptools reads requirements.txt line by line: no inline comments.
  assert all("#" not in line for line in _requirement_lines("requirements.txt"))
