"""The command-line boundary of main.py and tools/*.py: user errors as one line, bugs as tracebacks.

  from mmd_gan_tf import cli

  def main(argv):
    ...  # raise ValueError(f"--flag={value}: what is wrong and what to do") for a user error

  if __name__ == "__main__":
    define_flags()
    cli.run(main)

The rule: a user error (a bad flag, a missing or unreadable file, too few images) is ONE line on stderr,
`error: <message>`, and exit code 2; a traceback only for a bug, or for any error with `--verbose`. The
library raises ValueError (or OSError for files) with a message that names the flag, file or value; this
module is the only place that turns those into the one line, so main.py and every tool print them alike.
"""

import contextlib
import logging
import signal
import sys
from typing import Callable, Iterator, List, Optional

from absl import app
from absl import flags

from mmd_gan_tf import config as config_lib
from mmd_gan_tf import console
from mmd_gan_tf import startup

EXIT_USER_ERROR = 2
# The shell's code for a process ended by SIGINT.
EXIT_CTRL_C = startup.EXIT_CTRL_C

# What a user can cause and fix: bad values (ValueError, also json.JSONDecodeError), files that are
# missing or unreadable (OSError), flags that do not parse, app.UsageError (stray arguments).
USER_ERRORS = (ValueError, OSError, flags.Error, app.UsageError)


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
  """SIGTERM and SIGHUP raise KeyboardInterrupt inside the block, as Ctrl-C does, so that a scheduler's or a
  closed terminal's stop ends in the tool's one interrupt line (not a silent 143); the previous handlers are
  back after the block. Main thread only (Python's signal rule)."""
  def stop(signum, frame):  # pylint: disable=unused-argument
    raise KeyboardInterrupt
  previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGHUP)}
  try:
    yield
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)


def one_line(error: BaseException) -> str:
  """`error: <message>` with the message's line breaks folded, so it stays one line."""
  message = " ".join(str(error).split()) or type(error).__name__
  if message.startswith("ERROR::"):  # absl's own prefix (a missing --flagfile): not "error: ERROR::"
    message = message[len("ERROR::"):].strip()
  return f"error: {message}"


def _naming_the_flag(error: BaseException, flag_values: flags.FlagValues = flags.FLAGS) -> BaseException:
  """A library ConfigError about field `section.name` as `--name=value: reason` where this program has a flag
  `--name` (a tool whose flags are named after the config's fields, e.g. prepare_dataset's --image_size)."""
  if isinstance(error, config_lib.ConfigError):
    name = error.field.split(".")[-1]
    if name in flag_values:
      return ValueError(f"--{name}={config_lib.format_value(error.value)}: {error.reason}")
  return error


def define_verbose_flag(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """--verbose (once per process: main.py and the tools all go through `run`)."""
  if "verbose" not in flag_values:
    flags.DEFINE_bool("verbose", False, "Show the traceback of user errors too (for bug reports).",
                      flag_values=flag_values)


def _parse_flags(argv: List[str]) -> List[str]:
  """absl's parser, with a parse error as one line and exit code 2 (absl's own prints two, exits 1); a flag
  given twice with different values is named in a warning (absl keeps the last one without a word; wrapper
  scripts rely on it to let "$@" override their defaults)."""
  try:
    remaining = flags.FLAGS(argv)
  except flags.Error as error:
    print(one_line(error), file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)
  args = flags.FLAGS.read_flags_from_files(argv[1:], force_gnu=False)  # with --flagfile's
  unapplied = unapplied_absl_flag(args)
  if unapplied:
    print(one_line(ValueError(unapplied)), file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)
  repeated = repeated_flag(args)
  if repeated:
    print(f"warning: {repeated}: the last one applies", file=sys.stderr)
  return remaining


# absl's own flags that this program would accept without applying them (the rule: a flag that is accepted is
# applied, or refused in one line), with what to do instead.
UNAPPLIED_ABSL_FLAGS = {
    "only_check_args": "parses the flags and exits 0 without this program's own checks; main.py --dry_run checks "
                       "a whole command without running it",
    "undefok": "makes unknown flags be accepted and ignored; remove the unknown flags instead",
    "log_dir": "is absl's log-file folder, which this program does not write (its messages go to stderr: redirect "
               "them to keep a log)",
}


def unapplied_absl_flag(args: List[str], flag_values: flags.FlagValues = flags.FLAGS) -> Optional[str]:
  """'--only_check_args ...' when the parsed `flag_values` set one of UNAPPLIED_ABSL_FLAGS, or `args` (the
  command line, --flagfile's expanded) gives --undefok, else None."""
  for name in ("only_check_args", "log_dir"):
    if name in flag_values and flag_values[name].present and flag_values[name].value:
      return f"--{name} {UNAPPLIED_ABSL_FLAGS[name]}"
  for arg in args:
    if arg == "--":
      break
    if arg.startswith("-") and arg.lstrip("-").split("=", 1)[0] == "undefok":
      return f"--undefok {UNAPPLIED_ABSL_FLAGS['undefok']}"
  return None


def repeated_flag(args: List[str], flag_values: flags.FlagValues = flags.FLAGS) -> Optional[str]:
  """'--loss is given twice (--loss=rep, then --loss=hinge)' when a single-valued flag of `flag_values` is given
  twice in `args` with different values, else None; repeatable (multi) flags may repeat."""
  seen = {}
  for arg in args:
    if arg == "--":
      break
    if not arg.startswith("--"):
      continue
    name = arg[2:].split("=", 1)[0]
    if name not in flag_values and name.startswith("no") and name[2:] in flag_values:
      name = name[2:]  # --nofid
    if name not in flag_values or isinstance(flag_values[name], flags.MultiFlag):
      continue
    if seen.get(name, arg) != arg:
      return f"--{name} is given twice ({seen[name]}, then {arg})"
    seen[name] = arg
  return None


def guarded(main: Callable[[List[str]], int], quiet_after_error: bool = False) -> Callable[[List[str]], int]:
  """`main` with USER_ERRORS printed as one line and returned as exit code 2 (unless --verbose).

  quiet_after_error: after that line, TensorFlow's own warnings are off for the rest of the process (a
  process about to exit: objects of a refused checkpoint restore print "unrestored values" warnings when they
  are deleted at exit, which would follow the one line)."""

  def guarded_main(argv: List[str]) -> int:
    try:
      return main(argv)
    except USER_ERRORS as error:
      if flags.FLAGS["verbose"].value:
        raise
      print(one_line(_naming_the_flag(error)), file=sys.stderr)
      if quiet_after_error:
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
      return EXIT_USER_ERROR
    except KeyboardInterrupt:  # a Ctrl-C the program did not handle itself: one line, not a traceback
      if flags.FLAGS["verbose"].value:
        raise
      if startup.SIGNALS:  # SIGTERM / SIGHUP before the program's own handler (startup.quiet_stops(keep=True))
        print(f"stopped by {startup.SIGNALS[0]}: run the same command again", file=sys.stderr)
        return startup.EXIT_INTERRUPTED
      print("stopped by Ctrl-C", file=sys.stderr)
      return EXIT_CTRL_C

  return guarded_main


def call(main: Callable[[List[str]], int], argv: List[str]) -> int:
  """`main` on the command line `argv` (argv[0] the program) in this process, as `run` would run it, but
  returning the exit code instead of exiting: flags re-parsed from their defaults, user errors one line.
  For notebooks and tests that drive an entry point without starting a Python process."""
  define_verbose_flag()
  flags.FLAGS.unparse_flags()
  try:
    remaining = _parse_flags(argv)
  except SystemExit as stop:
    return stop.code
  return guarded(main)(remaining)


def run(main: Callable[[List[str]], int]) -> None:
  """`absl.app.run(main)` under the one-line rule (module docstring); defines --verbose.

  TensorFlow is imported first, without the no-GPU noise (`console.import_tensorflow_quietly`), so that
  the first lines a user reads are the program's own.
  """
  define_verbose_flag()
  with startup.quiet_stops(active=True):  # a stop during the import: one line
    console.import_tensorflow_quietly()
  app.run(guarded(main, quiet_after_error=True), flags_parser=_parse_flags)
