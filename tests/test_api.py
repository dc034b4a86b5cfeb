"""The public API: `import mmd_gan_tf` exposes what docs/api.md documents; the functional losses equal
float64 numpy oracles and the trainer's own losses; the custom-loop example runs."""

import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import mmd_gan_tf as mg
from helpers import ROOT, asset_path, tool_env
from mmd_gan_tf import losses
from mmd_gan_tf import noise
from test_losses import np_mix_rbf, np_off_diagonal_mean, np_rbf, np_rep_critic, np_rep_generator

API_DOC = ROOT / "docs" / "api.md"


def test_every_public_name_is_exported_listed_and_documented_with_an_example():
  documented = set(re.findall(r"^### `(\w+)`", API_DOC.read_text(encoding="utf-8"), re.MULTILINE))
  assert set(mg.__all__) == documented == set(mg._EXPORTS) | {"train"}  # pylint: disable=protected-access
  for name in mg.__all__:
    assert hasattr(mg, name), name
    assert re.search(rf"\b{name}\b", mg.__doc__), f"{name} is missing from help(mmd_gan_tf)"
  sections = re.split(r"^### ", API_DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]
  assert all("```python" in section for section in sections), "each entry has an example"


def test_importing_the_package_imports_no_tensorflow():
  # main.py imports `mmd_gan_tf.console` first, to import TensorFlow without its no-GPU noise.
  code = "import sys, mmd_gan_tf; print('tensorflow' in sys.modules, callable(mmd_gan_tf.mmd2))"
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=tool_env(),
                          timeout=120, check=True)
  assert result.stdout.split() == ["False", "True"]
  with pytest.raises(AttributeError, match="no attribute 'mdd2'"):
    getattr(mg, "mdd2")  # noqa: B009 (the attribute a typo would ask for)


def _features(m, n, d=5, seed=0):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(m, d)), rng.normal(size=(n, d)) + 0.7


@pytest.mark.parametrize("m, n", [(6, 9), (8, 8)])
def test_mmd2_estimators_match_numpy(m, n):
  real, fake = _features(m, n)
  k_rr, k_ff, k_rf = np_mix_rbf(real, real, (1, 2)), np_mix_rbf(fake, fake, (1, 2)), np_mix_rbf(real, fake, (1, 2))
  unbiased = ((k_rr.sum() - np.trace(k_rr)) / (m * (m - 1)) + (k_ff.sum() - np.trace(k_ff)) / (n * (n - 1))
              - 2 * k_rf.mean())
  got = mg.mmd2(tf.constant(real), tf.constant(fake), "mix_rbf", sigmas=[1, 2])
  np.testing.assert_allclose(got, unbiased, rtol=1e-12)
  biased = k_rr.mean() + k_ff.mean() - 2 * k_rf.mean()
  np.testing.assert_allclose(mg.mmd2(real, fake, "mix_rbf", "biased", sigmas=(1, 2)), biased, rtol=1e-12)
  if m == n:
    np.testing.assert_allclose(mg.mmd2(real, fake, estimator="all_off_diagonal"), np_rep_generator(real, fake),
                               rtol=1e-12)


@pytest.mark.parametrize("bounded", [False, True])
def test_repulsive_losses_match_numpy_and_the_trainers_losses(bounded):
  real, fake = _features(8, 8, seed=1)
  real, fake = real * 0.8, fake * 0.8  # distances on both sides of the bounds
  critic_loss = mg.repulsive_critic_loss(tf.constant(real), tf.constant(fake), bounded=bounded)
  np.testing.assert_allclose(critic_loss, np_rep_critic(real, fake, bounded=bounded), rtol=1e-12)
  np.testing.assert_allclose(mg.repulsive_generator_loss(real, fake), np_rep_generator(real, fake), rtol=1e-12)
  name = "rep_b" if bounded else "rep"
  outputs = losses.CriticOutputs(real_images=None, fake_images=None, real_features=tf.constant(real),
                                 fake_features=tf.constant(fake))
  np.testing.assert_allclose(critic_loss, mg.LOSSES[name].critic_loss(outputs, mg.LossConfig()).loss, rtol=1e-12)
  sigma = 2.0
  np.testing.assert_allclose(
      mg.repulsive_critic_loss(real, fake, sigma=sigma, rep_lambda=-1.0),
      -(np_off_diagonal_mean(np_rbf(real, real, sigma)) + np_off_diagonal_mean(np_rbf(fake, fake, sigma))
        - 2 * np_off_diagonal_mean(np_rbf(real, fake, sigma))), rtol=1e-12)


def test_bad_settings_are_named():
  with pytest.raises(TypeError, match="sigma"):
    mg.mmd2(tf.zeros([3, 2]), tf.ones([3, 2]), sigma=2.0)  # the field is `sigmas`
  with pytest.raises(ValueError, match="estimator 'median'"):
    mg.mmd2(tf.zeros([3, 2]), tf.ones([3, 2]), estimator="median")
  with pytest.raises(ValueError, match="unknown kernel"):
    mg.mmd2(tf.zeros([3, 2]), tf.ones([3, 2]), kernel="laplace")
  with pytest.raises(ValueError, match="sigma"):
    mg.mmd2(tf.zeros([3, 2]), tf.ones([3, 2]), kernel="rbf", sigmas=(1.0, 2.0))  # rbf takes one bandwidth


@pytest.mark.end_to_end
def test_the_custom_loop_example_runs(tmp_path):
  out = tmp_path / "grid.png"
  result = subprocess.run([sys.executable, str(ROOT / "examples" / "custom_loop.py"), "--steps=3", "--width=0.0625",
                           "--batch_size=8", f"--out={out}"], capture_output=True, text=True, env=tool_env(),
                          cwd=tmp_path, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "step 3: critic" in result.stdout
  assert tf.io.decode_png(tf.io.read_file(str(out))).shape == (256, 256, 1)


@pytest.mark.end_to_end
def test_the_kid_callback_gives_tools_evaluates_number_for_the_same_images(tmp_path):
  sys.path.insert(0, str(ROOT))
  from tools import evaluate  # pylint: disable=import-outside-toplevel
  weights = asset_path("inception/fid_inception_v3_2015_12_05.npz")
  inception = mg.load_fid_inception(str(weights))
  rng = np.random.default_rng(0)
  real = rng.integers(0, 256, (12, 32, 32, 1), dtype=np.uint8)
  generator = mg.build_generator(mg.ModelConfig(width=0.0625, channels=1))
  callback = mg.KIDCallback(generator, real, inception, z_dim=generator.input_shape[-1], num_samples=12,
                            seed=3, kid_subsets=4, kid_subset_size=6, batch_size=5, log_dir=str(tmp_path / "tb"))
  logs = {}
  callback.on_epoch_end(0, logs)
  assert callback.history[0]["epoch"] == 1 and logs["kid"] == callback.history[0]["kid"]
  np.savez(tmp_path / "real.npz", x=real)
  np.savez(tmp_path / "fake.npz", x=callback.sample_images())
  result = evaluate.evaluate(evaluate.parse_args([
      f"--real={tmp_path / 'real.npz'}:x", f"--fake={tmp_path / 'fake.npz'}:x", "--num=12", "--metrics=kid",
      "--kid_subsets=4", "--kid_subset_size=6", "--seed=3", "--no_progress", "--no_cache",
      f"--inception_weights={weights}"]))
  np.testing.assert_allclose(logs["kid"], result["metrics"]["kid"]["mean"], rtol=1e-6)
  # The images scored: the generator's tanh outputs as uint8 pixels, batch k drawn from export_batch_seed(3, k).
  z = np.random.default_rng(noise.export_batch_seed(3, 1)).standard_normal((5, generator.input_shape[-1]))
  pixels = (generator(tf.constant(z, tf.float32), training=False).numpy() + 1) * 127.5
  np.testing.assert_allclose(callback.sample_images()[5:10], pixels, atol=0.5 + 1e-3)
  every_second = mg.KIDCallback(generator, real, inception, z_dim=generator.input_shape[-1], num_samples=12,
                                every=2, kid_subsets=2, kid_subset_size=6)
  every_second.on_epoch_end(0, {})
  assert every_second.history == []


@pytest.mark.end_to_end
def test_the_preset_and_scoring_examples_run(tmp_path):
  """examples/train_preset.py trains a preset through mmd_gan_tf.train and exports generator.keras;
  examples/score_generator.py scores that file with the KID callback."""
  run = lambda *args: subprocess.run([sys.executable, *args], capture_output=True, text=True, env=tool_env(),
                                     cwd=tmp_path, timeout=300, check=False)
  trained = run(str(ROOT / "examples" / "train_preset.py"), "--steps=2", "--width=0.0625",
                f"--workdir={tmp_path / 'run'}")
  assert trained.returncode == 0, trained.stderr[-2000:]
  assert '"loss": "rep_b"' in trained.stdout and "'mmd2'" in trained.stdout
  weights = asset_path("inception/fid_inception_v3_2015_12_05.npz")
  scored = run(str(ROOT / "examples" / "score_generator.py"), f"--generator={tmp_path / 'run/export/generator.keras'}",
               "--num=8", "--subset_size=4", f"--inception_weights={weights}")
  assert scored.returncode == 0, scored.stderr[-2000:]
  assert re.search(r"KID x 10\^3: [-\d.]+ \+- [\d.]+ \(8 vs 8 images\)", scored.stdout)


# The examples that train, or need the Inception weights or 1000 x 2048 features, run elsewhere: the examples'
# own tests above, test_kid.py, test_fid.py, test_inception.py.
_NOT_RUN_HERE = ("mg.train(", ".fit(", "load_fid_inception", "extract_features", "mg.kid(", "mg.fid(")


def test_the_api_pages_examples_run(tmp_path, monkeypatch):
  """Each python block of docs/api.md, run on its own in a namespace that holds what the page calls its
  inputs (images, features, a critic): a renamed function or a wrong module path in the page fails here."""
  import keras  # pylint: disable=import-outside-toplevel
  monkeypatch.chdir(tmp_path)  # the examples save .keras files
  blocks = re.findall(r"```python\n(.*?)```", API_DOC.read_text(encoding="utf-8"), re.DOTALL)
  run = [block for block in blocks if not any(marker in block for marker in _NOT_RUN_HERE)]
  assert len(run) >= 20, len(run)
  rng = np.random.default_rng(0)
  images = lambda n=8: tf.constant(rng.uniform(-1, 1, (n, 32, 32, 3)), tf.float32)
  namespace = dict(mg=mg, tf=tf, keras=keras, np=np, batch=8, real_images=images(), fake_images=images(),
                   images=images(), more_images=images(), real_features=tf.random.normal([8, 16]),
                   fake_features=tf.random.normal([8, 16]), cfg=mg.LossConfig(),
                   critic=mg.build_critic(mg.ModelConfig(arch="dcgan", width=0.125, channels=3, critic_dim=16)))
  namespace["points"] = namespace["real_images"]
  for number, block in enumerate(run, 1):
    try:
      exec(compile(block, f"docs/api.md example {number}", "exec"), dict(namespace))  # pylint: disable=exec-used
    except Exception as error:  # pylint: disable=broad-except
      pytest.fail(f"docs/api.md example {number} fails: {type(error).__name__}: {error}\n{block}")
