"""House rules that keep the code readable, checked on the source: no function in the library over 60 lines,
and no dataset dispatch outside the data package (each source is one entry of `data.DATASETS`)."""

import ast
import re

from helpers import ROOT

MAX_FUNCTION_LINES = 60


def _library_files():
  return sorted((ROOT / "mmd_gan_tf").rglob("*.py"))


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list:
  """(name, lines) of every function or method in `source` longer than `limit` lines (its decorators not counted)."""
  return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(source))
          if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > limit]


def test_long_functions_are_found():
  body = "\n".join(f"  x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
  assert long_functions(f"def short():\n  return 1\n\ndef long():\n{body}\n") == [("long", MAX_FUNCTION_LINES + 1)]


def test_no_library_function_is_over_60_lines():
  found = {str(path.relative_to(ROOT)): long_functions(path.read_text(encoding="utf-8")) for path in _library_files()}
  assert not {path: functions for path, functions in found.items() if functions}


def test_only_the_data_package_dispatches_on_the_dataset():
  pattern = re.compile(r"\bdataset\s*(==|!=|in\s*[(\[{])")
  sources = [*_library_files(), *sorted((ROOT / "flags").rglob("*.py")), ROOT / "main.py",
             *sorted((ROOT / "tools").glob("*.py"))]
  outside = [f"{path.relative_to(ROOT)}:{number}" for path in sources if "data" not in path.relative_to(ROOT).parts[1:2]
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
  assert not outside, f"dataset dispatch outside mmd_gan_tf/data: {outside}"
