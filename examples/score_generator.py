"""Score any Keras generator with KID against real images, with the callback you would give to `fit`.

    python examples/score_generator.py --generator=runs/shapes_rep_b/export/generator.keras --num=1000

The real images are the built-in digits' test split (or `--real=file.npz:key`, uint8 [N, H, W, C]). In a
`fit` loop the same object is a callback: `gan.fit(data, epochs=E, callbacks=[kid])` logs `kid` every epoch.
"""

import argparse

from mmd_gan_tf import onednn  # noqa: E402  (imports no TensorFlow)

onednn.prefer()  # oneDNN CPU kernels on AVX2-only CPUs too, before TensorFlow's import (docs/api.md)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import mmd_gan_tf as mg  # noqa: E402
from mmd_gan_tf.data import shapes  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--generator", required=True, help="a .keras generator: z [b, z_dim] -> images in [-1, 1]")
parser.add_argument("--real", default="", help="file.npz:key of uint8 images (default: built-in digits)")
parser.add_argument("--num", type=int, default=1000, help="generated and real images")
parser.add_argument("--subset_size", type=int, default=500)
parser.add_argument("--inception_weights", default=None, help="default: the cache, downloaded once")
args = parser.parse_args()

generator = keras.saving.load_model(args.generator)
if args.real:
  path, key = args.real.rsplit(":", 1)
  real = np.load(path)[key][:args.num]
else:
  size, channels = generator.output_shape[1], generator.output_shape[-1]
  batch = next(iter(shapes.shapes_dataset(size, channels, args.num, seed=0, split="test", style="digits")))
  real = np.round(batch.numpy() * 255).astype(np.uint8)
kid = mg.KIDCallback(generator, real, mg.load_fid_inception(args.inception_weights),
                     z_dim=generator.input_shape[-1], num_samples=args.num, kid_subsets=10,
                     kid_subset_size=args.subset_size)
result = kid.score()
print(f"KID x 10^3: {result.mean * 1e3:.2f} +- {result.std * 1e3:.2f} ({args.num} vs {len(real)} images)")
