"""Image folders and LSUN LMDBs: mixed formats, bad files, grayscale, layouts, sharding across replicas."""

import io
import logging
import os

import lmdb
import numpy as np
import pytest
import tensorflow as tf

from helpers import colour_data_config as DataConfig  # colour images unless a test says otherwise
from mmd_gan_tf.data import folder, make_dataset, validate_data_config
from mmd_gan_tf.data.image_checks import inspect_image
from PIL import Image


def encode(array, fmt: str, **kwargs) -> bytes:
  """Encodes a uint8 array (or a PIL image) in `fmt`."""
  buffer = io.BytesIO()
  image = array if isinstance(array, Image.Image) else Image.fromarray(array)
  image.save(buffer, fmt, **kwargs)
  return buffer.getvalue()


def random_image(seed, height=32, width=32, channels=3):
  shape = [height, width] if channels == 1 else [height, width, channels]
  return np.random.RandomState(seed).randint(0, 256, shape).astype(np.uint8)


def write(path, data: bytes):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)


@pytest.fixture
def mixed_folder(tmp_path):
  """12 usable images (PNG, JPEG, WebP, BMP, 2 grayscale, RGBA, nested) and 5 bad files."""
  root = tmp_path / "images"
  good = {"a.png": encode(random_image(0), "PNG"), "b.jpg": encode(random_image(1), "JPEG"),
          "c.webp": encode(random_image(2), "WEBP", lossless=True), "d.bmp": encode(random_image(3), "BMP"),
          "gray.png": encode(random_image(4, channels=1), "PNG"),
          "gray.jpeg": encode(random_image(5, channels=1), "JPEG"),
          "rgba.png": encode(random_image(6, channels=4), "PNG"),
          "sub/e.webp": encode(random_image(7, 40, 30), "WEBP", quality=90),
          "sub/f.JPG": encode(random_image(8, 50, 60), "JPEG"),
          "sub/deeper/g.png": encode(random_image(9, 20, 24), "PNG"),
          "sub/deeper/h.bmp": encode(random_image(10, 33, 31), "BMP"),
          "noext": encode(random_image(11), "PNG")}
  bad = {"truncated.jpg": encode(random_image(12), "JPEG")[:400],
         "truncated.png": encode(random_image(13), "PNG")[:300],
         "truncated.webp": encode(random_image(14), "WEBP")[:200],
         "notes.txt": b"not an image\n", "sub/empty.png": b"",
         "palette.bmp": encode(Image.fromarray(random_image(15)).convert("P"), "BMP")}
  for name, data in {**good, **bad}.items():
    write(str(root / name), data)
  return str(root), good, bad


def test_inspect_finds_formats_grayscale_and_damage():
  assert inspect_image(encode(random_image(0), "WEBP")).format == "webp"
  assert inspect_image(encode(random_image(0, channels=1), "JPEG")).grayscale
  assert not inspect_image(encode(random_image(0), "JPEG")).grayscale
  assert "truncated" in inspect_image(encode(random_image(0), "JPEG")[:-10]).problem
  assert "not an image" in inspect_image(b"GIF? no").problem
  assert "truncated" in inspect_image(encode(random_image(0), "WEBP")[:-1]).problem


def test_folder_mixed_formats_with_bad_files(mixed_folder, caplog):
  root, good, bad = mixed_folder
  with caplog.at_level(logging.WARNING):
    paths, report = folder.scan_folder(root, False)
  assert sorted(os.path.relpath(p, root) for p in paths) == sorted(good)
  assert report.usable == len(good) and report.grayscale == 2
  assert sorted(os.path.relpath(name, root) for name, _ in report.skipped) == sorted(bad)
  assert "notes.txt" in caplog.text and "truncated.jpg" in caplog.text  # the warning names them
  cfg = DataConfig(dataset="folder", data_dir=root, image_size=16)
  batches = [b.numpy() for b in make_dataset(cfg, 4, 0, repeat=False)]
  assert len(batches) == len(good) // 4
  images = np.concatenate(batches)
  assert images.shape == (12, 16, 16, 3) and images.dtype == np.float32
  assert images.min() >= -1.0 and images.max() <= 1.0


def _claims(data: bytes, fmt: str, width: int, height: int) -> bytes:
  """`data` (an encoded image) with its header's size fields rewritten to width x height."""
  import struct  # pylint: disable=import-outside-toplevel
  data = bytearray(data)
  if fmt == "PNG":
    data[16:24] = struct.pack(">II", width, height)
  elif fmt == "BMP":
    data[18:26] = struct.pack("<ii", width, height)
  elif fmt == "GIF":
    data[6:10] = struct.pack("<HH", width, height)
  else:  # JPEG: the first start-of-frame segment (baseline in Pillow's output)
    pos = data.index(b"\xff\xc0")
    data[pos + 5:pos + 9] = struct.pack(">HH", height, width)
  return bytes(data)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF"])
def test_a_header_that_claims_too_many_pixels_is_refused_before_decoding(fmt):
  data = encode(random_image(0), fmt)
  assert inspect_image(data).problem is None
  assert "claims 10000x10000 pixels" in inspect_image(_claims(data, fmt, 10000, 10000)).problem
  assert inspect_image(_claims(data, fmt, 9000, 9000)).problem is None  # 81 M pixels: under the limit
  assert "0x32" in inspect_image(_claims(data, fmt, 0, 32)).problem


def test_the_folder_scan_reads_only_what_it_needs_and_skips_unusable_names(tmp_path, caplog, monkeypatch):
  root = tmp_path / "images"
  write(str(root / "good.png"), encode(random_image(0), "PNG"))
  write(str(root / "bomb.png"), _claims(encode(random_image(1), "PNG"), "PNG", 10000, 10000))
  with open(os.fsencode(str(root)) + b"/caf\xe9.png", "wb") as f:  # a Latin-1 name: not UTF-8
    f.write(encode(random_image(2), "PNG"))
  for name, head in (("video.mp4", b"\x00\x00\x00\x18ftypmp42"), ("huge.png", b"\x89PNG\r\n\x1a\n")):
    with open(root / name, "wb") as f:  # sparse 3 GB files: nothing beyond the signature may be read
      f.write(head)
      f.truncate(3 * 2**30)
  read = {}
  real_open = open

  class Counting:
    def __init__(self, path, mode="r", **kwargs):
      self.path, self.file = os.path.basename(path), real_open(path, mode, **kwargs)

    def read(self, size=-1):
      data = self.file.read(size)
      read[self.path] = read.get(self.path, 0) + len(data)
      return data

    def __enter__(self):
      return self

    def __exit__(self, *args):
      self.file.close()

  monkeypatch.setattr(folder, "open", Counting, raising=False)
  with caplog.at_level(logging.WARNING):
    paths, report = folder.scan_folder(str(root), False)
  assert [os.path.basename(p) for p in paths] == ["good.png"]
  reasons = {os.path.basename(name): why for name, why in report.skipped}
  assert sorted(reasons) == ["bomb.png", "huge.png", "video.mp4"]
  assert "claims 10000x10000" in reasons["bomb.png"] and "3072 MiB" in reasons["huge.png"]
  assert read["video.mp4"] <= 16 and read["huge.png"] <= 16
  assert "not valid UTF-8" in caplog.text and "caf\\xe9.png" in caplog.text


def test_folder_corrupt_is_fatal_names_the_file(mixed_folder):
  root, _, _ = mixed_folder
  cfg = DataConfig(dataset="folder", data_dir=root, corrupt_is_fatal=True)
  with pytest.raises(ValueError, match="corrupt_is_fatal") as error:
    validate_data_config(cfg)
  assert any(name in str(error.value) for name in ("truncated", "notes.txt", "empty.png", "palette.bmp"))


def test_folder_same_size_lossless_images_come_back_exactly(tmp_path):
  originals = [random_image(i, channels=1 if i == 2 else 3) for i in range(4)]
  for i, image in enumerate(originals):
    write(str(tmp_path / f"{i}.{'png' if i % 2 else 'webp'}"), encode(image, "PNG" if i % 2 else "WEBP",
                                                                   lossless=True))
  cfg = DataConfig(dataset="folder", data_dir=str(tmp_path), image_range="sigmoid")
  images = next(iter(make_dataset(cfg, 4, 0, shuffle=False))).numpy()
  expected = [np.repeat(o[..., None], 3, -1) if o.ndim == 2 else o for o in originals]
  np.testing.assert_allclose(images * 255.0, np.stack(expected).astype(np.float32), atol=1e-3)
  with pytest.raises(ValueError, match=r"has 4 images \(4 per input pipeline\), fewer than one batch of 8"):
    make_dataset(cfg, 8, 0)  # as an npz source is refused


def test_folder_grayscale_dataset_from_rgb(tmp_path):
  write(str(tmp_path / "a.png"), encode(random_image(0), "PNG"))
  cfg = DataConfig(dataset="folder", data_dir=str(tmp_path), channels=1, image_range="sigmoid")
  image = next(iter(make_dataset(cfg, 1, 0))).numpy()[0]
  luminance = random_image(0) @ np.array([0.2989, 0.5870, 0.1140]) / 255.0
  assert image.shape == (32, 32, 1)
  np.testing.assert_allclose(image[..., 0], luminance, atol=1 / 255)


def test_folder_bad_directories_fail_before_training(tmp_path):
  with pytest.raises(ValueError, match="missing_dir"):
    validate_data_config(DataConfig(dataset="folder", data_dir=str(tmp_path / "missing_dir")))
  (tmp_path / "empty_dir").mkdir()
  with pytest.raises(ValueError, match="empty_dir.*no files"):
    validate_data_config(DataConfig(dataset="folder", data_dir=str(tmp_path / "empty_dir")))
  write(str(tmp_path / "junk" / "a.txt"), b"text")
  with pytest.raises(ValueError, match="no usable image.*a.txt"):
    validate_data_config(DataConfig(dataset="folder", data_dir=str(tmp_path / "junk")))
  for dataset in ("folder", "lsun", "tfrecord"):
    with pytest.raises(ValueError, match=f"data_dir=None: --dataset={dataset} reads its images from it"):
      validate_data_config(DataConfig(dataset=dataset))


def make_lsun_lmdb(root, images, category="bedroom", extra=None):
  """An LMDB in LSUN's layout (<category>_train_lmdb, hex id -> encoded image); returns the encoded values."""
  path = os.path.join(root, f"{category}_train_lmdb")
  values = {}
  env = lmdb.open(path, map_size=1 << 26)
  with env.begin(write=True) as txn:
    for i, image in enumerate(images):
      data = encode(image, "WEBP" if i % 2 else "JPEG", quality=90)
      key = f"{i * 7919:040x}".encode()
      txn.put(key, data)
      values[key] = data
    for key, data in (extra or {}).items():
      txn.put(key, data)
  env.close()
  return path, values


def test_lsun_lmdb_webp_and_jpeg(tmp_path):
  images = [random_image(i, 48 + 8 * (i % 3), 64) for i in range(10)]
  path, _ = make_lsun_lmdb(str(tmp_path), images)
  for data_dir in (str(tmp_path), path):  # the parent or the LMDB itself
    cfg = DataConfig(dataset="lsun", data_dir=data_dir, image_size=16)
    batches = [b.numpy() for b in make_dataset(cfg, 5, 0, repeat=False)]
    assert len(batches) == 2 and batches[0].shape == (5, 16, 16, 3)
    images_read = np.concatenate(batches)
    assert images_read.min() >= -1 and images_read.max() <= 1
    assert len({im.tobytes() for im in images_read}) == 10


def test_lsun_bad_values_are_skipped_and_named(tmp_path, caplog):
  bad_key = b"f" * 40
  make_lsun_lmdb(str(tmp_path), [random_image(i) for i in range(6)],
                 extra={bad_key: encode(random_image(9), "WEBP")[:100]})
  cfg = DataConfig(dataset="lsun", data_dir=str(tmp_path), image_size=16)
  with caplog.at_level(logging.WARNING):
    batches = list(make_dataset(cfg, 3, 0, repeat=False))
  assert len(batches) == 2  # 6 good images; the truncated one is dropped
  assert "f" * 40 in caplog.text and "truncated" in caplog.text
  fatal = DataConfig(dataset="lsun", data_dir=str(tmp_path), image_size=16, corrupt_is_fatal=True)
  with pytest.raises(Exception, match="f{40}"):
    list(make_dataset(fatal, 7, 0, repeat=False, shuffle=False))


def test_lmdb_not_in_lsun_layout(tmp_path):
  env = lmdb.open(str(tmp_path / "bedroom_train_lmdb"), map_size=1 << 20)
  with env.begin(write=True) as txn:
    txn.put(b"key", b"{'some': 'json'}")
  env.close()
  with pytest.raises(ValueError, match="not in LSUN's layout"):
    validate_data_config(DataConfig(dataset="lsun", data_dir=str(tmp_path)))
  with pytest.raises(ValueError, match="tower_train_lmdb"):
    validate_data_config(DataConfig(dataset="lsun", data_dir=str(tmp_path), lsun_category="tower"))


def test_lsun_random_crop_is_seeded(tmp_path):
  make_lsun_lmdb(str(tmp_path), [random_image(i, 32, 64) for i in range(4)])
  cfg = DataConfig(dataset="lsun", data_dir=str(tmp_path), image_size=32, preprocessing="binkowski")

  def batch(seed):
    return next(iter(make_dataset(cfg, 4, seed, shuffle=False))).numpy()
  np.testing.assert_array_equal(batch(0), batch(0))
  assert np.abs(batch(0) - batch(1)).max() > 0.1


def _distinct_folder(root, count):
  for i in range(count):
    write(os.path.join(root, f"{i:02d}.png"), encode(np.full([8, 8, 3], i * 15, np.uint8), "PNG"))


def _ids(images):
  return [int(round(float(v))) for v in (images[:, 0, 0, 0] * 255.0 / 15.0)]


def test_replicas_see_disjoint_data(tmp_path, two_replica_strategy):
  _distinct_folder(str(tmp_path), 16)
  cfg = DataConfig(dataset="folder", data_dir=str(tmp_path), image_size=8, image_range="sigmoid")
  distributed = two_replica_strategy.distribute_datasets_from_function(
      lambda ctx: make_dataset(cfg, ctx.get_per_replica_batch_size(8), 0, input_context=ctx, repeat=False))
  seen = [[], []]
  for per_replica in distributed:
    for replica, images in enumerate(two_replica_strategy.experimental_local_results(per_replica)):
      assert images.shape == (4, 8, 8, 3)
      seen[replica] += _ids(images.numpy())
  assert not set(seen[0]) & set(seen[1])
  assert sorted(seen[0] + seen[1]) == list(range(16))


def test_input_pipelines_shard_the_examples(tmp_path, two_replica_strategy):
  # PER_REPLICA input mode gives every replica its own pipeline: each must read its own shard.
  _distinct_folder(str(tmp_path), 16)
  cfg = DataConfig(dataset="folder", data_dir=str(tmp_path), image_size=8, image_range="sigmoid")
  options = tf.distribute.InputOptions(
      experimental_replication_mode=tf.distribute.InputReplicationMode.PER_REPLICA,
      experimental_place_dataset_on_device=False, experimental_fetch_to_device=True)
  contexts = []

  def dataset_fn(ctx):
    contexts.append((ctx.input_pipeline_id, ctx.num_input_pipelines))
    return make_dataset(cfg, ctx.get_per_replica_batch_size(8), 0, input_context=ctx, repeat=False)
  distributed = two_replica_strategy.distribute_datasets_from_function(dataset_fn, options)
  seen = [[], []]
  for per_replica in distributed:
    for replica, images in enumerate(two_replica_strategy.experimental_local_results(per_replica)):
      seen[replica] += _ids(images.numpy())
  assert sorted(contexts) == [(0, 2), (1, 2)]
  assert sorted(seen[0]) == list(range(0, 16, 2)) and sorted(seen[1]) == list(range(1, 16, 2))


def test_every_source_is_one_registry_entry():
  from mmd_gan_tf.data import DATASETS, image_identity, pipeline  # pylint: disable=import-outside-toplevel
  for name, source in DATASETS.items():
    assert isinstance(source, pipeline.DataSource) and source.description, name
    if source.needs_data_dir:
      with pytest.raises(ValueError, match=f"data_dir=None: --dataset={name} reads its images from it"):
        validate_data_config(DataConfig(dataset=name, image_size=32))
  assert sorted(n for n, s in DATASETS.items() if s.needs_data_dir) == ["folder", "lsun", "npz", "tfrecord"]
  # The feature-cache key holds a source's own fields only where that source reads them.
  assert image_identity(DataConfig(dataset="shapes"))["shapes_style"] == DataConfig().shapes_style
  assert "shapes_style" not in image_identity(DataConfig(dataset="cifar10"))
  assert image_identity(DataConfig(dataset="lsun", data_dir="x"))["lsun_category"] == "bedroom"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF"])
def test_the_scan_reads_each_images_shorter_side(fmt):
  buffer = io.BytesIO()
  Image.fromarray(np.zeros((5, 9, 3), np.uint8)).save(buffer, format=fmt)
  assert inspect_image(buffer.getvalue()).short_side == 5


def test_a_folder_of_tiny_images_says_they_are_upscaled_once(tmp_path, caplog):
  for index, side in enumerate([1, 1, 12, 40]):
    Image.fromarray(np.full((side, side, 3), index, np.uint8)).save(tmp_path / f"{index}.png")
  cfg = DataConfig(dataset="folder", data_dir=str(tmp_path), image_size=32)
  with caplog.at_level(logging.WARNING):
    validate_data_config(cfg)
    validate_data_config(cfg)
  lines = [r.getMessage() for r in caplog.records if "upscaled" in r.getMessage()]
  assert lines == [f"folder {str(tmp_path)!r}: 3 of 4 images are under 16 px on their shorter side (smallest: "
                   "1 px): they are upscaled more than 2x to --image_size=32"]
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    validate_data_config(DataConfig(dataset="folder", data_dir=str(tmp_path), image_size=24))
    validate_data_config(DataConfig(dataset="folder", data_dir=str(tmp_path), image_size=4))
  lines = [r.getMessage() for r in caplog.records if "upscaled" in r.getMessage()]
  assert [line.split(": ", 1)[1] for line in lines] == [
      "2 of 4 images are under 12 px on their shorter side (smallest: 1 px): they are upscaled more than 2x to "
      "--image_size=24",
      "2 of 4 images are under 2 px on their shorter side (smallest: 1 px): they are upscaled more than 2x to "
      "--image_size=4"]
