"""mmd_gan_tf: the MMD GAN family in TensorFlow 2 / Keras 3 (docs/api.md has an example per entry).

Losses on critic features (`functional`):
    mmd2(real, fake, kernel="rbf", estimator="unbiased", **settings), gram_blocks(...)
    repulsive_critic_loss(real, fake, sigma=1, rep_lambda=1, bounded=False), repulsive_generator_loss(...)
    witness_gradient_penalty(critic, points, real_features, fake_features, cfg)   (Binkowski's GP)
    KERNELS (name -> KernelSpec), LOSSES (name -> LossSpec: the trainer's losses on CriticOutputs)
Layers (Keras-serializable): SNDense, SNConv2D, SNConv2DTranspose (spectral norm of the matrix or of the
    conv operator, `mode=`), power_iteration_updates, one_sigma_per_step
Networks: build_generator(ModelConfig), build_critic(ModelConfig), build_decoder, ARCHS; both save and
    load as `.keras` files
Configuration: Config, ModelConfig, LossConfig, OptimConfig, TrainConfig, DataConfig, EvalConfig
    (presets per dataset and loss: `python main.py --dry_run --dataset=D --loss=L` prints one)
Training: train(Config) -> final metrics (what `main.py` runs: checkpoints, resume, export, KID);
    MMDGAN(Config): a keras.Model whose fit runs the same steps (same weights as the trainer)
Metrics on Inception features: kid(real, fake, ...), fid(real, fake), load_fid_inception(path=None),
    extract_features(model, images) -> (features, logits), KIDCallback (KID of any Keras generator in `fit`)
"""

import importlib

# Where each public name lives. Imported on first use (PEP 562), so that `from mmd_gan_tf import console` in
# main.py and the tools does not import TensorFlow before `console.import_tensorflow_quietly()` can filter its
# no-GPU noise; a fixed table, not a plugin mechanism.
_EXPORTS = {
    "KIDCallback": "mmd_gan_tf.callbacks",
    "MMDGAN": "mmd_gan_tf.fit",
    "Config": "mmd_gan_tf.config", "DataConfig": "mmd_gan_tf.config", "EvalConfig": "mmd_gan_tf.config",
    "LossConfig": "mmd_gan_tf.config", "ModelConfig": "mmd_gan_tf.config", "OptimConfig": "mmd_gan_tf.config",
    "TrainConfig": "mmd_gan_tf.config",
    "gram_blocks": "mmd_gan_tf.functional", "mmd2": "mmd_gan_tf.functional",
    "repulsive_critic_loss": "mmd_gan_tf.functional", "repulsive_generator_loss": "mmd_gan_tf.functional",
    "KERNELS": "mmd_gan_tf.kernels",
    "SNConv2D": "mmd_gan_tf.layers.spectral_norm", "SNConv2DTranspose": "mmd_gan_tf.layers.spectral_norm",
    "SNDense": "mmd_gan_tf.layers.spectral_norm", "one_sigma_per_step": "mmd_gan_tf.layers.spectral_norm",
    "power_iteration_updates": "mmd_gan_tf.layers.spectral_norm",
    "LOSSES": "mmd_gan_tf.losses",
    "extract_features": "mmd_gan_tf.metrics.features", "load_fid_inception": "mmd_gan_tf.metrics.features",
    "fid": "mmd_gan_tf.metrics.fid", "kid": "mmd_gan_tf.metrics.kid",
    "ARCHS": "mmd_gan_tf.models", "build_critic": "mmd_gan_tf.models", "build_decoder": "mmd_gan_tf.models",
    "build_generator": "mmd_gan_tf.models",
    "witness_gradient_penalty": "mmd_gan_tf.penalties",
}


def __getattr__(name: str):
  if name not in _EXPORTS:
    raise AttributeError(f"module 'mmd_gan_tf' has no attribute {name!r}")
  value = getattr(importlib.import_module(_EXPORTS[name]), name)
  globals()[name] = value
  return value


def __dir__():
  return sorted(set(globals()) | set(_EXPORTS))


def train(cfg: "Config") -> dict:  # noqa: F821
  """Trains (or resumes) the run of `cfg` in `cfg.workdir` as `main.py` does; returns the last metrics."""
  from mmd_gan_tf import trainer  # pylint: disable=import-outside-toplevel
  return trainer.train(cfg)


# The names of _EXPORTS and train (tests/test_api.py checks that they agree).
__all__ = ["ARCHS", "Config", "DataConfig", "EvalConfig", "KERNELS", "KIDCallback", "LOSSES", "LossConfig",
           "MMDGAN", "ModelConfig", "OptimConfig", "SNConv2D", "SNConv2DTranspose", "SNDense", "TrainConfig",
           "build_critic",
           "build_decoder", "build_generator", "extract_features", "fid", "gram_blocks", "kid",
           "load_fid_inception", "mmd2", "one_sigma_per_step", "power_iteration_updates", "repulsive_critic_loss",
           "repulsive_generator_loss", "train", "witness_gradient_penalty"]
