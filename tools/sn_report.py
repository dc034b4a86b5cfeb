"""How well the spectral norms of a run's critic are estimated: per layer, the sigma its power vector gives
now against the operator norm after many more power iterations.

  python -m tools.sn_report --workdir=runs/cifar10_rep [--iterations=100] [--out=report.json]
  python -m tools.sn_report --workdir=runs/cifar10_rep --features=256 [--checkpoint=runs/.../best_kid/ckpt-2000]

A power vector that has not converged underestimates sigma, so the layer's effective norm C * sigma_true /
sigma_estimate exceeds C; the product over layers is the critic's actual Lipschitz bound (C^L = 64 when
every estimate is exact). A bound far above C^L means the critic's features can spread much further than
the preset intends, which saturates a fixed-bandwidth Gaussian kernel (kernel/fake_fake -> 1,
kernel/real_real and kernel/real_fake -> 0).

--features=N adds the geometry of the critic's outputs on N images of the run's training data and N generated
ones: the median (and 10th percentile) pairwise distance within and across the two sets, in units of the
kernel bandwidth, the Gaussian kernel means at that bandwidth (the `kernel/*` scalars of TensorBoard, on a
larger sample), and the mean feature norm. It tells the two failures of a fixed-bandwidth Gaussian kernel
apart: real-real 0 / fake-fake 1 (the critic maps the fakes together and spreads the reals) and all three
means near 0 (every distance many bandwidths long: the feature scale itself has grown).
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from mmd_gan_tf import checkpointing  # noqa: E402
from mmd_gan_tf import cli  # noqa: E402
from mmd_gan_tf import files  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "Run directory (config.json and checkpoints/).")
  flags.DEFINE_integer("iterations", 100, "Extra power iterations for the reference sigma.")
  flags.DEFINE_string("out", None, "Optional JSON output path.")
  flags.DEFINE_string("checkpoint", None, "Checkpoint prefix (default: the latest in <workdir>/checkpoints).")
  flags.DEFINE_integer("features", 0, "Also the critic's feature geometry on this many real and generated "
                       "images (0 = off).")


def layer_report(layer, iterations: int) -> dict:
  """sigma from the stored vector, and after `iterations` more power iterations (vector not written back)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  sigma_now, vector = layer.power_step()
  saved = tf.identity(layer.power_vector.value)
  sigma = sigma_now
  for _ in range(iterations):
    layer.power_vector.assign(vector)
    sigma, vector = layer.power_step()
  layer.power_vector.assign(saved)
  return {"layer": layer.name, "sigma_estimate": float(sigma_now), "sigma_converged": float(sigma),
          "ratio": float(sigma) / max(float(sigma_now), 1e-30), "multiplier": float(layer.multiplier)}


def pairwise_distances(a, b=None):
  """Euclidean distances between the rows of a [n, d] and b [m, d], float64; b=None: the off-diagonal pairs
  of a with itself, flattened."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  a = np.asarray(a, np.float64)
  other = a if b is None else np.asarray(b, np.float64)
  d2 = (a * a).sum(1)[:, None] + (other * other).sum(1)[None, :] - 2.0 * a @ other.T
  distances = np.sqrt(np.maximum(d2, 0.0))
  return distances[~np.eye(len(a), dtype=bool)] if b is None else distances.ravel()


def feature_geometry(real_features, fake_features, bandwidth: float) -> dict:
  """Per pair set (real_real, fake_fake: off-diagonal; real_fake: all): the median and 10th percentile of the
  pairwise distances in units of `bandwidth`, and the mean of exp(-d^2 / (2 bandwidth^2)); mean feature norms."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  result = {"bandwidth": bandwidth}
  for name, distances in (("real_real", pairwise_distances(real_features)),
                          ("fake_fake", pairwise_distances(fake_features)),
                          ("real_fake", pairwise_distances(real_features, fake_features))):
    scaled = distances / bandwidth
    result[name] = {"median_distance": float(np.median(scaled)), "p10_distance": float(np.percentile(scaled, 10)),
                    "kernel_mean": float(np.mean(np.exp(-0.5 * scaled ** 2)))}
  result["feature_norm_real"] = float(np.linalg.norm(np.asarray(real_features, np.float64), axis=1).mean())
  result["feature_norm_fake"] = float(np.linalg.norm(np.asarray(fake_features, np.float64), axis=1).mean())
  return result


def _critic_features(nets, cfg, num: int) -> tuple:
  """The critic's outputs on `num` images of the run's training stream and `num` generated ones."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import data as data_lib, noise  # pylint: disable=import-outside-toplevel
  real = next(iter(data_lib.make_dataset(cfg.data, num, seed=0)))
  fake = nets.generator(noise.sample_z(cfg.model, num, seed=tf.constant(0)), training=False)
  return (nets.critic(real, training=False).numpy(), nets.critic(fake, training=False).numpy())


def report(workdir: str, iterations: int, checkpoint_path: str = None, features: int = 0) -> dict:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import checkpointing, trainer  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf.layers import spectral_norm as sn  # pylint: disable=import-outside-toplevel
  if iterations < 1:  # 0 iterations reported the estimate itself as converged: ratio 1, bound = intended
    raise ValueError(f"--iterations={iterations} must be >= 1")
  if features == 1 or features < 0:
    raise ValueError(f"--features={features} must be 0 (off) or >= 2")
  cfg = checkpointing.load_config(workdir)
  nets = trainer.build_networks(cfg)
  step = tf.Variable(0, dtype=tf.int64)
  checkpoint = trainer.make_checkpoint(nets, step, critic_count=tf.Variable(0, dtype=tf.int64))
  latest = checkpoint_path or tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  if latest is None:
    raise ValueError(f"--workdir={workdir} has no checkpoint")
  if checkpoint_path and not checkpointing.readable(checkpoint_path):
    raise ValueError(f"--checkpoint={checkpoint_path} is not a readable checkpoint (give a prefix such as "
                     f"{os.path.join(workdir, 'checkpoints', 'ckpt-N')})")
  checkpoint.restore(latest).expect_partial()
  layers = [layer_report(layer, iterations) for layer in sn.spectral_layers(nets.critic)]
  bound = 1.0
  for layer in layers:
    bound *= layer["multiplier"] * layer["ratio"]
  result = {"checkpoint": latest, "step": int(step.numpy()), "layers": layers, "lipschitz_bound": bound,
            "intended_bound": float(layers[0]["multiplier"]) ** len(layers) if layers else 1.0}
  if features:
    sigmas = cfg.loss.sigmas
    if len(sigmas) != 1:
      raise ValueError(f"--features needs a single-bandwidth kernel; this run's sigmas are {list(sigmas)}")
    result["features"] = feature_geometry(*_critic_features(nets, cfg, features), float(sigmas[0]))
  return result


def check_out(out: str) -> None:
  """ValueError naming --out unless it is a new file or an earlier report of this tool, outside any run's own
  folders (it replaced a checkpoint's index file)."""
  checkpointing.refuse_inside_runs("--out", out)
  if os.path.isdir(out):
    raise ValueError(f"--out={out} is a folder; give a file name for the JSON report")
  if os.path.exists(out):
    earlier = files.read_json(out)
    if not (isinstance(earlier, dict) and {"checkpoint", "layers"} <= set(earlier)):
      raise ValueError(f"--out={out} exists and is not a report of this tool; give a new file or move it")


def main(argv) -> int:
  del argv
  if not FLAGS.workdir:
    raise app.UsageError("--workdir is required")
  if FLAGS.out:
    check_out(FLAGS.out)  # before the work
  result = report(FLAGS.workdir, FLAGS.iterations, FLAGS.checkpoint, FLAGS.features)
  print(f"{result['checkpoint']} (step {result['step']})")
  for layer in result["layers"]:
    print(f"  {layer['layer']:<16} sigma estimate {layer['sigma_estimate']:10.4g}  converged "
          f"{layer['sigma_converged']:10.4g}  ratio {layer['ratio']:.3f}")
  print(f"  Lipschitz bound of the critic: {result['lipschitz_bound']:.4g} (intended {result['intended_bound']:.4g})")
  if "features" in result:
    geometry = result["features"]
    for name in ("real_real", "fake_fake", "real_fake"):
      print(f"  {name:<9} median distance {geometry[name]['median_distance']:8.3f} bandwidths, kernel mean "
            f"{geometry[name]['kernel_mean']:.3f}")
    print(f"  mean feature norm: real {geometry['feature_norm_real']:.3f}, fake {geometry['feature_norm_fake']:.3f}")
  if FLAGS.out:
    with open(FLAGS.out, "w", encoding="utf-8") as f:
      json.dump(result, f, indent=1)
  return 0


if __name__ == "__main__":
  define_flags()
  cli.run(main)
