"""Faults and bad input: symlink loops, empty and negative sample counts, a rerun at the final step."""

import logging
import os
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import make_two_replica_strategy
from flags import build as config_builder
from mmd_gan_tf import trainer
from mmd_gan_tf.data import folder

TINY = dict(dataset="shapes", loss="rep", width=0.125, batch_size=8, log_every=2, sample_every=2,
            checkpoint_every=2)


def _images(root, count=3):
  os.makedirs(root, exist_ok=True)
  for index in range(count):
    Image.fromarray(np.full((8, 8, 3), index, np.uint8)).save(os.path.join(root, f"{index}.png"))


@pytest.mark.parametrize("links", [("self",), ("a", "b")])
def test_symlink_loops_are_listed_once_without_hanging(tmp_path, links, caplog):
  root = tmp_path / "images"
  _images(root / "sub")
  for name in links:
    os.symlink(".", root / name)
  os.symlink("..", root / "sub" / "up")
  start = time.monotonic()
  with caplog.at_level(logging.WARNING):
    files = folder.list_files(str(root))
  assert time.monotonic() - start < 5
  assert [os.path.basename(f) for f in files] == ["0.png", "1.png", "2.png"]
  assert any("symbolic links" in r.getMessage() for r in caplog.records)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  trainer.train(config_builder.build_config(dict(TINY, workdir=str(workdir), steps=2)),
                strategy=make_two_replica_strategy())
  return workdir


def test_empty_batches_keep_the_image_shape(exported):
  loaded = tf.saved_model.load(str(exported / "export"))
  empty = loaded.signatures["sample"](num_samples=tf.constant(0), seed=tf.constant(1, tf.int64))
  assert empty["images"].shape == (0, 32, 32, 3) and empty["images_uint8"].shape == (0, 32, 32, 3)
  z = tf.zeros([0, 128])
  assert loaded.signatures["generate"](z=z)["images"].shape == (0, 32, 32, 3)


def test_negative_sample_counts_are_a_clear_error(exported):
  loaded = tf.saved_model.load(str(exported / "export"))
  with pytest.raises(tf.errors.InvalidArgumentError, match="num_samples must be >= 0"):
    loaded.signatures["sample"](num_samples=tf.constant(-3), seed=tf.constant(1, tf.int64))


def test_a_rerun_at_the_final_step_exports(tmp_path):
  """kill -9 between the last checkpoint and the export: the same command again must export."""
  cfg = config_builder.build_config(dict(TINY, workdir=str(tmp_path / "run"), steps=2))
  trainer.train(cfg, strategy=make_two_replica_strategy())
  export = tmp_path / "run" / "export"
  import shutil  # pylint: disable=import-outside-toplevel
  shutil.rmtree(export)  # as if the process died before exporting
  trainer.train(cfg, strategy=make_two_replica_strategy())
  assert (export / "saved_model.pb").exists()
