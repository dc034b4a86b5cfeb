"""The console progress line: steps/s and an ETA that a time limit can shorten."""

import math
import os

import tensorflow as tf

from mmd_gan_tf import summaries


def test_duration_text_keeps_hours_past_a_day():
  assert summaries.duration_text(0) == "0:00:00"
  assert summaries.duration_text(3599.6) == "1:00:00"
  assert summaries.duration_text(100000) == "27:46:40"  # not wrapped to 03:46:40 as a clock time would be
  assert summaries.duration_text(math.inf) == "--:--:--"


def test_the_eta_is_the_earlier_of_the_steps_and_the_time_limit():
  progress = summaries.Progress(start_step=0, total_steps=1000)
  line = progress.line(100, rate=0.5, values={"loss/critic": -0.25})
  assert line == "step 100/1000 | loss/critic=-0.25 | 0.50 steps/s | ETA 0:30:00"
  # --max_train_minutes with 10 minutes left ends the run before the 1800 s the steps would take.
  assert progress.line(100, 0.5, {}, seconds_left=600.0).endswith("ETA 0:10:00")
  assert progress.line(100, 0.5, {}, seconds_left=-3.0).endswith("ETA 0:00:00")
  assert progress.line(100, 0.0, {}).endswith("ETA --:--:--")


def test_a_png_with_a_name_at_the_file_systems_limit_is_written(tmp_path):
  import numpy as np  # pylint: disable=import-outside-toplevel
  path = tmp_path / ("g" * 251 + ".png")  # 255 bytes: the name plus ".tmp" would not fit
  summaries.write_png(str(path), np.zeros([4, 4, 3], np.uint8))
  assert path.read_bytes().startswith(b"\x89PNG") and sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_png_text_chunks_are_written_and_read_back(tmp_path):
  import numpy as np  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape([4, 5, 3])
  marked, plain = tmp_path / "marked.png", tmp_path / "plain.png"
  summaries.write_png(str(marked), image, text={"Software": "mmd_gan_tf test", "Note": "two"})
  summaries.write_png(str(plain), image)
  assert summaries.png_text(str(marked)) == {"Software": "mmd_gan_tf test", "Note": "two"}
  assert summaries.png_text(str(plain)) == {}
  with Image.open(marked) as read:  # still a valid PNG with the same pixels (CRCs checked by the decoder)
    read.load()
    np.testing.assert_array_equal(np.asarray(read), image)
    assert read.text == {"Software": "mmd_gan_tf test", "Note": "two"}
  (tmp_path / "text.png").write_text("not a png")
  assert summaries.png_text(str(tmp_path / "text.png")) == {}
  assert summaries.png_text(str(tmp_path / "missing.png")) == {}


def test_dropping_the_events_after_a_step_keeps_the_rest_and_an_untouched_file(tmp_path):
  """Only files with later events are rewritten; a record cut by a kill goes with them; the rest reads back."""
  def write(folder, steps):
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
      for step in steps:
        tf.summary.scalar("loss", float(step), step=step)
    writer.close()
  def steps_in(folder):
    return sorted(event.step for path in folder.iterdir() for event in tf.compat.v1.train.summary_iterator(str(path))
                  if event.summary.value)
  early, late = tmp_path / "early", tmp_path / "late"
  write(early, [1, 2])
  write(late, [1, 2, 3, 4])
  [cut] = list(late.iterdir())
  cut.write_bytes(cut.read_bytes() + cut.read_bytes()[-30:-10])  # part of a record: unreadable
  untouched = os.stat(next(early.iterdir()))
  assert summaries.drop_events_after(str(early), 2) == 0 and summaries.drop_events_after(str(late), 2) == 2
  assert os.stat(next(early.iterdir())).st_ino == untouched.st_ino and steps_in(early) == [1, 2]
  assert steps_in(late) == [1, 2] and [p.name for p in late.iterdir()] == [cut.name]
  assert summaries.drop_events_after(str(tmp_path / "missing"), 2) == 0
