"""Named presets: the papers' settings per dataset, per loss and per (dataset, loss).

A preset is a dict of `"section.field": value` overrides of `mmd_gan_tf.config.Config`.
They are applied in order over the `Config` defaults (the quick run, `shapes` / `rep_b`): PAPER_SCALE, _KID
(in-training KID when the weights are there), the dataset's (`data.DATASETS[dataset].preset`), LOSS_PRESETS[loss],
PAIR_PRESETS[(dataset, loss)], then the flags given on the command line.

Costs on 2 CPU cores: the default run (`shapes`, quarter width, batch 32, 1000 steps, `rep_b`) takes 1 min 47 s
on 2 Sapphire Rapids (AMX) cores and about 7-9.5 minutes on 2 AVX2-only ones (BENCHMARKS.md, "Default run"); the
paper presets at full width take 1-30 s per step on a CPU and are meant for a GPU (100k steps and more).
"""

from mmd_gan_tf import data

# Where every preset starts: the papers' scale (full-width networks, batch 64, Wang's CIFAR-10 rates, logs every
# 50 steps, KID against the training split), with the fields no other preset sets at the values every run made
# so far recorded in its config, so that their checkpoints still resume. The quick run (the `Config` defaults)
# shrinks this for the built-in `shapes` data; its registry entry's preset and PAIR_PRESETS[("shapes", "rep_b")]
# bring those values back for it.
PAPER_SCALE = {
    "data.channels": 3, "data.shapes_style": "mixed", "model.width": 1.0, "model.spectral_norm": "matrix",
    "optim.critic_lr": 5e-4, "optim.generator_lr": 2e-4, "train.steps": 2000, "train.batch_size": 64,
    "train.log_every": 50, "eval.eval_every": 0, "eval.optional": False, "eval.real_split": "",
    "eval.kid_subset_size": 1000, "eval.num_samples": 2000,
}

# KID during training with the FID Inception weights (given, cached, or downloaded once unless
# --inception_weights=none): 2000 generated vs 2000 held-out real images every 5000 steps (2-3 minutes of a
# 2-core CPU, about a second on a GPU). Without the weights one line says so and training goes on.
_KID = {"eval.eval_every": 5000, "eval.num_samples": 2000, "eval.kid_subset_size": 1000, "eval.optional": True}

# Per dataset: image geometry, quick-run shrinks and the paper's run length come from each source's registry
# entry (`data.DATASETS[name].preset`, with its reasons in data/pipeline.py), read when a preset is resolved.

_WANG = {  # Wang et al. 2019, SN-DCGAN, one simultaneous update per step.
    "model.arch": "dcgan", "model.z_dim": 128, "model.z_distribution": "normal", "model.critic_dim": 16,
    "model.spectral_norm": "conv", "data.image_range": "tanh",
    "optim.optimizer": "adam", "optim.beta1": 0.5, "optim.beta2": 0.999,
    "optim.critic_lr": 5e-4, "optim.generator_lr": 2e-4,
    "train.schedule": "simultaneous", "train.n_critic": 1, "train.batch_size": 64,
    "loss.kernel": "rbf", "loss.sigmas": (1.0,),
}

_BINKOWSKI = {  # Binkowski et al. 2018 (mbinkowski/MMD-GAN): 5x5 DCGAN, n_critic 5, clipnorm 1, [0, 1].
    "model.arch": "dcgan5", "model.z_dim": 100, "model.z_distribution": "uniform", "model.critic_dim": 16,
    "model.spectral_norm": "none", "data.image_range": "sigmoid",
    "model.bn_momentum": 0.9, "model.bn_epsilon": 1e-5,  # tf.contrib batch_norm(decay=0.9, epsilon=1e-5)
    "optim.optimizer": "adam", "optim.beta1": 0.5, "optim.beta2": 0.9,
    "optim.critic_lr": 1e-4, "optim.generator_lr": 1e-4, "optim.clipnorm": 1.0,
    "train.schedule": "alternating", "train.n_critic": 5, "train.batch_size": 64,
    # Every run script uses `mix_rq_1dot`: RQ alphas 0.1, 1, 10 summed, plus 1.0 * a.b (the paper's text
    # lists alphas 0.2, 0.5, 1, 2, 5 and no dot term: --alphas=0.2,0.5,1,2,5 --dot_weight=0).
    "loss.kernel": "mix_rq_dot", "loss.alphas": (0.1, 1.0, 10.0), "loss.dot_weight": 1.0,
    "loss.gp_weight": 1.0, "loss.l2_weight": 1.0,
}

LOSS_PRESETS = {
    "rep": dict(_WANG, **{"loss.rep_lambda": 1.0}),
    "rep_b": dict(_WANG, **{"loss.rep_lambda": 1.0, "loss.bound_low": 0.25, "loss.bound_high": 4.0}),
    "mmd": {  # Li et al. 2017.
        "model.arch": "li", "model.z_dim": 128, "model.z_distribution": "normal", "model.critic_dim": 128,
        "model.spectral_norm": "none", "data.image_range": "tanh",
        # PyTorch RMSprop (eps outside the root; mmd_gan_tf/torch_rmsprop.py), PyTorch BatchNorm defaults.
        "optim.optimizer": "rmsprop", "optim.critic_lr": 5e-5, "optim.generator_lr": 5e-5, "optim.rho": 0.99,
        "optim.epsilon": 1e-8, "optim.weight_clip": 0.01, "model.bn_momentum": 0.9, "model.bn_epsilon": 1e-5,
        "train.schedule": "alternating", "train.n_critic": 5, "train.n_critic_warmup": 100,
        "train.n_critic_warmup_steps": 25, "train.n_critic_warmup_every": 500,
        "loss.kernel": "mix_rbf", "loss.sigmas": (1.0, 2.0, 4.0, 8.0, 16.0),
        "loss.ae_weight": 8.0, "loss.one_sided_weight": 16.0,
    },
    "mmd_gp": dict(_BINKOWSKI),
    "smmd": dict(_BINKOWSKI, **{  # Arbel et al. 2018 (MichaelArbel/Scaled-MMD-GAN, cifar10_smmd.yml).
        "model.arch": "sngan", "model.z_dim": 128, "model.critic_dim": 1, "model.spectral_norm": "matrix_gain",
        "loss.kernel": "rbf", "loss.sigmas": (1.0,), "loss.smmd_scale": 10.0,
        # 10 critic steps while step < 20 and every 500th step, else 5 (model.py:496-504).
        "train.n_critic_warmup": 10, "train.n_critic_warmup_steps": 20, "train.n_critic_warmup_every": 500,
        # KID-driven lr adaptation on, decay 0.8 (main.py:102-105); needs the Inception weights.
        "eval.lr_adaptation": True, "eval.lr_adaptation_factor": 0.8}),
    "wgan_gp": dict(_BINKOWSKI, **{  # Gulrajani et al. 2017.
        "model.critic_dim": 1, "model.z_dim": 128, "optim.clipnorm": None, "loss.gp_weight": 10.0,
        "data.image_range": "tanh"}),
    # Wang et al.'s hinge baseline: the same SN-DCGAN with 16 outputs (hinge averaged over them) and the
    # conv spectral norm at C^L = 128, his best hinge setting on CIFAR-10 (FID 22.9 at 5e-4 / 2e-4).
    "hinge": dict(_WANG, **{"model.sn_total_gain": 128.0}),
    # The flow generator moves by SGD along J^T w; its step size (generator_lr) is not from the paper.
    "flow": dict(_BINKOWSKI, **{"flow.flow_lambda": 1.0, "flow.features": "critic", "flow.solver": "direct",
                                "optim.generator_lr": 1e-2}),
}

# Wang et al. 2019's learning rates (critic, generator) per dataset, and their spectral norm.
_WANG_LR = {"cifar10": (5e-4, 2e-4), "stl10": (2e-4, 2e-4), "celeb_a": (1e-4, 2e-4), "lsun": (2e-4, 1e-4)}

PAIR_PRESETS = {}
for _dataset, (_critic_lr, _generator_lr) in _WANG_LR.items():
  for _loss in ("rep", "rep_b"):
    PAIR_PRESETS[(_dataset, _loss)] = {"optim.critic_lr": _critic_lr, "optim.generator_lr": _generator_lr}
# The default run: rep_b at twice Wang's CIFAR-10 rates learns the digits in 1000 steps of batch 32 (KID 97.7,
# a sixth of the untrained generator's); 1.5x his rates at batch 64 needed 600 steps of twice the cost, 3x
# them diverged (results/default_run/README.md).
PAIR_PRESETS[("shapes", "rep_b")] = {"optim.critic_lr": 1e-3, "optim.generator_lr": 5e-4, "train.batch_size": 32}
# Wang's hinge baseline per dataset: the best FID of the hinge block of his result sheet
# (richardwth/MMD-GAN, Results/Results_rep.xlsx; rows lr_D_lr_G, columns k = C^L): STL-10 1e-4/2e-4, k 256,
# FID 46.26 (stl!K6; CIFAR-10's setting gave 48.80, stl!I14); CelebA 2e-4/2e-4, k 256, FID 8.95 (celebA!K10;
# 12.52, celebA!I14); LSUN 1e-3/2e-4, k 128, FID 17.20 (lsun!I18; 24.21, lsun!I14). CIFAR-10: the loss preset
# (5e-4/2e-4, k 128, FID 22.90, CIFAR-10!I14).
_WANG_HINGE = {"stl10": (1e-4, 2e-4, 256.0), "celeb_a": (2e-4, 2e-4, 256.0), "lsun": (1e-3, 2e-4, 128.0)}
for _dataset, (_critic_lr, _generator_lr, _total_gain) in _WANG_HINGE.items():
  PAIR_PRESETS[(_dataset, "hinge")] = {"optim.critic_lr": _critic_lr, "optim.generator_lr": _generator_lr,
                                       "model.sn_total_gain": _total_gain}
# Binkowski's and Arbel's runs: 150k generator steps; CIFAR-10 train + test, LSUN random crops.
for _loss in ("mmd_gp", "smmd"):
  PAIR_PRESETS[("cifar10", _loss)] = {"data.preprocessing": "binkowski", "train.steps": 150000}
  PAIR_PRESETS[("lsun", _loss)] = {"data.preprocessing": "binkowski", "train.steps": 150000}
  PAIR_PRESETS[("celeb_a", _loss)] = {"model.arch": "resnet_big", "data.image_size": 160,
                                      "data.preprocessing": "binkowski", "train.steps": 150000}
# Li et al.'s run_exp.sh: nz (latent and code size) 10 on MNIST, 64 on CelebA, 128 otherwise; 1000 epochs
# (MAX_ITER) at batch 64 for every dataset. Generator steps per epoch follow from his loop: every generator
# step consumes 5 critic batches and its own (100 critic batches while g < 25 and every 500th g), an epoch ends
# when the loader runs out (ceil(N / 64) batches). Over 1000 epochs that gives 149,640 steps on MNIST (60,000
# images), 124,614 on CIFAR-10 (50,000), 500,000 on CelebA (202,599, the whole image folder) and 7,655,484 on
# LSUN bedroom (3,033,042); CelebA is cropped as his ALICropAndScale (resize to 64x78, rows 7..70).
PAIR_PRESETS[("mnist", "mmd")] = {"data.preprocessing": "li", "model.z_dim": 10, "model.critic_dim": 10,
                                  "train.steps": 149640}
PAIR_PRESETS[("cifar10", "mmd")] = {"train.steps": 124614}
PAIR_PRESETS[("celeb_a", "mmd")] = {"data.preprocessing": "li", "model.z_dim": 64, "model.critic_dim": 64,
                                    "train.steps": 500000}
PAIR_PRESETS[("lsun", "mmd")] = {"train.steps": 7655484}


def resolve_preset(dataset: str, loss: str) -> dict:
  """All preset overrides for (dataset, loss), later entries winning."""
  if dataset not in data.DATASETS:
    raise ValueError(f"--dataset={dataset!r} has no preset; known: {sorted(data.DATASETS)}")
  if loss not in LOSS_PRESETS:
    raise ValueError(f"--loss={loss!r} has no preset; known: {sorted(LOSS_PRESETS)}")
  resolved = dict(PAPER_SCALE)
  resolved.update(_KID)
  resolved.update(data.DATASETS[dataset].preset)
  resolved.update(LOSS_PRESETS[loss])
  resolved.update(PAIR_PRESETS.get((dataset, loss), {}))
  return resolved



def advice(cfg) -> list:
  """One-line warnings for preset settings that this project measured to fail for most seeds."""
  lines = []
  if cfg.loss.name == "rep" and cfg.model.width < 1:
    lines.append(f"warning: --loss=rep at --width={cfg.model.width:g} stalled in a saturated or all-zero kernel "
                 "state for 5 of 12 seeds at widths 1/4 and 1/2 (MNIST 2 of 3 at each, CIFAR-10 1 of 6); "
                 "--loss=rep_b for 1 of 12 (docs/training.md, 'Which loss at small widths')")
  return lines
