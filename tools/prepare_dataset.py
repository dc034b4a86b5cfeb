r"""Converts an image folder or an LSUN LMDB into sharded TFRecords for `--dataset=tfrecord`.

Images are decoded, preprocessed (a deterministic preset: centre crop or squash) and stored once as raw
uint8 [S, S, C], so training reads them without decoding. Bad files are skipped and named (structure checked
first; images whose compressed data fails to decode are skipped too), unless --corrupt_is_fatal.

  python tools/prepare_dataset.py --source=lsun --data_dir=/data/lsun --lsun_category=bedroom \
      --image_size=64 --out_dir=/data/bedroom64
  python main.py --dataset=tfrecord --data_dir=/data/bedroom64 --image_size=64 ...
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mmd_gan_tf import startup  # noqa: E402  (no TensorFlow: before it)

# A stop during the imports (5-15 s) is one line: Ctrl-C exits 130, SIGTERM / SIGHUP 75 (run it again).
with startup.quiet_stops(__name__ == "__main__"):
  from absl import app, flags  # noqa: E402

  from mmd_gan_tf import cli  # noqa: E402
  from mmd_gan_tf import console  # noqa: E402

  console.import_tensorflow_quietly()  # before the data modules import it: without the no-GPU lines
  from mmd_gan_tf.config import DataConfig  # noqa: E402
  from mmd_gan_tf.data import DATASETS  # noqa: E402
  from mmd_gan_tf.data import prepare as prepare_lib  # noqa: E402
  from mmd_gan_tf.data.prepare import prepare  # noqa: E402

FLAGS = flags.FLAGS
EXIT_INTERRUPTED = 75  # as main.py: interrupted, the same command continues
SOURCE_OPTIONS = ("lsun_category", "split", "corrupt_is_fatal")  # flags that only some sources read


def define_flags():
  """Flags of this tool (defined only when run as a script, so tests can import `prepare`)."""
  flags.DEFINE_enum("source", "folder", prepare_lib.sources(), "What to convert.")
  flags.DEFINE_string("data_dir", None, "The image folder, or LSUN's <category>_train_lmdb (or its parent).")
  flags.DEFINE_string("lsun_category", "bedroom", "LSUN category (with --source=lsun).")
  flags.DEFINE_string("split", "train", "LSUN split: train or val.")
  flags.DEFINE_string("out_dir", None, "Where to write the TFRecords and dataset_info.json.")
  flags.DEFINE_integer("image_size", 64, "Stored image size S (square).")
  flags.DEFINE_integer("channels", 3, "1 or 3.")
  flags.DEFINE_string("preprocessing", "default", "center (default) or resize (squash); random presets cannot "
                      "be stored.")
  flags.DEFINE_integer("num_shards", 0, "Number of shards; 0 = about 128 MiB each.")
  flags.DEFINE_integer("limit", 0, "Convert at most this many images (0 = all).")
  flags.DEFINE_bool("corrupt_is_fatal", False, "Stop at the first bad image instead of skipping it.")
  flags.mark_flags_as_required(["data_dir", "out_dir"])


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  for name in SOURCE_OPTIONS:  # given for a source that does not read it: refused, not ignored
    if FLAGS[name].present and name not in DATASETS[FLAGS.source].options:
      raise ValueError(f"--{name}={FLAGS[name].value} has no effect with --source={FLAGS.source}")
  cfg = DataConfig(dataset=FLAGS.source, data_dir=FLAGS.data_dir, lsun_category=FLAGS.lsun_category,
                   split=FLAGS.split, image_size=FLAGS.image_size, channels=FLAGS.channels,
                   preprocessing=FLAGS.preprocessing, corrupt_is_fatal=FLAGS.corrupt_is_fatal)
  if FLAGS.limit < 0 or FLAGS.num_shards < 0:
    raise ValueError(f"--limit={FLAGS.limit} and --num_shards={FLAGS.num_shards} must be >= 0 (0: all images, "
                     "shards of ~128 MiB)")
  try:
    with cli.signals_as_interrupt():  # SIGTERM and SIGHUP stop it as Ctrl-C does
      info = prepare(cfg, FLAGS.out_dir, FLAGS.num_shards, FLAGS.limit)
  except KeyboardInterrupt:
    print(f"interrupted: the dataset in --out_dir={FLAGS.out_dir} is unfinished; run the same command again "
          "(it removes the unfinished shards first)", file=sys.stderr)
    return EXIT_INTERRUPTED
  print(f"prepared {info['num_examples']} images ({info['skipped']} skipped, {info['decode_failures']} failed "
        f"to decode) in {FLAGS.out_dir}; train with --dataset=tfrecord --data_dir={FLAGS.out_dir} "
        f"--image_size={info['image_size']} --channels={info['channels']}")
  return 0


if __name__ == "__main__":
  define_flags()
  cli.run(main)
