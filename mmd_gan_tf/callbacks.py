"""KID for any Keras generator during `fit`: a callback that scores it against real images every N epochs.

    inception = mmd_gan_tf.load_fid_inception()
    kid = mmd_gan_tf.KIDCallback(generator, real_images_uint8, inception, z_dim=128, every=1,
                                 log_dir="logs/kid")
    gan.fit(dataset, epochs=20, callbacks=[kid])   # logs["kid"], kid.history, TensorBoard scalar "kid"

The images are quantised to uint8 as an exported generator's are, featurised by the FID Inception-v3 and
scored with the same KID function as `tools/evaluate.py` (`metrics.kid.kid`: unbiased MMD^2 with the cubic
kernel over seeded subsets), so the callback and the tool give the same number for the same images and seed.
"""

from typing import Callable, List, Optional, Union

import keras
import numpy as np
import tensorflow as tf

from mmd_gan_tf import images as images_lib
from mmd_gan_tf import noise
from mmd_gan_tf.metrics import features as features_lib
from mmd_gan_tf.metrics import kid as kid_lib


class KIDCallback(keras.callbacks.Callback):
  """KID x of `generator` against `real_images`, every `every` epochs (Binkowski et al. 2018, section 4).

  Args:
    generator: a Keras model (or callable) z [b, z_dim] -> images [b, S, S, C] in `image_range`.
    real_images: uint8 [N, H, W, C] real images (C = 1 or 3); their features are computed once.
    inception: the FID Inception model (`load_fid_inception()`).
    z_dim: the generator's latent size; z is drawn N(0, 1) with numpy, batch k from seed
      `noise.export_batch_seed(seed, k)`, the same noise every evaluation.
    num_samples: generated images per evaluation.
    every: evaluate after every `every`-th epoch.
    seed: seed of the noise and of KID's subsets.
    image_range: "tanh" ([-1, 1]) or "sigmoid" ([0, 1]) generator outputs.
    kid_subsets, kid_subset_size: KID's subsets (subset_size <= num_samples and <= N).
    batch_size: images per generator and Inception call.
    log_dir: a TensorBoard directory for the scalar `name`, or None.
    name: the key in `logs` and TensorBoard.
  """

  def __init__(self, generator: Union[keras.Model, Callable], real_images: np.ndarray, inception, z_dim: int,
               num_samples: int = 1000, every: int = 1, seed: int = 0, image_range: str = "tanh",
               kid_subsets: int = 100, kid_subset_size: int = 1000, batch_size: int = 100,
               log_dir: Optional[str] = None, name: str = "kid"):
    super().__init__()
    if every < 1 or num_samples < 2:
      raise ValueError(f"every={every} must be >= 1 and num_samples={num_samples} >= 2")
    if kid_subset_size > min(num_samples, len(real_images)):
      raise ValueError(f"kid_subset_size={kid_subset_size} exceeds num_samples={num_samples} or the "
                       f"{len(real_images)} real images")
    self.generator, self.inception, self.z_dim = generator, inception, z_dim
    self.num_samples, self.every, self.seed, self.image_range = num_samples, every, seed, image_range
    self.kid_subsets, self.kid_subset_size, self.batch_size = kid_subsets, kid_subset_size, batch_size
    self.name = name
    self.real_features = features_lib.extract_features(inception, np.asarray(real_images), batch_size)[0]
    self._writer = tf.summary.create_file_writer(log_dir) if log_dir else None
    self.history: List[dict] = []

  def sample_images(self) -> np.ndarray:
    """The uint8 images [num_samples, S, S, C] that an evaluation scores (the same every time)."""
    batches = []
    for index, start in enumerate(range(0, self.num_samples, self.batch_size)):
      count = min(self.batch_size, self.num_samples - start)
      z = np.random.default_rng(noise.export_batch_seed(self.seed, index)).standard_normal((count, self.z_dim))
      images = self.generator(tf.constant(z, tf.float32), training=False)
      batches.append(images_lib.to_uint8(tf.cast(images, tf.float32), self.image_range).numpy())
    return np.concatenate(batches)

  def score(self) -> kid_lib.KidResult:
    """KID of the generator as it is now."""
    fake_features = features_lib.extract_features(self.inception, self.sample_images(), self.batch_size)[0]
    return kid_lib.kid(self.real_features, fake_features, self.kid_subsets, self.kid_subset_size, self.seed)

  def on_epoch_end(self, epoch, logs=None):
    if (epoch + 1) % self.every:
      return
    result = self.score()
    self.history.append({"epoch": epoch + 1, self.name: result.mean, f"{self.name}_std": result.std})
    if logs is not None:
      logs[self.name] = result.mean
    if self._writer is not None:
      with self._writer.as_default():
        tf.summary.scalar(self.name, result.mean, step=epoch + 1)
      self._writer.flush()
