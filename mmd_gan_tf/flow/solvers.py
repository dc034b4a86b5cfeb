"""The m x m solves of the gradient-flow generator update, in float64.

Both solve (A + lambda I) w = delta for the critic of the regularised problem, where A = J J^T (or the per-sample
metric D = mean_z J_z J_z^T) is symmetric positive semi-definite, m x m:
  - `solve_direct` takes A explicitly and uses its eigendecomposition, which also gives the smallest eigenvalue
    and the condition number of A + lambda I that the trainer logs; eigenvalues below zero (round-off) are
    clipped, so a rank-deficient A gives a finite w for any lambda > 0;
  - `conjugate_gradient` needs only u -> A u (in the flow: one reverse- and one forward-mode product), and
    estimates the extreme eigenvalues of A + lambda I from its Lanczos tridiagonal (Ritz values).
"""

from typing import Callable, NamedTuple

import tensorflow as tf


class DirectSolve(NamedTuple):
  """Result of `solve_direct`: w [m] and the eigenvalues [m] of A + lambda I (ascending), float64."""
  solution: tf.Tensor
  eigenvalues: tf.Tensor


class CGSolve(NamedTuple):
  """Result of `conjugate_gradient` (all float64).

  solution: w [m]; residual: the recursive residual delta - (A + lambda I) w [m]; iterations: int32 scalar,
  matrix-vector products that moved w; ritz_min / ritz_max: Lanczos estimates of the extreme eigenvalues of
  A + lambda I (NaN when no iteration ran, i.e. delta = 0).
  """
  solution: tf.Tensor
  residual: tf.Tensor
  iterations: tf.Tensor
  ritz_min: tf.Tensor
  ritz_max: tf.Tensor


def solve_direct(gram: tf.Tensor, delta: tf.Tensor, flow_lambda: float) -> DirectSolve:
  """w = (A + lambda I)^-1 delta through the eigendecomposition A = Q diag(e) Q^T.

  w = Q diag(1 / (max(e, 0) + lambda)) Q^T delta; finite for every PSD (also rank-deficient) A when lambda > 0.

  Args:
    gram: A = J J^T (or D), [m, m], symmetric PSD up to round-off; cast to float64.
    delta: mean Phi(real) - mean Phi(fake), [m]; cast to float64.
    flow_lambda: lambda > 0.

  Returns:
    DirectSolve(solution [m], eigenvalues [m] of A + lambda I).
  """
  gram = tf.cast(gram, tf.float64)
  delta = tf.cast(delta, tf.float64)
  eigenvalues, eigenvectors = tf.linalg.eigh(0.5 * (gram + tf.transpose(gram)))
  eigenvalues = tf.maximum(eigenvalues, 0.0)
  coefficients = tf.linalg.matvec(eigenvectors, delta, transpose_a=True)
  solution = tf.linalg.matvec(eigenvectors, coefficients / (eigenvalues + flow_lambda))
  return DirectSolve(solution, eigenvalues + flow_lambda)


class _CGState(NamedTuple):
  step: tf.Tensor        # loop counter, int32
  count: tf.Tensor       # iterations that moved the solution, int32
  solution: tf.Tensor    # [m]
  residual: tf.Tensor    # [m]
  direction: tf.Tensor   # [m]
  residual_sq: tf.Tensor  # |residual|^2
  alphas: tf.Tensor      # [iterations]
  betas: tf.Tensor       # [iterations]
  done: tf.Tensor        # bool


def _safe_divide(numerator: tf.Tensor, denominator: tf.Tensor) -> tf.Tensor:
  return tf.where(denominator > 0, numerator / tf.where(denominator > 0, denominator, 1.0), 0.0)


def _cg_step(state: _CGState, matvec: Callable, flow_lambda: float, threshold: tf.Tensor) -> _CGState:
  """One masked CG iteration on (A + lambda I) w = delta (Hestenes & Stiefel 1952); a no-op once done."""
  shifted = matvec(state.direction) + flow_lambda * state.direction
  curvature = tf.reduce_sum(state.direction * shifted)
  active = tf.logical_and(tf.logical_not(state.done), curvature > 0)
  alpha = tf.where(active, _safe_divide(state.residual_sq, curvature), 0.0)
  residual = state.residual - alpha * shifted
  residual_sq = tf.where(active, tf.reduce_sum(residual * residual), state.residual_sq)
  beta = tf.where(active, _safe_divide(residual_sq, state.residual_sq), 0.0)
  index = [[tf.minimum(state.count, tf.shape(state.alphas)[0] - 1)]]
  return _CGState(
      step=state.step + 1,
      count=state.count + tf.cast(active, tf.int32),
      solution=state.solution + alpha * state.direction,
      residual=residual,
      direction=tf.where(active, residual + beta * state.direction, state.direction),
      residual_sq=residual_sq,
      alphas=tf.where(active, tf.tensor_scatter_nd_update(state.alphas, index, [alpha]), state.alphas),
      betas=tf.where(active, tf.tensor_scatter_nd_update(state.betas, index, [beta]), state.betas),
      done=tf.logical_or(tf.logical_not(active), tf.sqrt(residual_sq) <= threshold))


def lanczos_extreme_eigenvalues(alphas: tf.Tensor, betas: tf.Tensor, count: tf.Tensor):
  """Ritz estimates of the extreme eigenvalues of the CG system matrix (Golub & Van Loan 2013, 11.3.5).

  The Lanczos tridiagonal T of the first n CG iterations has T_00 = 1 / alpha_0,
  T_kk = 1 / alpha_k + beta_{k-1} / alpha_{k-1}, T_k,k+1 = sqrt(beta_k) / alpha_k. Unused slots k >= n are filled
  with T_00 on the diagonal (inside the spectrum of the leading n x n block, so they change neither extreme).

  Args:
    alphas: CG step sizes, [K] float64 (the first `count` are used).
    betas: CG direction updates, [K] float64.
    count: n, int32 scalar.

  Returns:
    (smallest, largest) Ritz values, float64 scalars; NaN when count == 0.
  """
  size = tf.shape(alphas)[0]
  valid = tf.range(size) < count
  inverse_alpha = tf.where(valid, _safe_divide(tf.ones_like(alphas), alphas), 0.0)
  previous = tf.concat([[0.0], betas[:-1] * inverse_alpha[:-1]], axis=0)
  diagonal = tf.where(valid, inverse_alpha + previous, inverse_alpha[0])
  off_diagonal = tf.where(tf.range(size - 1) < count - 1, tf.sqrt(betas[:-1]) * inverse_alpha[:-1], 0.0)
  upper = tf.pad(tf.linalg.diag(off_diagonal), [[0, 1], [1, 0]])
  ritz = tf.linalg.eigvalsh(tf.linalg.diag(diagonal) + upper + tf.transpose(upper))
  nan = tf.constant(float("nan"), tf.float64)
  return tf.where(count > 0, ritz[0], nan), tf.where(count > 0, ritz[-1], nan)


def conjugate_gradient(matvec: Callable, delta: tf.Tensor, flow_lambda: float, iterations: int,
                       tolerance: float, unroll: bool = False) -> CGSolve:
  """Conjugate gradient on (A + lambda I) w = delta with A given only as u -> A u.

  Stops when |delta - (A + lambda I) w| <= tolerance |delta| or after `iterations` products. With
  `unroll=True` the loop is a Python loop of exactly `iterations` masked steps (every product is computed):
  needed under MirroredStrategy, whose cross-replica all-reduce (inside `matvec`) cannot sit in a tf.while_loop.

  Args:
    matvec: u [m] float64 -> A u [m] float64, A symmetric PSD.
    delta: right-hand side, [m]; cast to float64.
    flow_lambda: lambda > 0.
    iterations: maximum number of products, >= 1.
    tolerance: relative residual tolerance, >= 0.
    unroll: Python loop instead of tf.while_loop.

  Returns:
    CGSolve (float64 solution [m], residual [m], iterations, ritz_min, ritz_max of A + lambda I).
  """
  delta = tf.cast(delta, tf.float64)
  delta_sq = tf.reduce_sum(delta * delta)
  threshold = tolerance * tf.sqrt(delta_sq)
  state = _CGState(tf.constant(0), tf.constant(0), tf.zeros_like(delta), delta, delta, delta_sq,
                   tf.zeros([iterations], tf.float64), tf.zeros([iterations], tf.float64),
                   tf.sqrt(delta_sq) <= threshold)
  step = lambda s: _cg_step(s, matvec, flow_lambda, threshold)  # noqa: E731
  if unroll:
    for _ in range(iterations):
      state = step(state)
  else:
    state = tf.while_loop(lambda s: tf.logical_and(s.step < iterations, tf.logical_not(s.done)),
                          lambda s: (step(s),), (state,))[0]
  ritz_min, ritz_max = lanczos_extreme_eigenvalues(state.alphas, state.betas, state.count)
  return CGSolve(state.solution, state.residual, state.count, ritz_min, ritz_max)
