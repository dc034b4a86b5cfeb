"""The Markdown docs a user reads stay true to the repository.

For README.md, BENCHMARKS.md, ARCHITECTURE.md, docs/*.md, examples/*.md and results/**/README.md:
1. every relative link and image resolves to a file or folder (relative to the Markdown file's folder);
2. every `--flag` of a command line (code block or inline code) that runs main.py or a tool is a flag that
   program defines (read from its `--helpfull`, one process per program per test session);
3. every `tools/<name>.py`, `python -m tools.<name>` and `scripts/<name>` mentioned exists;
4. no `../shared`, no issue numbers and no words about development sessions (dates instead).

The helpers are pure functions of Markdown text; their own tests below show that each check can fail.
"""

import bisect
import concurrent.futures
import dataclasses
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import tempfile
import urllib.parse
from typing import Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple

import pytest

from helpers import ROOT, tool_env

# ----------------------------------------------------------------------------------------------------------
# Which files.

DOC_PATTERNS = ("README.md", "BENCHMARKS.md", "ARCHITECTURE.md", "docs/*.md", "examples/*.md",
                "results/**/README.md")
# Rule 4 (no ../shared, no issue numbers, no development-session words) covers every doc a user reads.
PROSE_PATTERNS = DOC_PATTERNS
SKIPPED_DIRS = frozenset({".venv", ".git", "runs", "node_modules", ".pytest_cache"})


def doc_files(root: pathlib.Path, patterns: Iterable[str] = DOC_PATTERNS) -> List[pathlib.Path]:
  """The Markdown files of `patterns` under `root`, without anything under .venv, .git or a runs/ folder."""
  found = set()
  for pattern in patterns:
    for path in root.glob(pattern):
      relative = path.relative_to(root)
      if path.is_file() and not SKIPPED_DIRS.intersection(relative.parts[:-1]):
        found.add(path)
  return sorted(found)


def _params(paths: Iterable[pathlib.Path]):
  return [pytest.param(path, id=path.relative_to(ROOT).as_posix()) for path in paths]


DOCS = _params(doc_files(ROOT))
PROSE_DOCS = _params(doc_files(ROOT, PROSE_PATTERNS))

# ----------------------------------------------------------------------------------------------------------
# Markdown structure: code blocks, inline code, prose.

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s")
_INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)


def _line_of(text: str) -> Callable[[int], int]:
  """offset -> 1-based line number in `text`."""
  starts = [0] + [m.end() for m in re.finditer("\n", text)]
  return lambda offset: bisect.bisect_right(starts, offset)


def code_block_lines(text: str) -> List[Tuple[int, str]]:
  """(line number, line) of every line inside a fenced (``` or ~~~) or indented (4 spaces) code block."""
  result = []
  fence = None  # the opening fence while inside a fenced block
  previous_blank, previous_indented_code = True, False
  for number, line in enumerate(text.split("\n"), start=1):
    if fence is not None:
      closing = _FENCE.match(line)
      if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= len(fence) \
          and not line.strip().strip(fence[0]):
        fence = None
      else:
        result.append((number, line))
      previous_blank, previous_indented_code = False, False
      continue
    opening = _FENCE.match(line)
    if opening:
      fence = opening.group(1)
      previous_blank, previous_indented_code = False, False
      continue
    blank = not line.strip()
    indented = re.match(r"^(?: {4}|\t)", line) is not None and not blank
    if indented and (previous_blank or previous_indented_code) and not _LIST_MARKER.match(line):
      result.append((number, line))
      previous_indented_code = True
    elif not blank:
      previous_indented_code = False
    previous_blank = blank
  return result


def without_fenced_code(text: str) -> str:
  """`text` with the lines of fenced code blocks (fences included) blanked; line numbers are kept."""
  lines = text.split("\n")
  fence = None
  for index, line in enumerate(lines):
    match = _FENCE.match(line)
    if fence is None:
      if match:
        fence = match.group(1)
        lines[index] = ""
    else:
      if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
          and not line.strip().strip(fence[0]):
        fence = None
      lines[index] = ""
  return "\n".join(lines)


def _paragraphs(text: str) -> Iterable[Tuple[int, str]]:
  """(offset, paragraph) of the blank-line separated blocks of `text` (an inline span cannot cross one)."""
  for match in re.finditer(r"(?:[^\n]*\S[^\n]*(?:\n|$))+", text):
    yield match.start(), match.group(0)


def inline_code_spans(text: str) -> List[Tuple[int, str]]:
  """(line number, content) of every inline code span outside fenced code; a span's newlines become spaces."""
  prose = without_fenced_code(text)
  line_of = _line_of(prose)
  spans = []
  for offset, paragraph in _paragraphs(prose):
    for match in _INLINE_CODE.finditer(paragraph):
      spans.append((line_of(offset + match.start()), match.group(2).replace("\n", " ").strip()))
  return spans


def _mask_inline_code(text: str) -> str:
  """Inline code spans replaced by spaces (newlines kept), so that code is never read as a link."""
  pieces, last = [], 0
  for offset, paragraph in _paragraphs(text):
    for match in _INLINE_CODE.finditer(paragraph):
      start, end = offset + match.start(), offset + match.end()
      pieces.append(text[last:start])
      pieces.append(re.sub(r"[^\n]", " ", text[start:end]))
      last = end
  pieces.append(text[last:])
  return "".join(pieces)


# ----------------------------------------------------------------------------------------------------------
# Rule 1: links.

# [text](target "title") or ![alt](target); text may hold brackets two levels deep ([![alt](img)](link)).
_LINK = re.compile(
    r"!?\[((?:[^\[\]]|\[(?:[^\[\]]|\[[^\[\]]*\])*\])*)\]"
    r"\(\s*(<[^>\n]*>|(?:[^()\s]|\([^()\s]*\))+)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]\n]+\]:[ \t]*(<[^>\n]*>|\S+)", re.MULTILINE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def extract_links(text: str) -> List[Tuple[int, str]]:
  """(line number, target) of every Markdown link, image and reference definition outside code."""
  prose = _mask_inline_code(without_fenced_code(text))
  line_of = _line_of(prose)
  links = []

  def scan(fragment: str, offset: int) -> None:
    for match in _LINK.finditer(fragment):
      links.append((line_of(offset + match.start()), match.group(2).strip("<>")))
      scan(match.group(1), offset + match.start(1))  # an image inside a link's text

  scan(prose, 0)
  for match in _REFERENCE_DEFINITION.finditer(prose):
    links.append((line_of(match.start()), match.group(1).strip("<>")))
  return sorted(links)


def local_link_path(target: str) -> Optional[str]:
  """The file part of a link target, or None for web/mail links and pure #anchors."""
  target = target.strip()
  if not target or target.startswith("#") or _SCHEME.match(target):
    return None
  path = target.split("#", 1)[0].split("?", 1)[0]
  return urllib.parse.unquote(path) or None


def link_problems(text: str, folder: pathlib.Path, root: pathlib.Path) -> List[Tuple[int, str]]:
  """(line, message) for each relative link of `text` (a Markdown file in `folder`) that resolves to nothing."""
  problems = []
  for line, target in extract_links(text):
    path = local_link_path(target)
    if path is None:
      continue
    resolved = root / path.lstrip("/") if path.startswith("/") else folder / path
    if not resolved.exists():
      problems.append((line, f"broken link {target!r}: {resolved.resolve().as_posix()} does not exist"))
  return problems


# ----------------------------------------------------------------------------------------------------------
# Rule 2: flags of the commands shown.

@dataclasses.dataclass(frozen=True)
class Command:
  line: int
  script: str  # "main.py" or "tools/<name>.py", relative to the repository root
  args: Tuple[str, ...]  # the tokens after the script


_SEPARATORS = frozenset({";", ";;", "&", "&&", "|", "||", "|&", "(", ")"})
_TOOL_FILE = re.compile(r"^(?:.*/)?(tools/[\w/]+\.py)$")
_TOOL_MODULE = re.compile(r"^tools(?:\.\w+)+$")


def shell_segments(line: str) -> List[List[str]]:
  """The simple commands of one shell line: tokens split at ; && || | ( ), comments dropped."""
  try:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    tokens = list(lexer)
  except ValueError:  # an unbalanced quote (a span cut short): words are good enough
    tokens = line.split()
  segments = [[]]
  for token in tokens:
    if token.startswith("#"):
      break
    if token in _SEPARATORS:
      segments.append([])
    else:
      segments[-1].append(token)
  return [segment for segment in segments if segment]


def command_of(tokens: List[str], line: int) -> Optional[Command]:
  """The main.py / tools invocation in one simple command, or None."""
  for index, token in enumerate(tokens):
    if token == "main.py" or (token.endswith("/main.py") and "tools/" not in token):
      return Command(line, "main.py", tuple(tokens[index + 1:]))
    tool = _TOOL_FILE.match(token)
    if tool:
      return Command(line, tool.group(1), tuple(tokens[index + 1:]))
    if token == "-m" and index + 1 < len(tokens) and _TOOL_MODULE.match(tokens[index + 1]):
      return Command(line, tokens[index + 1].replace(".", "/") + ".py", tuple(tokens[index + 2:]))
  return None


def _logical_code_lines(lines: List[Tuple[int, str]]) -> List[Tuple[int, str]]:
  """Code lines with backslash continuations joined (numbered by their first line)."""
  joined, pending, start, last = [], None, None, None
  for number, line in lines:
    if pending is not None and number != last + 1:  # a continuation into a different block: cut it
      joined.append((start, pending))
      pending = None
    if pending is None:
      pending, start = "", number
    stripped = line.rstrip()
    last = number
    if stripped.endswith("\\"):
      pending += stripped[:-1] + " "
    else:
      joined.append((start, pending + stripped))
      pending = None
  if pending is not None:
    joined.append((start, pending))
  return joined


def extract_commands(text: str) -> List[Command]:
  """Every main.py / tools command line of `text`: in code blocks (continuations joined) and inline code."""
  commands = []
  sources = _logical_code_lines(code_block_lines(text)) + inline_code_spans(text)
  for line, source in sources:
    for segment in shell_segments(source):
      command = command_of(segment, line)
      if command is not None:
        commands.append(command)
  return sorted(set(commands), key=lambda c: (c.line, c.script, c.args))


@dataclasses.dataclass(frozen=True)
class FlagSet:
  names: FrozenSet[str]
  booleans: FrozenSet[str]  # the names that also take the --noNAME form


# absl's own flags: defined for every program that runs absl.app.
ABSL_BUILTINS = frozenset({"help", "helpfull", "helpshort", "helpxml", "flagfile", "undefok", "logtostderr",
                           "alsologtostderr", "verbosity", "v", "only_check_args"})
_HELP_LINE = re.compile(r"^  (?:-\S+?,)?--(\[no\])?(\w+):", re.MULTILINE)
_FLAG_TOKEN = re.compile(r"--([A-Za-z_]\w*)(=.*)?", re.DOTALL)


def parse_helpfull(output: str) -> FlagSet:
  """The flags listed by absl's --helpfull (`  --name: ...`, `  --[no]name: ...`, `  -v,--verbosity: ...`)."""
  names, booleans = set(), set()
  for match in _HELP_LINE.finditer(output):
    names.add(match.group(2))
    if match.group(1):
      booleans.add(match.group(2))
  return FlagSet(frozenset(names), frozenset(booleans))


def unknown_flags(args: Iterable[str], flags: FlagSet) -> List[str]:
  """The `--flag` tokens of `args` that `flags` (plus absl's built-ins) does not define.

  `--name value` (a non-boolean flag given without `=`) takes the next token as its value, as absl does;
  `--noname` is accepted for a boolean; `[--name]` (an optional flag) is checked as `--name`; `--` ends the
  flags; anything else not of the form --identifier (a placeholder such as `--<flag>`) is not a flag.
  """
  names = flags.names | ABSL_BUILTINS
  args = list(args)
  unknown, index = [], 0
  while index < len(args):
    token = args[index]
    index += 1
    if token == "--":
      break
    match = _FLAG_TOKEN.fullmatch(token.lstrip("[").rstrip("]") if token.startswith("[") else token)
    if not match:
      continue
    name, value = match.group(1), match.group(2)
    if name in names:
      if value is None and name in flags.names and name not in flags.booleans:
        index += 1  # its value
    elif not (value is None and name.startswith("no") and name[2:] in flags.booleans):
      unknown.append("--" + name)
  return unknown


def flag_problems(text: str, flags_of: Mapping[str, Optional[FlagSet]]) -> List[Tuple[int, str]]:
  """(line, message) for each flag of a command in `text` that its program does not define.

  `flags_of[script]` is the program's FlagSet, or None where the script does not exist."""
  problems = []
  for command in extract_commands(text):
    flags = flags_of[command.script]
    if flags is None:
      problems.append((command.line, f"{command.script} does not exist (its flags cannot be checked)"))
      continue
    for flag in unknown_flags(command.args, flags):
      problems.append((command.line, f"{flag} is not a flag of {command.script}"))
  return sorted(set(problems))


def _checked_helpfull(script: str, output: str, why: str) -> FlagSet:
  flags = parse_helpfull(output)
  if "helpfull" not in flags.names:
    raise RuntimeError(f"`{script} --helpfull` listed no flags ({why}):\n{output[-3000:]}")
  return flags


def helpfull_flags(script: str, root: pathlib.Path = ROOT) -> Optional[FlagSet]:
  """The flags of `python SCRIPT --helpfull` in a process of its own (None if the script does not exist)."""
  if not (root / script).is_file():
    return None
  done = subprocess.run([sys.executable, str(root / script), "--helpfull"], cwd=root, env=tool_env(),
                        capture_output=True, text=True, timeout=300, check=False)
  return _checked_helpfull(script, done.stdout, f"exit {done.returncode}; stderr:\n{done.stderr[-3000:]}")


# One Python for many `SCRIPT --helpfull`: TensorFlow (3 s of every program's start) is imported once, each
# script runs as __main__ with argv [SCRIPT, --helpfull], and the flags it defined are deleted after it.
_SHARED_HELPFULL = r"""
import contextlib, io, json, os, runpy, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
out_path, scripts = sys.argv[1], sys.argv[2:]
import tensorflow  # noqa: F401
from absl import app, flags
app.define_help_flags()
baseline = set(flags.FLAGS)
results = {}
for path in scripts:
  stdout = io.StringIO()
  saved_argv, saved_path = sys.argv, list(sys.path)
  sys.argv, sys.path[:0] = [path, "--helpfull"], [os.path.dirname(path)]
  try:
    with contextlib.redirect_stdout(stdout):
      runpy.run_path(path, run_name="__main__")
    status = "returned"
  except SystemExit as stop:
    status = f"exit {stop.code}"
  except BaseException as error:  # noqa: B036  reported, then the process of its own decides
    status = f"raised {error!r}"
  finally:
    sys.argv, sys.path[:] = saved_argv, saved_path
    for name in [name for name in flags.FLAGS if name not in baseline]:
      delattr(flags.FLAGS, name)
    flags.FLAGS.unparse_flags()
  results[path] = {"stdout": stdout.getvalue(), "status": status}
with open(out_path, "w") as out:
  json.dump(results, out)
"""


def shared_helpfull_flags(scripts: Iterable[str], root: pathlib.Path = ROOT) -> Dict[str, Optional[FlagSet]]:
  """The flags of each script from one shared process (fast). A script it cannot read is read by a process
  of its own; flags it reports missing are confirmed that way too (FlagCatalog.confirmed)."""
  scripts = sorted(set(scripts))
  result: Dict[str, Optional[FlagSet]] = {script: None for script in scripts if not (root / script).is_file()}
  present = [script for script in scripts if script not in result]
  if not present:
    return result
  with tempfile.TemporaryDirectory() as folder:
    out_path = os.path.join(folder, "helpfull.json")
    subprocess.run([sys.executable, "-c", _SHARED_HELPFULL, out_path, *(str(root / script) for script in present)],
                   cwd=root, env=tool_env(), capture_output=True, text=True, timeout=300, check=False)
    outputs = {}
    if os.path.exists(out_path):
      with open(out_path, encoding="utf-8") as saved:
        outputs = json.load(saved)
  for script in present:
    output = outputs.get(str(root / script), {}).get("stdout", "")
    flags = parse_helpfull(output)
    result[script] = flags if "helpfull" in flags.names else helpfull_flags(script, root)
  return result


class FlagCatalog:
  """The FlagSet of each program: all that the docs run, read at the first request by one shared process;
  `confirmed` reads one program by `SCRIPT --helpfull` in a process of its own (before a flag is reported)."""

  def __init__(self, root: pathlib.Path, expected: Iterable[str] = ()):
    self._root = root
    self.expected = frozenset(expected)
    self._shared: Dict[str, Optional[FlagSet]] = {}
    self._confirmed: Dict[str, Optional[FlagSet]] = {}

  def get(self, scripts: Iterable[str]) -> Dict[str, Optional[FlagSet]]:
    scripts = set(scripts)
    missing = scripts - set(self._shared)
    if missing:
      self._shared.update(shared_helpfull_flags(missing | (self.expected - set(self._shared)), self._root))
    return {script: self._shared[script] for script in scripts}

  def confirmed(self, scripts: Iterable[str]) -> Dict[str, Optional[FlagSet]]:
    scripts = set(scripts)
    missing = sorted(scripts - set(self._confirmed))
    if missing:
      workers = min(len(missing), max(2, os.cpu_count() or 2))
      with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        self._confirmed.update(zip(missing, pool.map(lambda s: helpfull_flags(s, self._root), missing)))
    return {script: self._confirmed[script] for script in scripts}


@pytest.fixture(scope="session")
def flag_catalog() -> FlagCatalog:
  expected = {command.script for param in DOCS for command in extract_commands(_read(param.values[0]))}
  return FlagCatalog(ROOT, expected)


# ----------------------------------------------------------------------------------------------------------
# Rule 3: tools and scripts named.

_TOOL_PATH = re.compile(r"(?<![\w./-])(?:\./)?(tools/[\w./-]+?\.py)(?!\w)")
_MODULE_RUN = re.compile(r"(?<![\w-])-m\s+(tools(?:\.\w+)+)")
_SCRIPT_PATH = re.compile(r"(?<![\w./-])(?:\./)?(scripts/[\w./-]*[\w-])")


def extract_repo_paths(text: str) -> List[Tuple[int, str, List[str]]]:
  """(line, as written, candidate repository paths) of every tools/*.py, `-m tools.x` and scripts/* in `text`
  (prose and code alike); the mention is true if any candidate exists."""
  line_of = _line_of(text)
  found = []
  for match in _TOOL_PATH.finditer(text):
    found.append((line_of(match.start()), match.group(1), [match.group(1)]))
  for match in _MODULE_RUN.finditer(text):
    module = match.group(1).replace(".", "/")
    found.append((line_of(match.start()), f"-m {match.group(1)}", [module + ".py", module + "/__init__.py"]))
  for match in _SCRIPT_PATH.finditer(text):
    found.append((line_of(match.start()), match.group(1), [match.group(1)]))
  return sorted(found)


def repo_path_problems(text: str, root: pathlib.Path) -> List[Tuple[int, str]]:
  problems = []
  for line, written, candidates in extract_repo_paths(text):
    if not any((root / candidate).exists() for candidate in candidates):
      problems.append((line, f"{written} names {candidates[0]}, which does not exist"))
  return sorted(set(problems))


# ----------------------------------------------------------------------------------------------------------
# Rule 4: nothing a user cannot follow.

_FORBIDDEN = (
    (re.compile(re.escape("../shared")), "mentions ../shared (outside the repository)"),
    (re.compile(r"\bissues?\s+#?\d+", re.IGNORECASE), "mentions an issue number"),
    (re.compile(r"\bsessions?\b", re.IGNORECASE), "speaks of development sessions (say the date)"),
)


def forbidden_text(text: str) -> List[Tuple[int, str]]:
  line_of = _line_of(text)
  problems = []
  for pattern, why in _FORBIDDEN:
    for match in pattern.finditer(text):
      problems.append((line_of(match.start()), f"{why}: {match.group(0)!r}"))
  return sorted(problems)


# ----------------------------------------------------------------------------------------------------------
# The checks of the repository's docs.

def _report(path: pathlib.Path, problems: List[Tuple[int, str]]) -> str:
  name = path.relative_to(ROOT).as_posix()
  return f"{len(problems)} problem(s):\n" + "\n".join(f"{name}:{line}: {what}" for line, what in problems)


def _read(path: pathlib.Path) -> str:
  return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", DOCS)
def test_links_resolve(path):
  problems = link_problems(_read(path), path.parent, ROOT)
  assert not problems, _report(path, problems)


@pytest.mark.parametrize("path", DOCS)
def test_command_flags_are_defined(path, flag_catalog):
  text = _read(path)
  commands = extract_commands(text)
  flags_of = flag_catalog.get(command.script for command in commands)
  doubtful = {command.script for command in commands
              if flags_of[command.script] is not None and unknown_flags(command.args, flags_of[command.script])}
  if doubtful:  # what the shared process read is confirmed by a process of the program's own
    flags_of.update(flag_catalog.confirmed(doubtful))
  problems = flag_problems(text, flags_of)
  assert not problems, _report(path, problems)


@pytest.mark.parametrize("path", DOCS)
def test_named_tools_and_scripts_exist(path):
  problems = repo_path_problems(_read(path), ROOT)
  assert not problems, _report(path, problems)


@pytest.mark.parametrize("path", PROSE_DOCS)
def test_no_shared_paths_or_issue_numbers(path):
  problems = forbidden_text(_read(path))
  assert not problems, _report(path, problems)


def test_shared_helpfull_reads_what_a_process_of_its_own_does(flag_catalog):
  """The shortcut of FlagCatalog.get: main.py and the last program of the shared process (the one that
  would see any flag left over from the programs before it) read the same flags as on their own."""
  scripts = {"main.py", max(flag_catalog.expected | {"tools/sample.py"})}
  shared, own = flag_catalog.get(scripts), flag_catalog.confirmed(scripts)
  assert shared == own
  assert {"dataset", "loss", "workdir", "verbose"} <= own["main.py"].names


def test_the_docs_are_found():
  names = {param.id for param in DOCS}
  assert {"README.md", "BENCHMARKS.md", "ARCHITECTURE.md"} <= names
  assert any(name.startswith("docs/") for name in names)
  assert not any(set(name.split("/")[:-1]) & SKIPPED_DIRS for name in names)
  assert {param.id for param in PROSE_DOCS} <= names


# ----------------------------------------------------------------------------------------------------------
# The helpers, on small Markdown strings.

SAMPLE = """\
# Title

See [the guide](docs/guide.md#setup), ![a grid](img/grid.png "Samples"), [web](https://example.com/x),
[mail](mailto:a@b.c), [top](#title) and [![badge](img/badge.svg)](ARCHITECTURE.md).
Code is no link: `[x](not/a/link.md)`, nor is

```bash
echo "[y](not/either.md)"
python main.py --dataset=lsun \\
    --loss=rep   # a comment --not_a_flag
pip install -e . && .venv/bin/python main.py --steps=5
```

Then run `python -m tools.bench_step --archs=dcgan` or `tools/sample.py --model=x`; `main.py` alone.
A [folder](docs/) link, an [encoded](my%20file.md) one.

    python tools/quality.py --losses=rep --common="--dataset=npz --width=0.5"

[ref]: results/table.md
"""


def test_extract_links():
  assert extract_links(SAMPLE) == [
      (3, "docs/guide.md#setup"), (3, "https://example.com/x"), (3, "img/grid.png"),
      (4, "#title"), (4, "ARCHITECTURE.md"), (4, "img/badge.svg"), (4, "mailto:a@b.c"),
      (15, "docs/"), (15, "my%20file.md"), (19, "results/table.md")]


def test_local_link_path():
  assert local_link_path("docs/guide.md#setup") == "docs/guide.md"
  assert local_link_path("my%20file.md") == "my file.md"
  assert local_link_path("../README.md") == "../README.md"
  for external in ("https://x.org/a", "http://x.org", "mailto:a@b.c", "#anchor", ""):
    assert local_link_path(external) is None


def test_a_broken_link_is_reported(tmp_path):
  (tmp_path / "docs").mkdir()
  (tmp_path / "docs" / "there.md").write_text("x")
  (tmp_path / "img").mkdir()
  text = ("[ok](there.md#a) [up](../img/) [root](/docs/there.md) [web](https://x.org/missing.md)\n"
          "\n"
          "[gone](missing.md) and ![pic](../img/none.png)\n")
  assert link_problems(text, tmp_path / "docs", tmp_path) == [
      (3, f"broken link '../img/none.png': {(tmp_path / 'img' / 'none.png').as_posix()} does not exist"),
      (3, f"broken link 'missing.md': {(tmp_path / 'docs' / 'missing.md').as_posix()} does not exist")]


def test_code_block_lines_and_inline_spans():
  text = "a `x`\n\n```\n`not a span`\n```\n\n    indented code\n- list\n\n    - nested item\n`multi\nline`\n"
  assert code_block_lines(text) == [(4, "`not a span`"), (7, "    indented code")]
  assert inline_code_spans(text) == [(1, "x"), (11, "multi line")]


def test_extract_commands():
  assert extract_commands(SAMPLE) == [
      Command(9, "main.py", ("--dataset=lsun", "--loss=rep")),
      Command(11, "main.py", ("--steps=5",)),
      Command(14, "main.py", ()),
      Command(14, "tools/bench_step.py", ("--archs=dcgan",)),
      Command(14, "tools/sample.py", ("--model=x",)),
      Command(17, "tools/quality.py", ("--losses=rep", "--common=--dataset=npz --width=0.5")),
  ]


def test_shell_segments():
  assert shell_segments("cd /tmp && python main.py --a=1 2>&1 | tee log; echo done  # --b") == [
      ["cd", "/tmp"], ["python", "main.py", "--a=1", "2", ">&", "1"], ["tee", "log"], ["echo", "done"]]
  assert shell_segments("python main.py --config='unbalanced") == [["python", "main.py", "--config='unbalanced"]]


def test_parse_helpfull():
  output = ("main.py:\n  --dataset: Dataset.\n    (default: 'shapes')\n  --[no]dry_run: Print and exit.\n"
            "    --not_this: a wrapped help line\nabsl.logging:\n  -v,--verbosity: Logging verbosity.\n")
  assert parse_helpfull(output) == FlagSet(frozenset({"dataset", "dry_run", "verbosity"}),
                                           frozenset({"dry_run"}))


def test_an_unknown_flag_is_reported():
  flags = FlagSet(frozenset({"dataset", "dry_run", "run"}), frozenset({"dry_run"}))
  args = ["--dataset=lsun", "--nodry_run", "[--dry_run]", "--run", "--value_of_run", "--helpfull",
          "--flagfile=f", "--<flag>", "--bogus=1", "--nodataset", "[--missing]", "--", "--after"]
  assert unknown_flags(args, flags) == ["--bogus", "--nodataset", "--missing"]


def test_flag_problems_name_line_flag_and_program():
  flags = FlagSet(frozenset({"dataset", "loss", "steps", "archs", "model", "losses", "common"}), frozenset())
  flags_of = {"main.py": flags, "tools/bench_step.py": flags, "tools/sample.py": flags,
              "tools/quality.py": None}
  assert flag_problems(SAMPLE, flags_of) == [(17, "tools/quality.py does not exist (its flags cannot be checked)")]
  flags_of["tools/quality.py"] = FlagSet(frozenset({"losses"}), frozenset())
  assert flag_problems(SAMPLE, flags_of) == [(17, "--common is not a flag of tools/quality.py")]


def test_a_missing_tools_path_is_reported(tmp_path):
  (tmp_path / "tools").mkdir()
  (tmp_path / "tools" / "there.py").write_text("")
  (tmp_path / "scripts").mkdir()
  (tmp_path / "scripts" / "check.sh").write_text("")
  text = ("Run `tools/there.py`, `python -m tools.there`, `bash scripts/check.sh`.\n"
          "Not `tools/gone.py`, nor `python -m tools.away`, nor scripts/nope.sh.\n"
          "Not paths: mmd_gan_tf/tools/x.py, tools/bench_*.py, scripts/, tools.there.attr\n")
  assert repo_path_problems(text, tmp_path) == [
      (2, "-m tools.away names tools/away.py, which does not exist"),
      (2, "scripts/nope.sh names scripts/nope.sh, which does not exist"),
      (2, "tools/gone.py names tools/gone.py, which does not exist")]


def test_forbidden_text():
  text = ("Fine: tissue 3, issues, obsession.\nBad (issue 12) and Issue #7.\nsee ../shared/assets\n"
          "measured in the previous session\n")
  assert forbidden_text(text) == [
      (2, "mentions an issue number: 'Issue #7'"), (2, "mentions an issue number: 'issue 12'"),
      (3, "mentions ../shared (outside the repository): '../shared'"),
      (4, "speaks of development sessions (say the date): 'session'")]
