"""How well the spectral norms of a run's critic are estimated: per layer, the sigma its power vector gives
now against the operator norm after many more power iterations.

  python -m tools.sn_report --workdir=runs/cifar10_rep [--iterations=100] [--out=report.json]

A power vector that has not converged underestimates sigma, so the layer's effective norm C * sigma_true /
sigma_estimate exceeds C; the product over layers is the critic's actual Lipschitz bound (C^L = 64 when
every estimate is exact). A bound far above C^L means the critic's features can spread much further than
the preset intends, which saturates a fixed-bandwidth Gaussian kernel (kernel/fake_fake -> 1,
kernel/real_real and kernel/real_fake -> 0).
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from mmd_gan_tf import cli  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "Run directory (config.json and checkpoints/).")
  flags.DEFINE_integer("iterations", 100, "Extra power iterations for the reference sigma.")
  flags.DEFINE_string("out", None, "Optional JSON output path.")


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


def report(workdir: str, iterations: int) -> dict:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf import checkpointing, trainer  # pylint: disable=import-outside-toplevel
  from mmd_gan_tf.layers import spectral_norm as sn  # pylint: disable=import-outside-toplevel
  cfg = checkpointing.load_config(workdir)
  nets = trainer.build_networks(cfg)
  step = tf.Variable(0, dtype=tf.int64)
  checkpoint = trainer.make_checkpoint(nets, step, critic_count=tf.Variable(0, dtype=tf.int64))
  latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  if latest is None:
    raise ValueError(f"--workdir={workdir} has no checkpoint")
  checkpoint.restore(latest).expect_partial()
  layers = [layer_report(layer, iterations) for layer in sn.spectral_layers(nets.critic)]
  bound = 1.0
  for layer in layers:
    bound *= layer["multiplier"] * layer["ratio"]
  return {"checkpoint": latest, "step": int(step.numpy()), "layers": layers, "lipschitz_bound": bound,
          "intended_bound": float(layers[0]["multiplier"]) ** len(layers) if layers else 1.0}


def main(argv) -> int:
  del argv
  if not FLAGS.workdir:
    raise app.UsageError("--workdir is required")
  result = report(FLAGS.workdir, FLAGS.iterations)
  print(f"{result['checkpoint']} (step {result['step']})")
  for layer in result["layers"]:
    print(f"  {layer['layer']:<16} sigma estimate {layer['sigma_estimate']:10.4g}  converged "
          f"{layer['sigma_converged']:10.4g}  ratio {layer['ratio']:.3f}")
  print(f"  Lipschitz bound of the critic: {result['lipschitz_bound']:.4g} (intended {result['intended_bound']:.4g})")
  if FLAGS.out:
    with open(FLAGS.out, "w", encoding="utf-8") as f:
      json.dump(result, f, indent=1)
  return 0


if __name__ == "__main__":
  define_flags()
  cli.run(main)
