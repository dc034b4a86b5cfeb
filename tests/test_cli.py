"""The one-line rule of mmd_gan_tf.cli, and the library errors that must name their file."""

import signal
import subprocess
import sys

import pytest
from absl import app
from absl import flags

from helpers import ROOT, tool_env
from mmd_gan_tf import cli
from mmd_gan_tf.data import tfrecord
from mmd_gan_tf.metrics import inception_weights


def _raising(error):
  def main(argv):
    del argv
    raise error
  return main


@pytest.mark.parametrize("error", [ValueError("--num=0: must be >= 1\n  (a second line)"),
                                   FileNotFoundError("x.npz: no such file"), app.UsageError("stray")])
def test_user_errors_are_one_line_and_exit_2(error, capsys):
  cli.define_verbose_flag()
  assert cli.guarded(_raising(error))(["tool"]) == cli.EXIT_USER_ERROR
  stderr = capsys.readouterr().err
  assert stderr.count("\n") == 1 and stderr.startswith("error: ") and "Traceback" not in stderr


def test_verbose_and_bugs_keep_the_traceback():
  cli.define_verbose_flag()
  with pytest.raises(KeyError):
    cli.guarded(_raising(KeyError("a bug")))(["tool"])
  flags.FLAGS["verbose"].value = True
  try:
    with pytest.raises(ValueError):
      cli.guarded(_raising(ValueError("user error")))(["tool"])
  finally:
    flags.FLAGS["verbose"].value = False


def test_corrupt_inception_npz_names_the_file(tmp_path):
  path = tmp_path / "fid_inception_v3_2015_12_05.npz"
  path.write_bytes(b"PK\x03\x04" + b"\x00" * 64)  # a zip header, then nothing: a truncated download
  with pytest.raises(ValueError, match=f"{path} is not a readable Inception weights .npz"):
    inception_weights.load_inception_weights(str(path))


def test_corrupt_dataset_info_names_the_file(tmp_path):
  (tmp_path / tfrecord.INFO_FILE).write_text('{"format": "mmd_gan_tf.tfrecord.v1", "num_')
  with pytest.raises(ValueError, match=f"{tmp_path / tfrecord.INFO_FILE} is not valid JSON"):
    tfrecord.read_info(str(tmp_path))


@pytest.mark.parametrize("info, message", [
    ('["a list"]', "holds a JSON list, not the object tools/prepare_dataset.py writes"),
    ('{"format": "mmd_gan_tf.tfrecord.v1", "image_size": "32", "channels": 3, "num_examples": 4, "num_shards": 1}',
     "image_size='32', not a whole number >= 1"),
    ('{"format": "mmd_gan_tf.tfrecord.v1", "image_size": 32, "channels": 3, "num_examples": 4, "num_shards": 0}',
     "num_shards=0, not a whole number >= 1"),
    ('{"format": "mmd_gan_tf.tfrecord.v1", "image_size": 32, "channels": 3.5, "num_examples": 4, "num_shards": 1}',
     "channels=3.5"),
    ('{"format": "mmd_gan_tf.tfrecord.v1", "image_size": 32, "channels": 3, "num_shards": 1}',
     "num_examples=None"),
])
def test_dataset_info_with_wrong_types_names_the_field(tmp_path, info, message):
  (tmp_path / tfrecord.INFO_FILE).write_text(info)
  with pytest.raises(ValueError, match=message) as raised:
    tfrecord.read_info(str(tmp_path))
  assert str(tmp_path / tfrecord.INFO_FILE) in str(raised.value)


def test_sample_tool_on_a_folder_that_is_not_a_saved_model(tmp_path):
  (tmp_path / "saved_model.pb").write_bytes(b"not a protocol buffer")
  result = subprocess.run([sys.executable, str(ROOT / "tools" / "sample.py"), f"--model={tmp_path}"],
                          capture_output=True, text=True, timeout=300, check=False, env=tool_env())
  assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
  [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert f"--model={tmp_path} is not a readable SavedModel" in line


def test_a_flag_that_does_not_parse_is_one_line():
  result = subprocess.run([sys.executable, "-m", "tools.sample", "--num=many"], capture_output=True,
                          text=True, timeout=300, check=False, cwd=str(ROOT), env=tool_env())
  assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
  [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert "--num" in line and "many" in line


def test_a_library_config_error_names_the_programs_own_flag():
  """prepare_dataset.py's --image_size=0 was 'image_size 0 is outside [4, 1024]': no flag named."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import cli  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import config as config_lib  # pylint: disable=import-outside-toplevel
  flag_values = flags.FlagValues()
  flags.DEFINE_integer("image_size", 64, "size", flag_values=flag_values)
  error = config_lib.ConfigError("data.image_size", 0, "is outside [4, 1024]")
  assert str(cli._naming_the_flag(error, flag_values)) == "--image_size=0: is outside [4, 1024]"  # pylint: disable=protected-access
  other = config_lib.ConfigError("data.channels", 2, "must be 1 or 3")  # no such flag in this program
  assert cli._naming_the_flag(other, flag_values) is other  # pylint: disable=protected-access


def test_a_processs_user_error_silences_tensorflows_warnings_that_would_follow_it():
  """Objects of a refused --init_from restore print "unrestored values" warnings when deleted at exit: after
  the one line, a process (`cli.run`) keeps TensorFlow's logger at ERROR; an in-process call does not."""
  import logging  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import cli  # pylint: disable=import-outside-toplevel

  def refused(argv):
    raise ValueError("--init_from=x: does not fit")

  cli.define_verbose_flag()
  logger = logging.getLogger("tensorflow")
  level = logger.level
  try:
    assert cli.guarded(refused)([]) == cli.EXIT_USER_ERROR and logger.level == level
    assert cli.guarded(refused, quiet_after_error=True)([]) == cli.EXIT_USER_ERROR
    assert logger.level == logging.ERROR
  finally:
    logger.setLevel(level)


def test_absls_own_error_prefix_is_not_doubled():
  from mmd_gan_tf import cli  # pylint: disable=import-outside-toplevel
  assert cli.one_line(ValueError("ERROR:: Unable to open flagfile: x")) == "error: Unable to open flagfile: x"
  assert cli.one_line(ValueError("a\n  b")) == "error: a b"


def test_a_flag_given_twice_with_different_values_is_named(tmp_path):
  """`--loss=rep ... --loss=hinge` trained hinge without a word (absl keeps the last value, which wrapper
  scripts rely on; main.py now names it in a warning)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import cli  # pylint: disable=import-outside-toplevel
  flag_values = flags.FlagValues()
  flags.DEFINE_string("loss", "rep", "loss", flag_values=flag_values)
  flags.DEFINE_bool("fid", False, "fid", flag_values=flag_values)
  flags.DEFINE_multi_string("run", [], "runs", flag_values=flag_values)
  assert cli.repeated_flag(["--loss=rep", "--fid", "--loss=hinge"], flag_values) == (
      "--loss is given twice (--loss=rep, then --loss=hinge)")
  assert cli.repeated_flag(["--fid", "--nofid"], flag_values) == "--fid is given twice (--fid, then --nofid)"
  assert cli.repeated_flag(["--loss=rep", "--loss=rep", "--run=a:x", "--run=b:y", "--", "--loss=x"],
                           flag_values) is None
  flagfile = tmp_path / "flags.txt"  # a --flagfile's flags count too, as cli's parser expands them first
  flagfile.write_text("--loss=hinge\n")
  expanded = flag_values.read_flags_from_files(["--loss=rep", f"--flagfile={flagfile}"], force_gnu=False)
  assert cli.repeated_flag(expanded, flag_values) == "--loss is given twice (--loss=rep, then --loss=hinge)"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_a_tools_work_as_ctrl_c_does_and_the_handlers_come_back(signum):
  before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
  with pytest.raises(KeyboardInterrupt):
    with cli.signals_as_interrupt():
      signal.raise_signal(signum)
      pytest.fail("the signal did not stop the block")
  assert {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)} == before


def test_absl_flags_that_would_be_accepted_but_not_applied_are_refused():
  from absl import flags  # pylint: disable=import-outside-toplevel
  flag_values = flags.FlagValues()  # absl.app's own definitions of the two
  flags.DEFINE_bool("only_check_args", False, "", flag_values=flag_values)
  flags.DEFINE_string("log_dir", "", "", flag_values=flag_values)
  def refused(*args):
    flag_values.unparse_flags()
    flag_values(["prog", *args], known_only=True)
    return cli.unapplied_absl_flag(list(args), flag_values)
  assert refused("--only_check_args").startswith("--only_check_args ")  # exited 0 without the program's checks
  assert refused("--log_dir=logs").startswith("--log_dir ")  # a folder nothing is written to
  assert refused("--undefok=foo", "--foo=1").startswith("--undefok ")  # --foo accepted and ignored
  assert refused("--noonly_check_args") is None and refused("--", "--undefok=x") is None and refused() is None


def test_only_check_args_is_refused_by_a_tool_in_one_line(tmp_path):
  result = subprocess.run([sys.executable, "tools/sample.py", f"--model={tmp_path}/none", "--only_check_args"],
                          cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=120)
  assert result.returncode == 2, result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith("error: --only_check_args "), result.stderr
