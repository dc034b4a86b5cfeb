"""oneDNN's CPU kernels on by default on x86-64 Linux (mmd_gan_tf.onednn), a user's setting kept."""

import os
import platform
import subprocess
import sys

import pytest

from mmd_gan_tf import onednn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("environ, system, machine, expected", [
    ({}, "Linux", "x86_64", "1"),
    ({}, "Linux", "AMD64", "1"),
    ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "Linux", "x86_64", None),  # the user's choice wins
    ({"TF_ENABLE_ONEDNN_OPTS": "1"}, "Linux", "x86_64", None),
    ({}, "Linux", "aarch64", None),  # oneDNN there is another build (ACL): TensorFlow decides
    ({}, "Darwin", "x86_64", None),
    ({}, "Windows", "AMD64", None),
])
def test_the_default_value(environ, system, machine, expected):
  assert onednn.default_value(environ, system, machine) == expected


def test_prefer_sets_the_variable_and_says_why(monkeypatch):
  monkeypatch.setattr(onednn, "REASON", [])  # the process's own reason stays
  environ = {"PATH": "/bin"}
  reason = onednn.prefer(environ, "Linux", "x86_64")
  assert environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
  assert "set by mmd_gan_tf" in reason and "TF_ENABLE_ONEDNN_OPTS=0" in reason
  assert onednn.state_line(True) == f"oneDNN CPU kernels: on ({reason})"


def test_prefer_keeps_the_users_value(monkeypatch):
  monkeypatch.setattr(onednn, "REASON", [])  # the process's own reason stays
  environ = {"TF_ENABLE_ONEDNN_OPTS": "0"}
  reason = onednn.prefer(environ, "Linux", "x86_64")
  assert environ == {"TF_ENABLE_ONEDNN_OPTS": "0"}
  assert reason == "TF_ENABLE_ONEDNN_OPTS=0 as set by the user"
  assert onednn.state_line(False).startswith("oneDNN CPU kernels: off (TF_ENABLE_ONEDNN_OPTS=0 as set")


def test_prefer_leaves_other_platforms_to_tensorflow(monkeypatch):
  monkeypatch.setattr(onednn, "REASON", [])  # the process's own reason stays
  environ = {}
  assert onednn.prefer(environ, "Linux", "aarch64") == "TensorFlow's default on Linux aarch64"
  assert environ == {}


def _enabled_in_a_fresh_process(env_value):
  env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
  if env_value is not None:
    env["TF_ENABLE_ONEDNN_OPTS"] = env_value
  code = ("from mmd_gan_tf import console, onednn; console.import_tensorflow_quietly(); "
          "print(onednn.enabled(), os.environ.get('TF_ENABLE_ONEDNN_OPTS'))")
  out = subprocess.run([sys.executable, "-c", "import os; " + code], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=300, check=True).stdout
  return out.split()[-2:]


@pytest.mark.skipif(platform.system() != "Linux" or platform.machine() != "x86_64", reason="x86-64 Linux only")
def test_the_entry_points_import_tensorflow_with_onednn_unless_turned_off():
  """What main.py and the tools get: on where the user said nothing, off where the user said 0."""
  assert _enabled_in_a_fresh_process(None) == ["True", "1"]
  assert _enabled_in_a_fresh_process("0") == ["False", "0"]
