"""Your own training loop with the repulsive loss and the spectrally normalised critic of this library.

    python examples/custom_loop.py --steps=1000 --out=digits.png

Wang et al.'s rep_b on the built-in digits: a quarter-width SN-DCGAN, Adam, one simultaneous step per batch.
The only pieces taken from mmd_gan_tf are the networks, the loss functions and one_sigma_per_step.
"""

import argparse

from mmd_gan_tf import onednn  # noqa: E402  (imports no TensorFlow)

onednn.prefer()  # oneDNN CPU kernels on AVX2-only CPUs too, before TensorFlow's import (docs/api.md)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import mmd_gan_tf as mg  # noqa: E402
from mmd_gan_tf.data import shapes  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=1000)
parser.add_argument("--batch_size", type=int, default=32)
parser.add_argument("--width", type=float, default=0.25)
parser.add_argument("--out", default="", help="optional PNG grid of 64 samples at the end")
args = parser.parse_args()

model_cfg = mg.ModelConfig(arch="dcgan", width=args.width, channels=1, spectral_norm="conv", sn_total_gain=64.0)
generator, critic = mg.build_generator(model_cfg), mg.build_critic(model_cfg)
critic_opt = keras.optimizers.Adam(1e-3, beta_1=0.5, beta_2=0.999)
generator_opt = keras.optimizers.Adam(5e-4, beta_1=0.5, beta_2=0.999)
real_batches = iter(shapes.shapes_dataset(32, 1, args.batch_size, seed=0, style="digits"))


@tf.function
def train_step(real):
  real = real * 2.0 - 1.0  # [0, 1] -> the generator's tanh range
  z = tf.random.normal([tf.shape(real)[0], model_cfg.z_dim])
  with tf.GradientTape(persistent=True) as tape, mg.one_sigma_per_step():
    fake = generator(z, training=True)
    features = critic(tf.concat([real, fake], 0), training=True)  # one pass, as Wang's code
    real_features, fake_features = tf.split(features, 2)
    critic_loss = mg.repulsive_critic_loss(real_features, fake_features, bounded=True)
    generator_loss = mg.repulsive_generator_loss(real_features, fake_features)
  critic_opt.apply_gradients(zip(tape.gradient(critic_loss, critic.trainable_variables),
                                 critic.trainable_variables))
  generator_opt.apply_gradients(zip(tape.gradient(generator_loss, generator.trainable_variables),
                                    generator.trainable_variables))
  return critic_loss, generator_loss


for step in range(1, args.steps + 1):
  critic_loss, generator_loss = train_step(next(real_batches))
  if step % 100 == 0 or step == args.steps:
    print(f"step {step}: critic {float(critic_loss):.4f} generator {float(generator_loss):.4f}")
if args.out:
  images = (generator(tf.random.normal([64, model_cfg.z_dim]), training=False).numpy() + 1) * 127.5
  grid = np.clip(images, 0, 255).astype(np.uint8).reshape(8, 8, 32, 32, 1).transpose(0, 2, 1, 3, 4)
  tf.io.write_file(args.out, tf.io.encode_png(grid.reshape(256, 256, 1)))
