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
Training: train(Config) -> final metrics (what `main.py` runs: checkpoints, resume, export, KID)
Metrics on Inception features: kid(real, fake, ...), fid(real, fake), load_fid_inception(path=None),
    extract_features(model, images) -> (features, logits), KIDCallback (KID of any Keras generator in `fit`)
"""

from mmd_gan_tf.callbacks import KIDCallback
from mmd_gan_tf.config import Config
from mmd_gan_tf.config import DataConfig
from mmd_gan_tf.config import EvalConfig
from mmd_gan_tf.config import LossConfig
from mmd_gan_tf.config import ModelConfig
from mmd_gan_tf.config import OptimConfig
from mmd_gan_tf.config import TrainConfig
from mmd_gan_tf.functional import gram_blocks
from mmd_gan_tf.functional import mmd2
from mmd_gan_tf.functional import repulsive_critic_loss
from mmd_gan_tf.functional import repulsive_generator_loss
from mmd_gan_tf.kernels import KERNELS
from mmd_gan_tf.layers.spectral_norm import SNConv2D
from mmd_gan_tf.layers.spectral_norm import SNConv2DTranspose
from mmd_gan_tf.layers.spectral_norm import SNDense
from mmd_gan_tf.layers.spectral_norm import one_sigma_per_step
from mmd_gan_tf.layers.spectral_norm import power_iteration_updates
from mmd_gan_tf.losses import LOSSES
from mmd_gan_tf.metrics.features import extract_features
from mmd_gan_tf.metrics.features import load_fid_inception
from mmd_gan_tf.metrics.fid import fid
from mmd_gan_tf.metrics.kid import kid
from mmd_gan_tf.models import ARCHS
from mmd_gan_tf.models import build_critic
from mmd_gan_tf.models import build_decoder
from mmd_gan_tf.models import build_generator
from mmd_gan_tf.penalties import witness_gradient_penalty


def train(cfg: Config) -> dict:
  """Trains (or resumes) the run of `cfg` in `cfg.workdir` as `main.py` does; returns the last metrics.

  Imported on first use: the trainer pulls in the data pipeline and the dataset readers.
  """
  from mmd_gan_tf import trainer  # pylint: disable=import-outside-toplevel
  return trainer.train(cfg)


__all__ = ["ARCHS", "Config", "DataConfig", "EvalConfig", "KERNELS", "KIDCallback", "LOSSES", "LossConfig", "ModelConfig",
           "OptimConfig", "SNConv2D", "SNConv2DTranspose", "SNDense", "TrainConfig", "build_critic",
           "build_decoder", "build_generator", "extract_features", "fid", "gram_blocks", "kid",
           "load_fid_inception", "mmd2", "one_sigma_per_step", "power_iteration_updates", "repulsive_critic_loss",
           "repulsive_generator_loss", "train", "witness_gradient_penalty"]
