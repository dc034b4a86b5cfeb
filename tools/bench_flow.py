r"""Step time of the gradient-flow generator update next to the mmd_gp steps.

Builds the project's DCGAN generator and critic (`mmd_gan_tf.models`, default a quarter-width 32 px net),
and times, on random "real" images and one device, the per-replica step functions of `mmd_gan_tf.steps`:
the mmd_gp critic step (MMD2_u + witness gradient penalty + L2), the mmd_gp generator step, and the generator
step with the flow update (`FlowGeneratorUpdate`) for each requested feature map / solver. Writes a markdown
report (machine, command, table) to --output.

  python tools/bench_flow.py --width=0.25 --batch_size=64 --steps=10 --output=BENCHMARKS_flow.md
"""

import os
import platform
import sys
import time

from mmd_gan_tf import onednn

onednn.prefer()  # the CPU kernels main.py runs (before TensorFlow's import)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from mmd_gan_tf import cli, losses, steps  # noqa: E402
from mmd_gan_tf.config import Config, FlowConfig, LossConfig, ModelConfig, TrainConfig  # noqa: E402
from mmd_gan_tf.flow.update import FlowGeneratorUpdate  # noqa: E402
from mmd_gan_tf.flow.features import feature_dim, make_feature_map  # noqa: E402
from mmd_gan_tf.models import build_critic, build_generator  # noqa: E402

FLAGS = flags.FLAGS

# name -> FlowConfig overrides; None = the plain mmd_gp generator step.
VARIANTS = {
    "mmd_gp_critic": None, "mmd_gp_generator": None,
    "flow_critic_direct": dict(features="critic", solver="direct"),
    "flow_critic_direct_pfor": dict(features="critic", solver="direct", jacobian_pfor=True),
    "flow_critic_cg": dict(features="critic", solver="cg"),
    "flow_rff_cg": dict(features="rff", solver="cg"),
    "flow_rff_direct": dict(features="rff", solver="direct"),
    "flow_critic_per_sample": dict(features="critic", solver="direct", metric="per_sample"),
}


def define_flags():
  flags.DEFINE_string("arch", "dcgan", "Architecture of mmd_gan_tf.models.")
  flags.DEFINE_integer("image_size", 32, "Image size S.")
  flags.DEFINE_float("width", 0.25, "Channel multiplier (1.0 = the paper's widths).")
  flags.DEFINE_integer("batch_size", 64, "Batch size (one device).")
  flags.DEFINE_integer("critic_dim", 16, "Critic feature dimension (m for --flow features=critic).")
  flags.DEFINE_integer("rff_dim", 256, "Random Fourier features (m for features=rff).")
  flags.DEFINE_float("flow_lambda", 1.0, "lambda of the flow.")
  flags.DEFINE_integer("cg_iterations", 50, "Maximum CG products.")
  flags.DEFINE_float("cg_tolerance", 1e-6, "CG relative residual tolerance.")
  flags.DEFINE_integer("n_critic", 5, "Critic steps per generator step in the per-iteration estimate.")
  flags.DEFINE_list("variants", [v for v in VARIANTS if v not in ("flow_rff_direct", "flow_critic_per_sample")],
                    f"Which steps to time, of {list(VARIANTS)} (flow_rff_direct: rff_dim reverse passes, "
                    "flow_critic_per_sample: batch x critic_dim reverse passes; both slow).")
  flags.DEFINE_integer("steps", 10, "Timed steps per variant (after 2 warm-up steps).")
  flags.DEFINE_string("output", "BENCHMARKS_flow.md", "Markdown report to write ('' = print only).")
  flags.DEFINE_bool("append", False, "Append to --output instead of overwriting it.")


def build(model_cfg: ModelConfig):
  generator, critic = build_generator(model_cfg), build_critic(model_cfg)
  optimizers = [keras.optimizers.Adam(1e-4, beta_1=0.5, beta_2=0.9) for _ in range(2)]
  for optimizer, model in zip(optimizers, (critic, generator)):
    optimizer.build(model.trainable_variables)
  return steps.Networks(generator, critic, None, *optimizers)


def time_step(fn, real, num_steps: int):
  """Median and minimum wall time (ms) of `fn(real, step)` over `num_steps` calls after 2 warm-up calls."""
  step_fn = tf.function(fn)
  for step in range(2):
    metrics = step_fn(real, tf.constant(step, tf.int64))
  times = []
  for step in range(num_steps):
    start = time.perf_counter()
    metrics = step_fn(real, tf.constant(step + 2, tf.int64))
    tf.nest.map_structure(lambda t: t.numpy(), metrics)
    times.append(1000 * (time.perf_counter() - start))
  return float(np.median(times)), float(np.min(times)), {k: float(v) for k, v in metrics.items()}


def run_variant(name, nets, cfg: Config, real):
  spec = losses.get_loss("mmd_gp")
  overrides = VARIANTS[name]
  update = None
  if overrides is not None:
    flow_cfg = FlowConfig(flow_lambda=FLAGS.flow_lambda, rff_dim=FLAGS.rff_dim, cg_iterations=FLAGS.cg_iterations,
                          cg_tolerance=FLAGS.cg_tolerance, **overrides)
    update = FlowGeneratorUpdate(flow_cfg, make_feature_map(flow_cfg, FLAGS.critic_dim, seed=0))
  _, critic_fn, generator_fn = steps.make_replica_fns(nets, cfg, spec, generator_update=update)
  median, best, metrics = time_step(critic_fn if name == "mmd_gp_critic" else generator_fn, real, FLAGS.steps)
  m = "" if overrides is None else feature_dim(flow_cfg, FLAGS.critic_dim)
  return dict(name=name, median=median, best=best, m=m, cg=metrics.get("flow/cg_iterations", ""))


def report(rows, parameters, command) -> str:
  by_name = {row["name"]: row for row in rows}
  base = by_name.get("mmd_gp_generator")
  critic = by_name.get("mmd_gp_critic")
  lines = [f"# Flow generator update: step time (`{command}`)", "",
           f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores ({platform.processor() or 'cpu'}), "
           f"load average {os.getloadavg()[0]:.2f} at the end; TensorFlow {tf.__version__}, "
           f"devices {[d.name for d in tf.config.list_logical_devices()]}",
           f"- networks: {FLAGS.arch} {FLAGS.image_size} px, width {FLAGS.width}, generator P = {parameters} "
           f"parameters, batch {FLAGS.batch_size}, critic_dim {FLAGS.critic_dim}, lambda {FLAGS.flow_lambda}, "
           f"cg_iterations <= {FLAGS.cg_iterations}, tolerance {FLAGS.cg_tolerance}",
           "- each row: median (min) of the tf.function-compiled per-replica step over "
           f"{FLAGS.steps} steps after 2 warm-up steps; a generator step includes its plain forward pass.",
           f"- iteration = {FLAGS.n_critic} mmd_gp critic steps + 1 generator step.", "",
           "| step | m | CG products | ms / step (median) | min | x mmd_gp G step | x mmd_gp iteration |",
           "|---|---|---|---|---|---|---|"]
  for row in rows:
    ratio = f"{row['median'] / base['median']:.2f}" if base else ""
    iteration = ""
    if base and critic and row["name"].startswith(("flow", "mmd_gp_generator")):
      total = FLAGS.n_critic * critic["median"]
      iteration = f"{(total + row['median']) / (total + base['median']):.2f}"
    cg = f"{row['cg']:.0f}" if row["cg"] != "" else ""
    lines.append(f"| {row['name']} | {row['m']} | {cg} | {row['median']:.1f} | {row['best']:.1f} | {ratio} | "
                 f"{iteration} |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  unknown = [v for v in FLAGS.variants if v not in VARIANTS]
  if unknown:
    raise app.UsageError(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
  model_cfg = ModelConfig(arch=FLAGS.arch, image_size=FLAGS.image_size, channels=3, width=FLAGS.width,
                          critic_dim=FLAGS.critic_dim, spectral_norm="matrix")
  cfg = Config(model=model_cfg, loss=LossConfig(name="mmd_gp", kernel="mix_rq_dot"),
               train=TrainConfig(batch_size=FLAGS.batch_size))
  nets = build(model_cfg)
  parameters = sum(int(np.prod(v.shape)) for v in nets.generator.trainable_variables)
  real = tf.random.stateless_uniform([FLAGS.batch_size, FLAGS.image_size, FLAGS.image_size, 3], [1, 2], -1.0, 1.0)
  rows = []
  for name in FLAGS.variants:
    rows.append(run_variant(name, nets, cfg, real))
    print(rows[-1], flush=True)
  command = "python tools/bench_flow.py " + " ".join(sys.argv[1:])
  text = report(rows, parameters, command.strip())
  print(text)
  if FLAGS.output:
    with open(FLAGS.output, "a" if FLAGS.append else "w") as f:
      f.write(("\n" if FLAGS.append else "") + text)


if __name__ == "__main__":
  define_flags()
  cli.run(main)
