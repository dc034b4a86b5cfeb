"""tools/prepare_dataset.py: LMDB / folder -> sharded TFRecords, read back identically."""

import io
import json
import os
import subprocess
import sys

import lmdb
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from helpers import ROOT, tool_env
from helpers import colour_data_config as DataConfig  # colour images unless a test says otherwise
from mmd_gan_tf.data import make_dataset, tfrecord, validate_data_config
from mmd_gan_tf.data.prepare import prepare


def encode(array, fmt, **kwargs):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, fmt, **kwargs)
  return buffer.getvalue()


def random_image(seed, height, width):
  return np.random.RandomState(seed).randint(0, 256, [height, width, 3]).astype(np.uint8)


@pytest.fixture
def lsun_dir(tmp_path):
  """LSUN's layout with 11 WebP and JPEG images of several sizes and one truncated value."""
  env = lmdb.open(str(tmp_path / "bedroom_train_lmdb"), map_size=1 << 26)
  with env.begin(write=True) as txn:
    for i in range(11):
      image = random_image(i, 40 + 4 * (i % 4), 48)
      data = encode(image, "WEBP", quality=80) if i % 2 else encode(image, "JPEG", quality=90)
      txn.put(f"{i * 104729:040x}".encode(), data)
    txn.put(b"e" * 40, encode(random_image(99, 40, 40), "JPEG")[:500])
  env.close()
  return str(tmp_path)


def _all_images(cfg):
  return np.concatenate([b.numpy() for b in make_dataset(cfg, 1, 0, repeat=False, shuffle=False)])


def test_lsun_to_tfrecord_reads_back_identically(lsun_dir, tmp_path):
  source = DataConfig(dataset="lsun", data_dir=lsun_dir, image_size=32)
  out = str(tmp_path / "prepared")
  info = prepare(source, out, num_shards=3, progress=False)
  assert info["num_examples"] == 11 and info["skipped"] == 1 and info["decode_failures"] == 0
  assert "e" * 40 in info["skipped_names"][0]
  assert sorted(os.listdir(out)) == sorted([tfrecord.INFO_FILE] + [os.path.basename(tfrecord.shard_path(out, i, 3))
                                                                   for i in range(3)])
  prepared = DataConfig(dataset="tfrecord", data_dir=out, image_size=32)
  direct, read_back = _all_images(source), _all_images(prepared)
  assert direct.shape == (11, 32, 32, 3)
  np.testing.assert_array_equal(read_back, direct)


def test_tfrecord_shuffles_repeats_and_shards(lsun_dir, tmp_path):
  out = str(tmp_path / "prepared")
  prepare(DataConfig(dataset="lsun", data_dir=lsun_dir, image_size=16), out, num_shards=2, progress=False)
  cfg = DataConfig(dataset="tfrecord", data_dir=out, image_size=16, image_range="sigmoid")
  everything = {im.tobytes() for im in _all_images(cfg)}
  assert len(everything) == 11
  shuffled = make_dataset(cfg, 11, 5)
  first, second = [b.numpy() for b in shuffled.take(2)]
  assert {im.tobytes() for im in first} == everything  # one epoch, then the next
  assert not np.array_equal(first, second)  # reshuffled
  for shards in (2, 3):  # whole files per pipeline (2 | 2 shards), or records one by one
    parts = []
    for pipeline in range(shards):
      ctx = tf.distribute.InputContext(num_input_pipelines=shards, input_pipeline_id=pipeline)
      parts.append({im.tobytes() for b in make_dataset(cfg, 1, 0, ctx, repeat=False) for im in b.numpy()})
    assert sum(len(p) for p in parts) == 11 and set.union(*parts) == everything


def test_folder_to_tfrecord_skips_bad_files(tmp_path):
  images = tmp_path / "images"
  images.mkdir()
  for i in range(5):
    (images / f"{i}.png").write_bytes(encode(random_image(i, 24, 30), "PNG"))
  (images / "broken.jpg").write_bytes(encode(random_image(9, 24, 24), "JPEG")[:200])
  source = DataConfig(dataset="folder", data_dir=str(images), image_size=16, preprocessing="resize")
  info = prepare(source, str(tmp_path / "out"), progress=False)
  assert info["num_examples"] == 5 and info["num_shards"] == 1 and info["skipped"] == 1
  prepared = DataConfig(dataset="tfrecord", data_dir=str(tmp_path / "out"), image_size=16)
  np.testing.assert_array_equal(_all_images(prepared), _all_images(source))


def test_prepare_refuses_bad_requests(lsun_dir, tmp_path):
  source = DataConfig(dataset="lsun", data_dir=lsun_dir, image_size=16)
  with pytest.raises(ValueError, match="'random' is random"):
    prepare(DataConfig(dataset="lsun", data_dir=lsun_dir, preprocessing="random"), str(tmp_path / "a"))
  prepare(source, str(tmp_path / "b"), progress=False)
  with pytest.raises(ValueError, match="already holds"):
    prepare(source, str(tmp_path / "b"), progress=False)
  with pytest.raises(ValueError, match="16px.*image_size=32"):
    make_dataset(DataConfig(dataset="tfrecord", data_dir=str(tmp_path / "b"), image_size=32), 2, 0)
  with pytest.raises(ValueError, match="no dataset_info.json"):
    make_dataset(DataConfig(dataset="tfrecord", data_dir=lsun_dir), 2, 0)
  with open(os.path.join(tmp_path / "b", tfrecord.INFO_FILE)) as f:
    assert json.load(f)["format"] == tfrecord.FORMAT


def test_the_out_dir_is_checked_before_the_scan_and_locked_while_writing(tmp_path):
  from mmd_gan_tf import checkpointing  # pylint: disable=import-outside-toplevel
  images = tmp_path / "images"
  images.mkdir()
  for i in range(3):
    (images / f"{i}.png").write_bytes(encode(random_image(i, 16, 16), "PNG"))
  source = DataConfig(dataset="folder", data_dir=str(images), image_size=16)
  missing = DataConfig(dataset="folder", data_dir=str(tmp_path / "not_there"), image_size=16)
  (tmp_path / "mine").mkdir()
  (tmp_path / "mine" / "thesis.tex").write_text("keep me")
  with pytest.raises(ValueError, match=r"--out_dir=.*mine is not empty \(e.g. 'thesis.tex'\)"):
    prepare(missing, str(tmp_path / "mine"), progress=False)  # named before the source is scanned
  assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"
  with pytest.raises(ValueError, match="is inside --data_dir"):
    prepare(source, str(images / "prepared"), progress=False)
  (tmp_path / "a_file").write_text("")
  with pytest.raises(ValueError, match="exists and is not a folder"):
    prepare(source, str(tmp_path / "a_file"), progress=False)
  with pytest.raises(ValueError, match="--out_dir is empty"):
    prepare(source, "", progress=False)
  run = tmp_path / "run"  # a training run: its folders are its own (its export would then be refused)
  (run / "checkpoints").mkdir(parents=True)
  (run / "config.json").write_text("{}")
  with pytest.raises(ValueError, match=r"--out_dir=.*run/export/data is inside the run .*\(its export/\)"):
    prepare(source, str(run / "export" / "data"), progress=False)
  theirs = tmp_path / "theirs"  # shard-named files without an interrupted run's lock beside them: the user's
  theirs.mkdir()
  (theirs / "images-00000-of-00001.tfrecord").write_bytes(b"someone's data")
  with pytest.raises(ValueError, match=r"theirs is not empty \(e.g. 'images-00000-of-00001.tfrecord'\)"):
    prepare(source, str(theirs), progress=False)
  assert (theirs / "images-00000-of-00001.tfrecord").read_bytes() == b"someone's data"
  busy = tmp_path / "busy"
  busy.mkdir()
  holder = checkpointing.WorkdirLock(str(busy))  # another prepare_dataset.py writing there
  try:
    with pytest.raises(ValueError, match=r"--workdir=.*busy is in use by PID .*choose another --out_dir"):
      prepare(source, str(busy), progress=False)
  finally:
    holder.release()
  (busy / "images-00000-of-00002.tfrecord").write_bytes(b"cut short")  # an interrupted earlier run
  info = prepare(source, str(busy), progress=False)
  assert info["num_examples"] == 3 and tfrecord.read_info(str(busy))["num_shards"] == 1
  assert not (busy / "images-00000-of-00002.tfrecord").exists()


@pytest.mark.end_to_end
def test_command_line(lsun_dir, tmp_path):
  out = str(tmp_path / "cli")
  command = [sys.executable, os.path.join(ROOT, "tools", "prepare_dataset.py"), "--source=lsun",
             f"--data_dir={lsun_dir}", f"--out_dir={out}", "--image_size=16", "--limit=4"]
  result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=tool_env())
  assert result.returncode == 0, result.stderr
  assert "prepared 4 images" in result.stdout
  assert tfrecord.read_info(out)["num_examples"] == 4
  # A source-specific flag for a source that does not read it: one line, nothing written.
  ignored = str(tmp_path / "ignored")
  for flag in ("--split=val", "--lsun_category=tower"):
    result = subprocess.run(command[:2] + ["--source=folder", f"--data_dir={lsun_dir}", f"--out_dir={ignored}",
                                           flag], capture_output=True, text=True, timeout=120, env=tool_env())
    assert result.returncode == 2 and f"{flag} has no effect with --source=folder" in result.stderr.splitlines()[-1]
  assert not os.path.exists(ignored)


@pytest.mark.parametrize("damage", ["truncated", "emptied"])
def test_a_damaged_shard_is_named_before_training(lsun_dir, tmp_path, damage):
  out = tmp_path / "prepared"
  prepare(DataConfig(dataset="lsun", data_dir=lsun_dir, image_size=16), str(out), num_shards=3, progress=False)
  shard = out / os.path.basename(tfrecord.shard_path(str(out), 1, 3))
  data = shard.read_bytes()
  shard.write_bytes(data[:len(data) // 2] if damage == "truncated" else b"")
  with pytest.raises(ValueError, match=f"{shard} has {len(data) // 2 if damage == 'truncated' else 0} bytes, "
                                       f"not the {len(data)} of its 4 images"):
    validate_data_config(DataConfig(dataset="tfrecord", data_dir=str(out), image_size=16))


def test_a_prepared_dataset_smaller_than_one_batch_is_refused_as_folders_and_npz_are(lsun_dir, tmp_path):
  out = str(tmp_path / "prepared")
  prepare(DataConfig(dataset="lsun", data_dir=lsun_dir, image_size=16), out, num_shards=1, progress=False)
  cfg = DataConfig(dataset="tfrecord", data_dir=out, image_size=16)
  with pytest.raises(ValueError, match=r"has 11 images \(11 per input pipeline\), fewer than one batch of 12"):
    make_dataset(cfg, 12, 0)
  assert next(iter(make_dataset(cfg, 11, 0))).shape == (11, 16, 16, 3)


def test_more_shards_than_images_writes_one_shard_per_image(lsun_dir, tmp_path):
  """--num_shards=1000 with 11 images wrote 989 empty shards (now at most one per source entry: 12, one of them
  skipped as truncated when read)."""
  out = str(tmp_path / "prepared")
  info = prepare(DataConfig(dataset="lsun", data_dir=lsun_dir, image_size=16), out, num_shards=1000, progress=False)
  assert info["num_shards"] == 12 and len([n for n in os.listdir(out) if n != tfrecord.INFO_FILE]) == 12
  assert len(_all_images(DataConfig(dataset="tfrecord", data_dir=out, image_size=16))) == 11
