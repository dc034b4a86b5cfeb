"""Critic penalties: gradient penalties, the witness function, Jacobian norms, activation L2.

Pure functions on tensors and callables. Per-example gradients are taken as the gradient of the batch
sum, which is exact when the critic treats examples independently (no batch norm in the critic, as in
every GP / SMMD architecture of the papers). Norms are over ALL non-batch axes of the input: the
reference MMD GAN code normed over axis 1 of an NHWC tensor (the height only), a bug.
"""

from typing import Callable, Optional, Sequence

import tensorflow as tf

from mmd_gan_tf.config import LossConfig
from mmd_gan_tf import kernels

# Under the root of a gradient norm so that its own gradient stays finite at a zero gradient.
_NORM_EPSILON = 1e-12


def _non_batch_axes(x: tf.Tensor) -> list:
  if x.shape.rank is None or x.shape.rank < 2:
    raise ValueError(f"expected a batched tensor of rank >= 2, got shape {x.shape}")
  return list(range(1, x.shape.rank))


def interpolate(real: tf.Tensor, fake: tf.Tensor, alpha: Optional[tf.Tensor] = None,
                seed: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Random interpolates xhat = (1 - a) x + a G(z), one a ~ U[0, 1] per example (Gulrajani et al. 2017).

  Args:
    real: [b, ...] real images (local batch).
    fake: [b, ...] generated images, same shape.
    alpha: optional [b] interpolation weights (for tests); drawn from U[0, 1] when None.
    seed: optional stateless seed [2] for the draw (reproducible across resumes, distinct per replica
      when the caller folds the replica id in); a stateful draw when None.

  Returns:
    [b, ...] interpolates.
  """
  if real.shape != fake.shape:
    raise ValueError(f"real and fake batches differ in shape: {real.shape} vs {fake.shape}")
  batch = tf.shape(real)[0]
  if alpha is None and seed is not None:
    alpha = tf.random.stateless_uniform([batch], seed, dtype=real.dtype)
  elif alpha is None:
    alpha = tf.random.uniform([batch], dtype=real.dtype)
  alpha = tf.reshape(tf.cast(alpha, real.dtype), [-1] + [1] * (real.shape.rank - 1))
  return real + alpha * (fake - real)


def per_example_gradient_norm(fn: Callable[[tf.Tensor], tf.Tensor], points: tf.Tensor) -> tf.Tensor:
  """|grad_x fn(x)_i| for every example i, the norm over all non-batch axes.

  Args:
    fn: maps points [b, ...] to one scalar per example [b] (or [b, 1]).
    points: [b, ...] where to take the gradient.

  Returns:
    [b] gradient norms (differentiable: the penalty's gradient is a double backprop).
  """
  axes = _non_batch_axes(points)
  with tf.GradientTape() as tape:
    tape.watch(points)
    total = tf.reduce_sum(fn(points))
  grads = tape.gradient(total, points)
  return tf.sqrt(tf.reduce_sum(tf.square(grads), axis=axes) + _NORM_EPSILON)


def gradient_penalty(fn: Callable[[tf.Tensor], tf.Tensor], points: tf.Tensor) -> tf.Tensor:
  """Two-sided gradient penalty mean_i (|grad fn(x_i)| - 1)^2 (Gulrajani et al. 2017, eq. 3).

  Args:
    fn: maps points [b, ...] to one scalar per example [b].
    points: [b, ...] interpolates.

  Returns:
    Scalar penalty, the local mean over the b examples.
  """
  norms = per_example_gradient_norm(fn, points)
  return tf.reduce_mean(tf.square(norms - 1))


def witness(features: tf.Tensor, real_features: tf.Tensor, fake_features: tf.Tensor,
            cfg: LossConfig) -> tf.Tensor:
  """The MMD witness function w(t) = mean_i k(psi(t), r_i) - mean_j k(psi(t), f_j) (Binkowski et al. 2018).

  Args:
    features: [b, d] critic features psi(t) of the points t.
    real_features: [m, d] global real features r.
    fake_features: [n, d] global fake features f.
    cfg: loss configuration; the kernel is cfg.kernel.

  Returns:
    [b] witness values.
  """
  to_real = kernels.cross_kernel(features, real_features, cfg)
  to_fake = kernels.cross_kernel(features, fake_features, cfg)
  return tf.reduce_mean(to_real, axis=1) - tf.reduce_mean(to_fake, axis=1)


def witness_gradient_penalty(critic: Callable, points: tf.Tensor, real_features: tf.Tensor,
                             fake_features: tf.Tensor, cfg: LossConfig) -> tf.Tensor:
  """Binkowski's GP: mean over interpolates of (|grad_xhat w(xhat)| - 1)^2, the norm over all pixels.

  Args:
    critic: callable(images, training=True) -> [b, d] features.
    points: [b, H, W, C] interpolates (local batch).
    real_features: [m, d] global real features.
    fake_features: [n, d] global fake features.
    cfg: loss configuration.

  Returns:
    Scalar penalty (local mean).
  """
  fn = lambda t: witness(critic(t, training=True), real_features, fake_features, cfg)
  return gradient_penalty(fn, points)


def jacobian_squared_norm(critic: Callable, images: tf.Tensor) -> tf.Tensor:
  """|J_psi(x)|_F^2 per example: the squared Frobenius norm of the critic's input Jacobian (Arbel 2018).

  One backward pass per critic output (critic_dim is 1 in Arbel's setting).

  Args:
    critic: callable(images, training=True) -> [b, d] features.
    images: [b, H, W, C].

  Returns:
    [b] squared Jacobian norms.
  """
  axes = _non_batch_axes(images)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(images)
    features = critic(images, training=True)
    if features.shape.rank != 2 or features.shape[1] is None:
      raise ValueError(f"critic features must be [b, critic_dim] with a known critic_dim, "
                       f"got {features.shape}")
    sums = [tf.reduce_sum(features[:, k]) for k in range(features.shape[1])]
  squared_norms = [tf.reduce_sum(tf.square(tape.gradient(s, images)), axis=axes) for s in sums]
  del tape
  return tf.add_n(squared_norms)


def activation_l2(activations: Sequence[tf.Tensor]) -> tf.Tensor:
  """L2 penalty on critic activations: sum over layers of mean_i mean_units a_i^2 (Binkowski et al. 2018).

  Args:
    activations: list of [b, ...] activations of every critic layer (local batch).

  Returns:
    Scalar: for each layer the per-example mean of the squared activations, averaged over the batch,
    summed over the layers.
  """
  if not activations:
    raise ValueError("activation_l2 needs the critic activations, got none")
  return tf.add_n([tf.reduce_mean(tf.square(kernels.as_kernel_dtype(a))) for a in activations])
