"""Kernels on critic features.

Every kernel has the signature `fn(real [m, d], fake [n, d], cfg: LossConfig) -> GramBlocks` and is
dtype-generic: float32 in training, float64 for KID and the numpy oracles; half-precision inputs are
cast to float32 so kernel arithmetic never runs in float16. Pairwise squared distances are
d2 = |a|^2 + |b|^2 - 2 a.b, clamped at >= 0.

The diagonal blocks carry the kernel's TRUE diagonal k(a_i, a_i), computed from |a_i|^2 rather than
read off the rounded d2 matrix, and written into the Gram matrix so that `sum(K) - trace(K)` is
exactly the off-diagonal sum. It is not always constant: `mix_rq_dot`'s is len(alphas) + w |a|^2
(Binkowski's code subtracted a constant there, a bias as large as MMD^2 itself).

`KERNELS[name]` is a `KernelSpec`: the Gram-block function, its elementwise values (for the witness
function), the `LossConfig` parameters it reads and a `check` that rejects a config it cannot use,
so that a bad combination fails when the config is built rather than when a step is traced.
"""

from typing import Callable, Dict, NamedTuple, Tuple

import tensorflow as tf

from mmd_gan_tf.config import ConfigError, LossConfig


class GramBlocks(NamedTuple):
  """The Gram blocks of one kernel on m real and n fake feature vectors.

  Attributes:
    real_real: [m, m] k(r_i, r_j), diagonal equal to `real_diag`.
    fake_fake: [n, n] k(f_i, f_j), diagonal equal to `fake_diag`.
    real_fake: [m, n] k(r_i, f_j).
    real_diag: [m] k(r_i, r_i).
    fake_diag: [n] k(f_i, f_i).
  """
  real_real: tf.Tensor
  fake_fake: tf.Tensor
  real_fake: tf.Tensor
  real_diag: tf.Tensor
  fake_diag: tf.Tensor


class Pairs(NamedTuple):
  """Pairwise quantities of one block, everything a kernel value needs (broadcastable shapes)."""
  d2: tf.Tensor        # [m, n] squared distances, >= 0
  dot: tf.Tensor       # [m, n] dot products
  sq_left: tf.Tensor   # [m, 1] squared norms of the left vectors
  sq_right: tf.Tensor  # [1, n] squared norms of the right vectors
  dim: tf.Tensor       # scalar, the feature dimension d


def as_kernel_dtype(x) -> tf.Tensor:
  """Returns `x` as a float tensor for kernel arithmetic: float16/bfloat16 -> float32, else unchanged."""
  x = tf.convert_to_tensor(x)
  if x.dtype in (tf.float16, tf.bfloat16):
    return tf.cast(x, tf.float32)
  if x.dtype not in (tf.float32, tf.float64):
    raise ValueError(f"kernel inputs must be floating point, got dtype {x.dtype.name}")
  return x


def _check_pair(left: tf.Tensor, right: tf.Tensor) -> None:
  if left.shape.rank != 2 or right.shape.rank != 2:
    raise ValueError(f"kernel inputs must be [batch, dim] matrices, got shapes {left.shape} and "
                     f"{right.shape}")
  if left.shape[1] is not None and right.shape[1] is not None and left.shape[1] != right.shape[1]:
    raise ValueError(f"feature dimensions differ: {left.shape[1]} vs {right.shape[1]}")
  if left.dtype != right.dtype:
    raise ValueError(f"kernel inputs have different dtypes: {left.dtype.name} vs {right.dtype.name}")


def pairs(left: tf.Tensor, right: tf.Tensor) -> Pairs:
  """Pairwise squared distances and dot products of left [m, d] and right [n, d]."""
  dot = tf.matmul(left, right, transpose_b=True)
  sq_left = tf.reduce_sum(tf.square(left), axis=1, keepdims=True)
  sq_right = tf.transpose(tf.reduce_sum(tf.square(right), axis=1, keepdims=True))
  d2 = tf.maximum(sq_left + sq_right - 2 * dot, 0)
  dim = tf.cast(tf.shape(left)[1], left.dtype)
  return Pairs(d2=d2, dot=dot, sq_left=sq_left, sq_right=sq_right, dim=dim)


def diagonal_pairs(block: Pairs) -> Pairs:
  """The exact pairwise quantities of the pairs (a_i, a_i) of a same-set block: d2 = 0, dot = |a_i|^2."""
  sq = block.sq_left[:, 0]
  return Pairs(d2=tf.zeros_like(sq), dot=sq, sq_left=sq, sq_right=sq, dim=block.dim)


def check_one_sigma(cfg: LossConfig) -> None:
  """rbf and bounded_rbf: a Gaussian has one bandwidth (a mixture of several is mix_rbf)."""
  if len(cfg.sigmas) != 1:
    raise ConfigError("loss.sigmas", cfg.sigmas, f"kernel {cfg.kernel!r} takes exactly one bandwidth "
                      "(mix_rbf sums several)")


def check_some_sigmas(cfg: LossConfig) -> None:
  """mix_rbf: at least one bandwidth."""
  if not cfg.sigmas:
    raise ConfigError("loss.sigmas", cfg.sigmas, f"kernel {cfg.kernel!r} needs at least one sigma")


def check_alphas(cfg: LossConfig) -> None:
  """mix_rq and mix_rq_dot: at least one alpha, all positive (the RQ kernel is undefined otherwise)."""
  if not cfg.alphas or min(cfg.alphas) <= 0:
    raise ConfigError("loss.alphas", cfg.alphas, f"kernel {cfg.kernel!r} needs positive alphas")


def check_bounds(cfg: LossConfig) -> None:
  """bounded_rbf: one bandwidth and 0 <= bound_low <= bound_high."""
  check_one_sigma(cfg)
  if not 0 <= cfg.bound_low <= cfg.bound_high:
    raise ConfigError("loss.bound_low", cfg.bound_low, f"kernel {cfg.kernel!r} needs 0 <= bound_low <= "
                      f"bound_high={cfg.bound_high}")


def _no_check(cfg: LossConfig) -> None:
  del cfg


def _single_sigma(cfg: LossConfig) -> float:
  check_one_sigma(cfg)
  return cfg.sigmas[0]


def _rbf_values(p: Pairs, sigma: float) -> tf.Tensor:
  return tf.exp(-p.d2 / tf.constant(2 * sigma**2, p.d2.dtype))


def rbf_values(p: Pairs, cfg: LossConfig) -> tf.Tensor:
  """Gaussian kernel exp(-d2 / (2 s^2)), s = the one entry of cfg.sigmas (Wang 2019; Arbel 2018)."""
  return _rbf_values(p, _single_sigma(cfg))


def mix_rbf_values(p: Pairs, cfg: LossConfig) -> tf.Tensor:
  """Mixture of Gaussians, a SUM over cfg.sigmas of exp(-d2 / (2 s^2)) (Li et al. 2017)."""
  check_some_sigmas(cfg)
  return tf.add_n([_rbf_values(p, sigma) for sigma in cfg.sigmas])


def mix_rq_values(p: Pairs, cfg: LossConfig) -> tf.Tensor:
  """Rational-quadratic mixture, SUM over alpha of (1 + d2 / (2 alpha))^(-alpha) (Binkowski et al. 2018)."""
  check_alphas(cfg)
  dtype = p.d2.dtype
  terms = [tf.pow(1 + p.d2 / tf.constant(2 * alpha, dtype), tf.constant(-alpha, dtype))
           for alpha in cfg.alphas]
  return tf.add_n(terms)


def mix_rq_dot_values(p: Pairs, cfg: LossConfig) -> tf.Tensor:
  """mix_rq plus a linear kernel, k = mix_rq + w a.b with w = cfg.dot_weight (Binkowski's `mix_rq_1dot`)."""
  return mix_rq_values(p, cfg) + tf.constant(cfg.dot_weight, p.dot.dtype) * p.dot


def distance_values(p: Pairs, cfg: LossConfig) -> tf.Tensor:
  """Distance (energy / Cramer) kernel |a| + |b| - |a - b|, with cfg.distance_epsilon under each root.

  Binkowski et al. 2018 (the kernel of the energy distance). The epsilon keeps the gradient of
  the root finite at coincident points.
  """
  eps = tf.constant(cfg.distance_epsilon, p.d2.dtype)
  return tf.sqrt(p.sq_left + eps) + tf.sqrt(p.sq_right + eps) - tf.sqrt(p.d2 + eps)


def poly_values(p: Pairs, cfg: LossConfig) -> tf.Tensor:
  """Polynomial kernel (gamma a.b + coef)^degree, gamma = 1/d by default: the KID kernel (Binkowski 2018)."""
  dtype = p.dot.dtype
  gamma = 1 / p.dim if cfg.poly_gamma is None else tf.constant(cfg.poly_gamma, dtype)
  return tf.pow(gamma * p.dot + tf.constant(cfg.poly_coef, dtype), tf.constant(cfg.poly_degree, dtype))


ValuesFn = Callable[[Pairs, LossConfig], tf.Tensor]


def _prepare(real, fake):
  real, fake = as_kernel_dtype(real), as_kernel_dtype(fake)
  _check_pair(real, fake)
  return real, fake


def gram_blocks(values: ValuesFn, real, fake, cfg: LossConfig) -> GramBlocks:
  """The three Gram blocks of an elementwise kernel, with the true diagonal written in.

  Args:
    values: kernel value function of `Pairs`.
    real: [m, d] real features.
    fake: [n, d] fake features.
    cfg: the loss configuration (bandwidths etc.).

  Returns:
    GramBlocks in the dtype of the inputs (float32 for half-precision inputs).
  """
  real, fake = _prepare(real, fake)
  real_pairs, fake_pairs = pairs(real, real), pairs(fake, fake)
  real_diag = values(diagonal_pairs(real_pairs), cfg)
  fake_diag = values(diagonal_pairs(fake_pairs), cfg)
  return GramBlocks(
      real_real=tf.linalg.set_diag(values(real_pairs, cfg), real_diag),
      fake_fake=tf.linalg.set_diag(values(fake_pairs, cfg), fake_diag),
      real_fake=values(pairs(real, fake), cfg),
      real_diag=real_diag,
      fake_diag=fake_diag)


def cross_kernel(left, right, cfg: LossConfig) -> tf.Tensor:
  """k(left_i, right_j) for the kernel cfg.kernel: [m, d], [n, d] -> [m, n] (used by the witness function)."""
  left, right = _prepare(left, right)
  return get_kernel_spec(cfg.kernel).values(pairs(left, right), cfg)


def rbf(real, fake, cfg: LossConfig) -> GramBlocks:
  """Gaussian kernel exp(-d2 / (2 s^2)); see `rbf_values`."""
  return gram_blocks(rbf_values, real, fake, cfg)


def mix_rbf(real, fake, cfg: LossConfig) -> GramBlocks:
  """Sum of Gaussians over cfg.sigmas; see `mix_rbf_values`."""
  return gram_blocks(mix_rbf_values, real, fake, cfg)


def mix_rq(real, fake, cfg: LossConfig) -> GramBlocks:
  """Rational-quadratic mixture over cfg.alphas; see `mix_rq_values`."""
  return gram_blocks(mix_rq_values, real, fake, cfg)


def mix_rq_dot(real, fake, cfg: LossConfig) -> GramBlocks:
  """mix_rq + w a.b; its diagonal len(alphas) + w |a|^2 is not constant. See `mix_rq_dot_values`."""
  return gram_blocks(mix_rq_dot_values, real, fake, cfg)


def distance(real, fake, cfg: LossConfig) -> GramBlocks:
  """Distance (energy) kernel; diagonal 2 sqrt(|a|^2 + eps) - sqrt(eps). See `distance_values`."""
  return gram_blocks(distance_values, real, fake, cfg)


def poly(real, fake, cfg: LossConfig) -> GramBlocks:
  """KID polynomial kernel; see `poly_values`."""
  return gram_blocks(poly_values, real, fake, cfg)


def bounded_rbf(real, fake, cfg: LossConfig) -> GramBlocks:
  """Wang's bounded Gaussian kernel RBF-B, for the critic loss of `rep_b` only (Wang et al. 2019).

  real-real: exp(-min(d2, b_u) / (2 s^2)), so real features stop being pushed apart beyond d2 = b_u;
  fake-fake: exp(-max(d2, b_l) / (2 s^2)), so fake features stop being pulled closer than d2 = b_l;
  real-fake: the plain rbf. b_l = cfg.bound_low, b_u = cfg.bound_high, s = the one cfg.sigmas entry.

  Args:
    real: [m, d] real features.
    fake: [n, d] fake features.
    cfg: the loss configuration.

  Returns:
    GramBlocks; fake_diag is exp(-b_l / (2 s^2)), the bounded kernel at coincident points.
  """
  check_bounds(cfg)
  real, fake = _prepare(real, fake)
  sigma, dtype = _single_sigma(cfg), real.dtype
  cap_real = lambda p: p._replace(d2=tf.minimum(p.d2, tf.constant(cfg.bound_high, dtype)))
  floor_fake = lambda p: p._replace(d2=tf.maximum(p.d2, tf.constant(cfg.bound_low, dtype)))
  real_pairs, fake_pairs = pairs(real, real), pairs(fake, fake)
  real_diag = _rbf_values(cap_real(diagonal_pairs(real_pairs)), sigma)
  fake_diag = _rbf_values(floor_fake(diagonal_pairs(fake_pairs)), sigma)
  return GramBlocks(
      real_real=tf.linalg.set_diag(_rbf_values(cap_real(real_pairs), sigma), real_diag),
      fake_fake=tf.linalg.set_diag(_rbf_values(floor_fake(fake_pairs), sigma), fake_diag),
      real_fake=_rbf_values(pairs(real, fake), sigma),
      real_diag=real_diag,
      fake_diag=fake_diag)


KernelFn = Callable[[tf.Tensor, tf.Tensor, LossConfig], GramBlocks]


class KernelSpec(NamedTuple):
  """One entry of `KERNELS`.

  Attributes:
    blocks: fn(real [m, d], fake [n, d], cfg) -> GramBlocks.
    values: fn(Pairs, cfg) -> elementwise kernel values (the witness function's cross kernel);
      `bounded_rbf` is plain rbf there, its bounds apply to the critic's within-set blocks only.
    check: fn(cfg) raising ConfigError when `cfg` gives this kernel parameters it cannot use.
    parameters: the LossConfig fields this kernel reads (a flag setting any other one has no effect).
    critic_side_only: True for a kernel that only a critic loss built for it may use (`bounded_rbf`).
    description: one line for `--help`.
  """
  blocks: KernelFn
  values: ValuesFn
  check: Callable[[LossConfig], None] = _no_check
  parameters: Tuple[str, ...] = ()
  critic_side_only: bool = False
  description: str = ""


KERNELS: Dict[str, KernelSpec] = {
    "rbf": KernelSpec(rbf, rbf_values, check_one_sigma, ("sigmas",), description="Gaussian, one sigma"),
    "mix_rbf": KernelSpec(mix_rbf, mix_rbf_values, check_some_sigmas, ("sigmas",),
                          description="sum of Gaussians over sigmas"),
    "mix_rq": KernelSpec(mix_rq, mix_rq_values, check_alphas, ("alphas",),
                         description="sum of rational quadratics over alphas"),
    "mix_rq_dot": KernelSpec(mix_rq_dot, mix_rq_dot_values, check_alphas, ("alphas", "dot_weight"),
                             description="mix_rq + dot_weight * a.b"),
    "distance": KernelSpec(distance, distance_values, description="distance (energy)"),
    "bounded_rbf": KernelSpec(bounded_rbf, rbf_values, check_bounds, ("sigmas",), critic_side_only=True,
                              description="Wang's bounded Gaussian, rep_b's critic only"),
    "poly": KernelSpec(poly, poly_values, description="KID polynomial"),
}


def get_kernel_spec(name: str) -> KernelSpec:
  """KERNELS[name] with a clear error for an unknown name."""
  if name not in KERNELS:
    raise ValueError(f"unknown kernel {name!r}; known: {sorted(KERNELS)}")
  return KERNELS[name]


def get_kernel(name: str) -> KernelFn:
  """The Gram-block function of KERNELS[name]."""
  return get_kernel_spec(name).blocks
