"""Train a preset from Python: the same config `main.py` builds from its flags, then `mmd_gan_tf.train`.

    python examples/train_preset.py --dataset=shapes --loss=rep_b --steps=1000 --workdir=runs/from_python

The presets live in the repository's `flags/` (per dataset, loss and pair, overridden by what you pass), so
run this from a clone. Any other flag of `main.py` is a key of the dict given to `build_config`.
"""

import argparse
import json
import pathlib
import sys

from mmd_gan_tf import onednn  # noqa: E402  (imports no TensorFlow)

onednn.prefer()  # oneDNN CPU kernels on AVX2-only CPUs too, before TensorFlow's import (docs/api.md)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the clone's flags/ package

from flags import build  # noqa: E402

import mmd_gan_tf as mg  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--dataset", default="shapes")
parser.add_argument("--loss", default="rep_b")
parser.add_argument("--steps", type=int, default=1000)
parser.add_argument("--width", type=float, default=None, help="channel multiplier (default: the preset's)")
parser.add_argument("--workdir", default="runs/from_python")
args = parser.parse_args()

flags = {"dataset": args.dataset, "loss": args.loss, "steps": args.steps, "workdir": args.workdir,
         "inception_weights": "none"}  # give a weights file (or drop this) for KID in training
if args.width is not None:
  flags["width"] = args.width
cfg = build.build_config(flags)  # the resolved preset, validated as on the command line
print(json.dumps({"loss": cfg.loss.name, "arch": cfg.model.arch, "critic_lr": cfg.optim.critic_lr,
                  "batch_size": cfg.train.batch_size}))
metrics = mg.train(cfg)  # checkpoints, resume, TensorBoard and the export under cfg.workdir
print({k: round(v, 4) for k, v in sorted(metrics.items())})
