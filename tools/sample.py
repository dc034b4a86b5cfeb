"""Writes a PNG grid of samples from an exported generator (SavedModel).

  python tools/sample.py --model=runs/shapes_rep_b/export --num=64 --out=grid.png [--seed=0]

Needs only TensorFlow and mmd_gan_tf: the SavedModel carries the networks.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mmd_gan_tf import startup  # noqa: E402  (no TensorFlow: before it)

# A stop during the imports (5-15 s) is one line: Ctrl-C exits 130, SIGTERM / SIGHUP 75 (run it again).
with startup.quiet_stops(__name__ == "__main__"):
  import numpy as np  # noqa: E402
  from absl import app  # noqa: E402
  from absl import flags  # noqa: E402

  from mmd_gan_tf import console  # noqa: E402

  tf = console.import_tensorflow_quietly()  # without the no-GPU lines of TensorFlow's CUDA build

  from mmd_gan_tf import checkpointing  # noqa: E402
  from mmd_gan_tf import cli  # noqa: E402
  from mmd_gan_tf import images as images_lib  # noqa: E402
  from mmd_gan_tf import summaries  # noqa: E402

MAX_GRID = 4096  # a grid of more images would be a PNG of hundreds of megapixels
SOFTWARE = "mmd_gan_tf tools/sample.py"  # the PNG tEXt mark of its grids: the only files --out replaces
FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("model", None, "SavedModel directory written by main.py (…/export).")
  flags.DEFINE_integer("num", 64, "Number of samples.")
  flags.DEFINE_integer("seed", 0, "Sampling seed.")
  flags.DEFINE_string("out", "samples.png", "Output PNG.")
  flags.DEFINE_integer("batch_size", 256, "Images generated per call (bounds the memory).")


def check_args(model: str, num: int, batch_size: int, out: str = "samples.png") -> None:
  """Raises ValueError naming the flag (--model, --num, --batch_size, --out), before anything is loaded."""
  if not out.lower().endswith(".png"):
    raise ValueError(f"--out={out} must name a .png file (the grid is written as PNG)")
  if os.path.isdir(out):
    raise ValueError(f"--out={out} is a directory; name the PNG file to write")
  checkpointing.refuse_inside_runs("--out", out)
  if os.path.lexists(out) and summaries.png_text(out).get("Software") != SOFTWARE:
    raise ValueError(f"--out={out} exists and is not a grid this tool wrote; name a new file (it replaces only "
                     "its own grids)")
  folder = os.path.dirname(os.path.abspath(out))
  while not os.path.exists(folder) and folder != os.path.dirname(folder):
    folder = os.path.dirname(folder)
  if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
    raise ValueError(f"--out={out} cannot be written: {folder} is {'not a folder' if not os.path.isdir(folder) else 'not writable'}")
  if not model or not os.path.isdir(model):
    raise ValueError(f"--model={model} is not a SavedModel directory")
  if not 0 < num <= MAX_GRID:
    raise ValueError(f"--num={num} must be in [1, {MAX_GRID}] (one grid image)")
  if batch_size <= 0:
    raise ValueError(f"--batch_size={batch_size} must be positive")
  if not os.path.exists(os.path.join(model, "saved_model.pb")):
    raise ValueError(f"--model={model} has no saved_model.pb: not a SavedModel export")


def load_generator(path: str):
  """The SavedModel at `path`, which must have main.py's `sample(num_samples, seed)` endpoint."""
  try:
    model = tf.saved_model.load(path)
  except (tf.errors.OpError, OSError, ValueError, IndexError) as error:  # IndexError: truncated variables
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise ValueError(f"--model={path} is not a readable SavedModel ({first_line}); point it at the "
                     "export/ folder written by main.py") from error
  if not hasattr(model, "sample"):
    raise ValueError(f"--model={path} has no sample(num_samples, seed) endpoint: not a generator export "
                     "of main.py")
  return model


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  check_args(FLAGS.model, FLAGS.num, FLAGS.batch_size, FLAGS.out)
  model = load_generator(FLAGS.model)
  # Batches with seeds seed, seed + 1, ...: bounded memory for any --num.
  images = np.concatenate([
      model.sample(tf.constant(min(FLAGS.batch_size, FLAGS.num - start), tf.int32),
                   tf.constant(FLAGS.seed + index, tf.int64))["images_uint8"].numpy()
      for index, start in enumerate(range(0, FLAGS.num, FLAGS.batch_size))])
  write_grid(FLAGS.out, images)
  print(f"wrote {FLAGS.num} samples to {FLAGS.out}")
  return 0


def write_grid(out: str, images: np.ndarray) -> None:
  """The grid of `images` [N, H, W, C] uint8 as the PNG `out`, marked as this tool's; a symbolic link `out` stays
  a link (the file it points to is replaced); ValueError naming --out when it cannot be written."""
  target = os.path.realpath(out)
  try:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    summaries.write_png(target, images_lib.image_grid(images), text={"Software": SOFTWARE})
  except (OSError, tf.errors.OpError) as e:  # a file where a folder should be, no permission, a full disk
    reason = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
    raise ValueError(f"--out={out} cannot be written: {reason}") from None


if __name__ == "__main__":
  define_flags()
  cli.run(main)
