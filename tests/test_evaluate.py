"""tools/evaluate.py: sources, the JSON protocol, feature caching, end to end on the real network."""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from PIL import Image

from helpers import ROOT, asset_path, tool_env
from mmd_gan_tf.metrics import kid, registry
from tools import evaluate

WEIGHTS = "inception/fid_inception_v3_2015_12_05.npz"
WEIGHTS_SHA256 = "9d6b62bbaa4ca7bc080f487d23f4f8b982f86c2574e00956b431740ff628dea3"


def _args(tmp_path, real, fake, *extra):
  return evaluate.parse_args([f"--real={real}", f"--fake={fake}", "--num=8", "--no_progress",
                              f"--cache_dir={tmp_path / 'cache'}", *extra])


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
  directory = tmp_path_factory.mktemp("images")
  with np.load(asset_path("data/cifar10_20k.npz")) as data:
    np.savez(directory / "real.npz", x=data["x_test"][:8], y=data["y_test"][:8])
  with np.load(asset_path("data/mnist.npz")) as data:
    np.savez(directory / "fake.npz", x_test=data["x_test"][:8])  # grayscale [8, 28, 28]
  return directory


def test_end_to_end_json_and_cache(image_files, tmp_path):
  real, fake = f"{image_files / 'real.npz'}:x", str(image_files / "fake.npz")
  out = tmp_path / "result.json"
  argv = [f"--real={real}", f"--fake={fake}", "--num=8", "--metrics=kid,fid", "--kid_subsets=3",
          "--kid_subset_size=4", "--fid_min_samples=0", "--seed=7", "--no_progress",
          f"--inception_weights={asset_path(WEIGHTS)}", f"--cache_dir={tmp_path / 'cache'}",
          f"--out={out}"]
  evaluate.report(evaluate.parse_args(argv))
  result = json.loads(out.read_text())
  protocol = result["protocol"]
  assert protocol["weights_sha256"] == WEIGHTS_SHA256
  assert "half_pixel_centers=False" in protocol["resize"]
  assert protocol["real"]["count"] == 8 and protocol["fake"]["count"] == 8
  assert protocol["real"]["kind"] == "npz" and not protocol["real"]["features_cached"]
  assert (protocol["kid_subsets"], protocol["kid_subset_size"], protocol["seed"]) == (3, 4, 7)
  # The numbers are KID / FID of the features the run cached.
  cached = {}
  for path in (tmp_path / "cache" / "features").glob("*.npz"):
    with np.load(path) as data:
      cached[json.loads(str(data["key"]))["key"]] = data["features"]
  assert sorted(cached) == ["x", "x_test"] and cached["x"].shape == (8, 2048)
  expected = kid.kid(cached["x"], cached["x_test"], num_subsets=3, subset_size=4, seed=7)
  np.testing.assert_allclose(result["metrics"]["kid"]["mean"], expected.mean, rtol=1e-9)
  np.testing.assert_allclose(result["metrics"]["kid"]["std"], expected.std, rtol=1e-9)
  np.testing.assert_allclose(result["metrics"]["kid"]["mean_x1e3"], expected.mean * 1e3, rtol=1e-9)
  assert result["metrics"]["fid"] > 0
  # A second run reads both feature sets from the cache and gives the same numbers.
  again = evaluate.report(evaluate.parse_args(argv))
  assert again["protocol"]["real"]["features_cached"] and again["protocol"]["fake"]["features_cached"]
  assert again["metrics"] == result["metrics"]


def test_parse_args_rejects_bad_metrics(tmp_path):
  with pytest.raises(flags.IllegalFlagValueError, match="--metrics"):
    _args(tmp_path, "a.npz", "b.npz", "--metrics=kid,precision")


def test_metric_choices_are_the_registry(tmp_path):
  assert evaluate.METRIC_CHOICES == tuple(registry.METRICS)
  for name in registry.METRICS:
    assert _args(tmp_path, "a.npz", "b.npz", f"--metrics={name}").metrics == [name]
  assert _args(tmp_path, "a.npz", "b.npz").metrics == ["kid", "fid"]


@pytest.mark.parametrize("extra, message", [
    (["--metrics=kid", "--kid_subset_size=9"], "--kid_subset_size=9 exceeds --num=8"),
    (["--metrics=fid", "--fid_min_samples=9"], "--num=8 is below --fid_min_samples=9"),
    (["--metrics=kid", "--kid_subset_size=4", "--num=9"], "8 images available, --num=9"),
    # A flag that this evaluation never reads: refused, not ignored.
    (["--metrics=kid", "--kid_subset_size=4", "--is_splits=5"], "--is_splits=5 has no effect: --metrics=kid has no is"),
    (["--metrics=fid", "--fid_min_samples=2", "--kid_subsets=5"], "--kid_subsets=5 has no effect"),
    (["--metrics=kid", "--kid_subset_size=4", "--fid_min_samples=2"], "--fid_min_samples=2 has no effect"),
    (["--metrics=kid", "--kid_subset_size=4", "--image_size=16"], "--image_size=16 has no effect: only a "
     "dataset:split source"),
    (["--metrics=kid", "--kid_subset_size=4", "--z_distribution=uniform"], "--z_distribution=uniform has no "
     "effect: only a SavedModel with only a generate"),
    (["--metrics=kid", "--kid_subset_size=4", "--image_range=sigmoid"], "--image_range=sigmoid has no effect"),
])
def test_counts_are_checked_before_any_inception_work(image_files, tmp_path, extra, message):
  # The weights path does not exist: reaching it would raise FileNotFoundError instead.
  args = _args(tmp_path, image_files / "real.npz", image_files / "fake.npz",
               f"--inception_weights={tmp_path / 'missing.npz'}", *extra)
  with pytest.raises(ValueError, match=message):
    evaluate.evaluate(args)


def _run_tool(*flag_args):
  return subprocess.run([sys.executable, str(ROOT / "tools" / "evaluate.py"), *flag_args], capture_output=True,
                        text=True, timeout=300, check=False, env=tool_env())


def _error_lines(stderr: str) -> list:
  return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.end_to_end
def test_command_line_user_errors_are_one_line(image_files, tmp_path):
  """One tool process (5-6 s of start-up each): a bad npz key is one line and exit code 2. The count errors
  raised before any Inception work are test_counts_are_checked_before_any_inception_work's."""
  missing = f"--inception_weights={tmp_path / 'missing.npz'}"
  fake = f"--fake={image_files / 'fake.npz'}"
  bad_key = _run_tool(f"--real={image_files / 'real.npz'}:nope", fake, "--num=8", "--metrics=kid",
                      "--kid_subset_size=4", missing)
  assert bad_key.returncode == 2 and "Traceback" not in bad_key.stderr, bad_key.stderr[-2000:]
  assert "cuda" not in bad_key.stderr.lower()  # TensorFlow's no-GPU lines are filtered, as in main.py
  [line] = _error_lines(bad_key.stderr)
  assert "real.npz:nope" in line and "file.npz:KEY" in line


def test_npz_source_errors(image_files, tmp_path):
  args = _args(tmp_path, "a", "b")
  with pytest.raises(ValueError, match="8 images available, --num=9"):
    evaluate.make_source(str(image_files / "fake.npz"), 9, args)
  np.savez(tmp_path / "two.npz", a=np.zeros((2, 4, 4, 3), np.uint8), b=np.zeros((2, 4, 4), np.uint8))
  with pytest.raises(ValueError, match="file.npz:KEY"):
    evaluate.make_source(str(tmp_path / "two.npz"), 2, args)
  source = evaluate.make_source(f"{tmp_path / 'two.npz'}:b", 2, args)
  assert next(source.batches()).shape == (2, 4, 4, 1)
  with pytest.raises(ValueError, match="not a SavedModel dir"):
    evaluate.make_source(str(tmp_path / "nothing.png"), 2, args)


def test_folder_source_batches_by_size(tmp_path):
  folder = tmp_path / "folder"
  folder.mkdir()
  for index, size in enumerate([8, 8, 8, 10, 10]):
    Image.fromarray(np.full((size, size, 3), index * 40, np.uint8)).save(folder / f"{index}.png")
  args = _args(tmp_path, "a", "b", "--batch_size=2")
  source = evaluate.make_source(str(folder), 5, args)
  batches = list(source.batches())
  assert [b.shape for b in batches] == [(2, 8, 8, 3), (1, 8, 8, 3), (2, 10, 10, 3)]
  assert [int(b[i, 0, 0, 0]) for b in batches for i in range(len(b))] == [0, 40, 80, 120, 160]
  assert source.identity["kind"] == "folder" and source.image_range == "pixels"


def test_folder_source_names_a_bad_file_and_an_empty_folder(tmp_path, caplog):
  folder = tmp_path / "folder"
  folder.mkdir()
  args = _args(tmp_path, "a", "b", "--batch_size=2")
  with pytest.raises(ValueError, match="no image files"):
    evaluate.make_source(str(folder), 1, args)
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "scan.tif")  # was left out without a word
  with caplog.at_level(logging.WARNING), pytest.raises(ValueError, match="no image files"):
    evaluate.make_source(str(folder), 1, args)
  assert "1 file(s) without an image suffix this tool reads (.png" in caplog.text and "scan.tif" in caplog.text
  (folder / "scan.tif").unlink()
  os.mkfifo(folder / "pipe.png")  # reading it waited forever
  with caplog.at_level(logging.WARNING), pytest.raises(ValueError, match="no image files"):
    evaluate.make_source(str(folder), 1, args)
  assert "1 entries are not regular files (FIFOs, sockets, devices) and are not read: pipe.png" in caplog.text
  (folder / "pipe.png").unlink()
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "0.png")
  (folder / "1.png").write_bytes((folder / "0.png").read_bytes()[:40])  # truncated
  source = evaluate.make_source(str(folder), 2, args)
  with pytest.raises(ValueError, match=r"1\.png: not a readable image"):
    list(source.batches())


class _Generator(tf.Module):
  """A stand-in export: pixel values encode the seed and the row, like a seeded generator."""

  @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="num_samples"),
                                tf.TensorSpec([], tf.int64, name="seed")])
  def sample(self, num_samples, seed):
    rows = tf.range(num_samples, dtype=tf.int64) + seed * 10
    images = tf.tile(tf.reshape(rows % 256, [-1, 1, 1, 1]), [1, 4, 4, 3])
    return {"images": tf.cast(images, tf.float32) / 127.5 - 1.0, "images_uint8": tf.cast(images, tf.uint8)}

  @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="z")])
  def generate(self, z):  # an older export's endpoint: float images in [-1, 1] from the caller's z
    return {"images": tf.tanh(tf.reshape(tf.tile(z[:, :3], [1, 16]), [-1, 4, 4, 3]))}


def test_saved_model_source(tmp_path):
  module = _Generator()
  export = tmp_path / "export"
  tf.saved_model.save(module, str(export), signatures={"sample": module.sample})
  args = _args(tmp_path, "a", "b", "--batch_size=3", "--seed=0")
  source = evaluate.make_source(str(export), 5, args)
  assert source.kind == "saved_model" and source.identity is None and source.image_range == "pixels"
  batches = list(source.batches())
  assert [b.shape for b in batches] == [(3, 4, 4, 3), (2, 4, 4, 3)]
  assert all(b.dtype == np.uint8 for b in batches)
  # Batch i is drawn with its own seed: the batches differ, and rerunning repeats them.
  assert batches[0][0, 0, 0, 0] != batches[1][0, 0, 0, 0]
  np.testing.assert_array_equal(np.concatenate(list(source.batches())), np.concatenate(batches))
  assert source.reads == ()  # a 'sample' endpoint with uint8 output: no --z_distribution, no --image_range
  generate_only = tmp_path / "generate_only"
  tf.saved_model.save(module, str(generate_only), signatures={"generate": module.generate})
  assert set(evaluate.make_source(str(generate_only), 5, args).reads) == {"z_distribution", "image_range"}


def test_a_training_run_directory_is_evaluated_through_its_export(tmp_path):
  run = tmp_path / "run"
  module = _Generator()
  (run / "checkpoints").mkdir(parents=True)
  (run / "samples").mkdir()
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(run / "samples" / "step_0000002.png")
  args = _args(tmp_path, "a", "b", "--batch_size=3", "--seed=0")
  with pytest.raises(ValueError, match=r"is a training run without an export: run python main.py --mode=export"):
    evaluate.make_source(str(run), 5, args)  # not its sample grid as a one-image folder
  tf.saved_model.save(module, str(run / "export"), signatures={"sample": module.sample})
  source = evaluate.make_source(str(run), 5, args)
  assert source.kind == "saved_model" and source.spec == str(run / "export")
  assert [b.shape for b in source.batches()] == [(3, 4, 4, 3), (2, 4, 4, 3)]


def test_dataset_source_reads_the_data_module(tmp_path):
  args = _args(tmp_path, "a", "b", "--image_size=16", "--batch_size=4")
  source = evaluate.make_source("shapes:train", 6, args)
  images = np.concatenate(list(source.batches()))
  assert images.shape == (6, 16, 16, 3) and images.dtype == np.uint8
  assert source.identity["dataset"] == "shapes" and source.identity["image_size"] == 16
  evaluate.check_flags_used(args, (source, source))  # --image_size given, and read


def test_a_tfds_source_reads_tfds_data_dir_and_other_sources_refuse_it(tmp_path):
  empty = tmp_path / "tfds"
  empty.mkdir()
  args = _args(tmp_path, "a", "b", f"--tfds_data_dir={empty}")
  source = evaluate.make_source("cifar10:test", 4, args)
  evaluate.check_flags_used(args, (source, source))  # read by a TFDS source
  with pytest.raises(Exception, match="not prepared in tfds_data_dir '" + str(empty)):
    next(source.batches())  # looked for the data there (and downloads nothing)
  shapes = evaluate.make_source("shapes:train", 4, args)
  with pytest.raises(ValueError, match="--tfds_data_dir=.* has no effect: only a dataset:split source of TFDS"):
    evaluate.check_flags_used(args, (shapes, shapes))


def test_inception_score_needs_logits(image_files, tmp_path):
  from mmd_gan_tf.metrics import inception_weights  # pylint: disable=import-outside-toplevel
  weights = inception_weights.load_inception_weights(str(asset_path(WEIGHTS)))
  args = _args(tmp_path, str(image_files / "real.npz"), str(image_files / "fake.npz"), "--metrics=is")
  with pytest.raises(ValueError, match="softmax"):
    evaluate.evaluate(args, weights=weights)



def test_training_eval_helpers(tmp_path):
  from mmd_gan_tf.config import Config, DataConfig, EvalConfig  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf.metrics import features, training_eval  # pylint: disable=import-outside-toplevel
  eval_cfg = EvalConfig(inception_weights=str(asset_path(WEIGHTS)), num_samples=4, eval_batch_size=2,
                        kid_subsets=2, kid_subset_size=2, metrics=("kid", "fid"), fid_min_samples=0,
                        feature_cache_dir=str(tmp_path))
  cfg = Config(data=DataConfig(dataset="shapes", image_size=16), eval=eval_cfg)
  weights, network = training_eval.load_network(eval_cfg)
  real = training_eval.real_features(cfg, weights, network)
  assert real.shape == (4, 2048)
  assert len(list((tmp_path / "features").glob("*.npz"))) == 1
  np.testing.assert_array_equal(training_eval.real_features(cfg, weights, network), real)  # cached

  def generator(z, training):
    assert not training
    return tf.tanh(tf.reshape(tf.tile(z, [1, 16 * 16 * 3 // 8]), [-1, 16, 16, 3]))

  def sample_z(batch, index):
    return tf.random.stateless_normal([batch, 8], [5, index])

  fake = training_eval.generated_features(generator, sample_z, network, 3, 2, "tanh")
  images = np.concatenate([generator(sample_z(2, 0), False), generator(sample_z(1, 1), False)])
  expected, _ = features.extract_features(network, images, image_range="tanh")
  np.testing.assert_allclose(fake.numpy(), expected, rtol=1e-4, atol=1e-5)
  scores = tf.function(lambda r, f: training_eval.generator_scores(r, f, eval_cfg, seed=1))(real, fake)
  assert set(scores) == {"kid", "kid_std", "fid"}
  assert all(np.isfinite(v.numpy()) for v in scores.values())
  with pytest.raises(ValueError, match="subset_size"):
    training_eval.generator_scores(real, fake[:1], eval_cfg, seed=1)


def test_cached_real_features_are_keyed_by_the_shapes_style(tmp_path):
  """Two styles of the built-in data are different images: their cached features must not be shared."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  from helpers import FakeInception, _FakeInceptionWeights  # pylint: disable=g-import-not-at-top
  from flags import build as config_builder  # pylint: disable=g-import-not-at-top
  from mmd_gan_tf.data import image_identity  # pylint: disable=g-import-not-at-top
  from mmd_gan_tf.metrics import training_eval  # pylint: disable=g-import-not-at-top
  network, weights, features = FakeInception(), _FakeInceptionWeights(), {}
  for style in ("simple", "digits"):
    cfg = config_builder.build_config({"workdir": str(tmp_path / "run"), "shapes_style": style})
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, feature_cache_dir=str(tmp_path / "cache")))
    features[style] = training_eval.real_features(cfg, weights, network, num_samples=8)
  assert np.abs(features["simple"] - features["digits"]).max() > 1e-3
  assert len(list((tmp_path / "cache").rglob("*.npz"))) == 2
  assert "shapes_style" not in image_identity(dataclasses.replace(cfg.data, dataset="cifar10"))


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 cut short", b"not an npz at all"])
def test_a_damaged_feature_cache_entry_is_computed_again(tmp_path, caplog, damage):
  from mmd_gan_tf.metrics import feature_cache  # pylint: disable=import-outside-toplevel
  fields = {"source": "test", "num": 2}
  computed = []

  def compute():
    computed.append(1)
    return np.ones([2, 3], np.float32), None

  feature_cache.cached_features(fields, compute, str(tmp_path))
  feature_cache.cache_path(fields, str(tmp_path)).write_bytes(damage)
  with caplog.at_level(logging.WARNING):
    features, _, hit = feature_cache.cached_features(fields, compute, str(tmp_path))
  assert not hit and len(computed) == 2 and features.shape == (2, 3)
  assert any("unreadable" in r.getMessage() for r in caplog.records)
  assert feature_cache.cached_features(fields, compute, str(tmp_path))[2]  # stored again, readable


def test_float_images_without_negative_values_warn_about_the_range(tmp_path, caplog):
  args = _args(tmp_path, "a", "b")
  np.savez(tmp_path / "unit.npz", x=np.full((2, 4, 4, 3), 0.5, np.float32))
  np.savez(tmp_path / "tanh.npz", x=np.full((2, 4, 4, 3), -0.5, np.float32))
  with caplog.at_level(logging.WARNING):
    evaluate.make_source(str(tmp_path / "unit.npz"), 2, args)
    evaluate.make_source(str(tmp_path / "tanh.npz"), 2, args)
  lines = [r.getMessage() for r in caplog.records if "--image_range=sigmoid" in r.getMessage()]
  assert len(lines) == 1 and "unit.npz" in lines[0]
  (tmp_path / "text.npz").write_text("not an archive")
  with pytest.raises(ValueError, match=r"text.npz' is not a readable .npz file \(not a zip archive of arrays\)"):
    evaluate.make_source(str(tmp_path / "text.npz"), 2, args)


def test_out_never_replaces_an_input_a_folder_or_another_file(tmp_path):
  data = tmp_path / "fake.npz"
  np.savez(data, x=np.zeros([2, 4, 4, 3], np.uint8))
  (tmp_path / "notes.txt").write_text("mine")
  for out, why in ((data, "is an input of this evaluation"), (tmp_path, "is a folder"),
                   (tmp_path / "notes.txt", "exists and is not a JSON result of this tool")):
    with pytest.raises(ValueError, match=f"--out={out} {why}"):
      evaluate.check_out(str(out), [str(data), "cifar10:test", None])
  (tmp_path / "earlier.json").write_text('{"metrics": {"kid": 0.1}, "protocol": {}}')
  evaluate.check_out(str(tmp_path / "earlier.json"), [str(data)])  # an earlier result may be replaced
  # Any other JSON object is someone's file (a prepared dataset's dataset_info.json, an export's metadata).
  (tmp_path / "dataset_info.json").write_text('{"format": "tfrecord", "count": 2}')
  with pytest.raises(ValueError, match="exists and is not a JSON result of this tool"):
    evaluate.check_out(str(tmp_path / "dataset_info.json"), [str(data)])
  inputs = tmp_path / "images"
  inputs.mkdir()
  with pytest.raises(ValueError, match=r"is inside an input of this evaluation \(.*images\)"):
    evaluate.check_out(str(inputs / "result.json"), [str(inputs)])
  evaluate.check_out(str(tmp_path / "new" / "result.json"), [str(data)])
  with pytest.raises(ValueError, match="is an input of this evaluation"):  # checked before any work
    evaluate.report(_args(tmp_path, data, data, f"--out={data}", "--inception_weights=missing.npz"))
  assert (tmp_path / "notes.txt").read_text() == "mine"
  assert json.loads((tmp_path / "dataset_info.json").read_text())["format"] == "tfrecord"


def test_images_with_nan_or_inf_are_refused_naming_how_many(tmp_path):
  images = np.zeros([4, 4, 4, 3], np.float32)
  images[1, 0, 0, 0], images[3] = np.nan, np.inf
  np.savez(tmp_path / "bad.npz", x=images)
  with pytest.raises(ValueError, match=r"bad.npz: 2 of its 4 images hold NaN or infinite values"):
    evaluate.npz_source(str(tmp_path / "bad.npz"), 4, _args(tmp_path, "a", "b"))


def test_16_bit_png_folders_read_as_training_reads_them(tmp_path):
  """PIL's convert("RGB") clipped 16-bit grey PNGs to white: identical images scored KID x 10^3 803."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  grey = np.random.default_rng(0).integers(0, 256, size=[3, 8, 8]).astype(np.uint16)
  for name, dtype in (("eight", np.uint8), ("sixteen", np.uint16)):
    (tmp_path / name).mkdir()
    for index, image in enumerate(grey):
      scale = 1 if dtype == np.uint8 else 257
      Image.fromarray((image * scale).astype(dtype)).save(tmp_path / name / f"{index}.png")
  with Image.open(tmp_path / "sixteen" / "0.png") as written:
    assert written.mode.startswith("I")  # PIL reads it back as 16-bit grey
  args = _args(tmp_path, tmp_path / "eight", tmp_path / "sixteen")
  [eight], [sixteen] = (list(evaluate.make_source(str(tmp_path / n), 3, args).batches())
                        for n in ("eight", "sixteen"))
  assert sixteen.dtype == np.uint8 and sixteen.shape == (3, 8, 8, 3)
  np.testing.assert_array_equal(sixteen, eight)
  np.testing.assert_array_equal(eight[..., 0], grey)


def test_wider_integer_pixels_are_pixels_and_the_cache_stays_out_of_runs(tmp_path):
  """An int64 .npz of 0-255 pixels was read as floats in [-1, 1] (KID x 10^3 567 against the same images as
  uint8); --cache_dir inside a run's export/ made that run's resume and export refused."""
  pixels = np.random.default_rng(0).integers(0, 256, size=[4, 8, 8, 3])
  np.savez(tmp_path / "wide.npz", x=pixels.astype(np.int64))
  np.savez(tmp_path / "narrow.npz", x=pixels.astype(np.uint8))
  np.savez(tmp_path / "bad.npz", x=(pixels * 4).astype(np.int64))
  args = _args(tmp_path, tmp_path / "narrow.npz", tmp_path / "wide.npz")
  wide = evaluate.make_source(str(tmp_path / "wide.npz"), 4, args)
  [batch] = list(wide.batches())
  assert wide.image_range == "pixels" and batch.dtype == np.uint8
  np.testing.assert_array_equal(batch, pixels)
  with pytest.raises(ValueError, match=r"bad.npz: integer images \(int64\) outside 0-255 \(from 0 to 1020\)"):
    evaluate.make_source(str(tmp_path / "bad.npz"), 4, args)
  run = tmp_path / "run"
  (run / "checkpoints").mkdir(parents=True)
  (run / "config.json").write_text("{}")
  for inside in (run / "export", run / "checkpoints"):
    with pytest.raises(ValueError, match=rf"--cache_dir={inside} is inside the run "):
      evaluate.check_cache_dir(str(inside))
  (tmp_path / "afile").write_text("")
  with pytest.raises(ValueError, match="--cache_dir=.*afile exists and is not a folder"):
    evaluate.check_cache_dir(str(tmp_path / "afile"))
  with pytest.raises(ValueError, match=rf"--cache_dir={run} is inside the run {run}: the feature cache stays out"):
    evaluate.check_cache_dir(str(run))  # not beside its folders either
  images = tmp_path / "images"
  images.mkdir()
  with pytest.raises(ValueError, match=rf"--cache_dir={images} is inside the input folder {images}"):
    evaluate.check_cache_dir(str(images), [str(tmp_path / "x.npz"), str(images)])
  evaluate.check_cache_dir(str(tmp_path / "cache"))  # anywhere else is fine
  evaluate.check_cache_dir(str(tmp_path / "cache"), [str(images)])
  evaluate.check_cache_dir(None)
  with pytest.raises(ValueError, match="--cache_dir=.* is inside the run"):  # checked before any work
    evaluate.report(_args(tmp_path, tmp_path / "narrow.npz", tmp_path / "wide.npz",
                          f"--cache_dir={run / 'export'}"))
  assert not (run / "export").exists()


@pytest.mark.parametrize("flag, least", [("batch_size", 1), ("kid_subset_size", 2), ("kid_subsets", 1), ("seed", 0),
                                         ("image_size", 4)])
def test_counts_out_of_range_are_one_line_before_any_work(tmp_path, flag, least):
  """--batch_size=0 was "range() arg 3 must not be zero" after the real features; --kid_subset_size=1,
  --kid_subsets=0 and --seed=-1 failed after every feature was computed, naming no flag."""
  args = _args(tmp_path, tmp_path / "missing.npz", tmp_path / "missing2.npz", f"--{flag}={least - 1}")
  with pytest.raises(ValueError, match=rf"^--{flag}={least - 1} must be >= {least}$"):
    evaluate.report(args)


def test_sigterm_is_one_line_and_exit_code_75(tmp_path, monkeypatch, capsys):
  """SIGTERM (a scheduler's stop) ended evaluate.py with 143 and nothing said."""
  import signal  # pylint: disable=import-outside-toplevel
  import time  # pylint: disable=import-outside-toplevel
  from absl import flags  # pylint: disable=import-outside-toplevel
  flag_values = flags.FlagValues()
  evaluate.define_flags(flag_values)
  flag_values(["evaluate", "--real=a.npz", "--fake=b.npz", f"--out={tmp_path / 'r.json'}"])
  monkeypatch.setattr(evaluate, "FLAGS", flag_values)

  def stopped_midway(args):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the handler interrupts this
    raise AssertionError("SIGTERM did not stop the evaluation")

  monkeypatch.setattr(evaluate, "report", stopped_midway)
  handler = signal.getsignal(signal.SIGTERM)
  assert evaluate.main(["evaluate"]) == evaluate.EXIT_INTERRUPTED
  assert signal.getsignal(signal.SIGTERM) == handler  # put back for the rest of the process
  assert capsys.readouterr().err.startswith(f"\ninterrupted: no result written to --out={tmp_path / 'r.json'}")
  assert not (tmp_path / "r.json").exists()
