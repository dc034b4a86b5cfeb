"""Train, resume or export an MMD GAN.

  python main.py                                   # built-in digits, rep_b, 1000 steps: 2 min (AMX) to 5 (AVX2) on 2 cores
  python main.py --dataset=cifar10 --loss=rep      # Wang et al.'s CIFAR-10 preset
  python main.py --dataset=lsun --loss=rep --data_dir=/data/lsun
  python main.py --dry_run                         # print the resolved config and exit
  python main.py --mode=export --workdir=runs/...  # export the generator of the latest checkpoint
  python main.py --mode=export_best --workdir=runs/...  # the best-KID checkpoint's, to <workdir>/export_best_kid

Re-running with the same --workdir resumes from the latest checkpoint.
"""

import json
import signal
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mmd_gan_tf import startup  # noqa: E402  (no TensorFlow: before it)

# SIGTERM / Ctrl-C: a checkpoint of the interrupted step was saved; rerun to continue (EX_TEMPFAIL).
EXIT_INTERRUPTED = startup.EXIT_INTERRUPTED

# The flags take their choices from the library's registries, so TensorFlow loads with them: first,
# without the no-GPU noise. A stop during these seconds of imports is one line, not a traceback (Ctrl-C) or a
# silent exit (SIGTERM, SIGHUP: exit 75, and their handler stays through the set-up until the trainer's own).
with startup.quiet_stops(__name__ == "__main__", keep=True):
  from absl import app  # noqa: E402
  from absl import flags as absl_flags  # noqa: E402
  from absl import logging  # noqa: E402

  from mmd_gan_tf import console  # noqa: E402

  console.import_tensorflow_quietly()
  from flags import build as config_builder  # noqa: E402
  from flags import definitions  # noqa: E402
  from flags import presets  # noqa: E402
  from mmd_gan_tf import cli  # noqa: E402

# The run stopped on its own fault (a diverged loss, a full disk): one line says why and what is kept.
EXIT_RUN_FAILED = 1

definitions.define_flags()
FLAGS = absl_flags.FLAGS


def _flag_values() -> dict:
  """Only the flags the user gave explicitly, so that the presets (or a resumed run's own settings) fill the
  rest."""
  return {name: FLAGS[name].value for name in definitions.FLAG_FIELDS if FLAGS[name].present}


def _run_settings(given: dict):
  """A resumed run's own config (the base the given flags change), or None for a fresh run.

  The workdir is --workdir, else the preset's runs/<dataset>_<loss>. A run there (checkpoints that carry
  their config, or config.json) is resumed with its own settings; only the flags given change them (and a
  change of what the checkpoints mean is refused when the run starts)."""
  from mmd_gan_tf import checkpointing  # pylint: disable=g-import-not-at-top
  workdir = config_builder.default_workdir(given)  # not a whole build: a preset may need the flags given
  if not (os.path.isdir(os.path.join(workdir, "checkpoints")) or
          os.path.isfile(os.path.join(workdir, checkpointing.CONFIG_FILE))):
    return None
  try:
    saved = checkpointing.load_config(workdir)
  except (ValueError, OSError):
    return None  # not readable as a run: the run itself says why when it starts
  return checkpointing.at_workdir(saved, workdir)


# --mode: (checkpoint folder in the run, default export folder in the run, what is exported)
EXPORT_MODES = {"export": ("checkpoints", "export", "the newest readable checkpoint"),
                "export_best": ("best_kid", "export_best_kid", "the best-KID checkpoint")}


def _exportable(cfg, mode: str = "export") -> str:
  """The checkpoint folder of the run `--mode=<mode>` would export; ValueError when there is none."""
  checkpoint_dir = os.path.join(cfg.workdir, EXPORT_MODES[mode][0])
  if mode == "export_best":
    from mmd_gan_tf import checkpointing  # pylint: disable=g-import-not-at-top
    if not checkpointing.checkpoints_on_disk(checkpoint_dir):
      raise ValueError(f"--workdir={cfg.workdir} has no best-KID checkpoint (best_kid/): its training evaluated "
                       "no KID (see --eval_every); --mode=export exports its latest checkpoint")
  elif not os.path.isdir(checkpoint_dir):
    raise ValueError(f"--workdir={cfg.workdir} has no checkpoint to export")
  return checkpoint_dir


def _export(cfg, mode: str = "export", export_dir=None) -> None:
  """Exports the generator of the run's newest readable checkpoint (`export`) or of its best-KID checkpoint
  (`export_best`) to `export_dir` (default: the run's `export/` or `export_best_kid/`)."""
  from mmd_gan_tf import checkpointing, evaluation, export, trainer  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  checkpoint_dir = _exportable(cfg, mode)
  best = mode == "export_best"
  # A run that trains here exports when it ends; its checkpoint rotation would race this export. A read-only
  # run directory has no run training in it: it is read as it is (nothing repaired or moved). The best-KID
  # folder is the evaluation's own (it sets an unreadable checkpoint aside itself): it is only read here.
  writable = os.access(cfg.workdir, os.W_OK) and os.access(checkpoint_dir, os.W_OK)
  lock = (checkpointing.WorkdirLock(cfg.workdir, advice="that run exports its generator itself when it ends")
          if writable else None)
  exported = False
  try:
    checkpointing.refuse_outside_state(checkpoint_dir)
    if writable and not best:
      for line in filter(None, [checkpointing.repair_checkpoint_state(checkpoint_dir)]):
        print(f"warning: {line}", file=sys.stderr)
      for bad, error, folder in checkpointing.quarantine_unreadable(checkpoint_dir):
        print(f"warning: checkpoint {bad} is unreadable ({error}): moved to checkpoints/{folder}/, exporting "
              "the previous one", file=sys.stderr)
    listed = checkpointing.checkpoint_list(checkpoint_dir)
    if writable and not best:  # the quarantine above left the newest listed one readable
      latest = listed[-1] if listed else None
    else:
      latest = next((p for p in reversed(listed) if checkpointing.readable(p)), None)
    if latest is None:
      raise ValueError(f"--workdir={cfg.workdir} has no {'readable best-KID ' if best else ''}checkpoint to export")
    # Where the run is now (it may have been moved since): the export path is checked against it.
    saved = checkpointing.at_workdir(checkpointing.load_config(cfg.workdir), cfg.workdir)
    nets = trainer.build_networks(saved)
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = trainer.make_checkpoint(nets, step, critic_count=tf.Variable(0, dtype=tf.int64))
    checkpoint.restore(latest).expect_partial()
    export_dir = export_dir or os.path.join(cfg.workdir, EXPORT_MODES[mode][1])
    newer = export.exported_step(export_dir)
    if newer is not None and newer > int(step.numpy()):
      raise ValueError(f"{export_dir} holds the generator of step {newer}, newer than {EXPORT_MODES[mode][2]} "
                       f"({os.path.basename(latest)}, step {int(step.numpy())}): it is kept; give "
                       "another --export_dir to export that checkpoint")
    trainer.export(nets.generator, saved, export_dir, int(step.numpy()))
    exported = True
  finally:
    if lock is not None:
      lock.release(restore=not exported)  # a refused export leaves the run as it was
  kid = evaluation.recorded_best_kid(latest) if best else None
  print(f"Exported the generator of {latest} (step {int(step.numpy())}"
        f"{f', KID {kid:.5g}' if kid is not None else ''}) to {export_dir}")


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  given = _flag_values()
  base = _run_settings(given)
  cfg = config_builder.build_config(given, base=base)  # ValueError: one line via mmd_gan_tf.cli
  if FLAGS.mode in EXPORT_MODES:
    ignored = sorted(set(given) - {"workdir", "export_dir"} - (set() if "workdir" in given else {"dataset", "loss"}))
    if ignored:
      raise ValueError(f"--mode={FLAGS.mode} exports the run's generator as it was trained: "
                       f"{' '.join('--' + name for name in ignored)} would have no effect; leave them out")
  if base is not None and FLAGS.mode == "train":
    print(f"resuming {cfg.workdir}: its own settings, changed only by the flags given", file=sys.stderr)
  for line in presets.advice(cfg):
    print(line, file=sys.stderr)
  if cfg.train.mixed_precision == "auto":
    from mmd_gan_tf import trainer  # pylint: disable=g-import-not-at-top
    on, why = trainer.bfloat16_pays()
    print(f"mixed precision (bfloat16 compute): {'on' if on else 'off'}, --mixed_precision=auto on a {why}",
          file=sys.stderr)
  if FLAGS.dry_run:
    if base is not None and FLAGS.mode == "train":  # what the run would refuse, the dry run refuses
      from mmd_gan_tf import checkpointing  # pylint: disable=g-import-not-at-top
      checkpointing.refuse_incompatible(json.loads(base.to_json()), cfg, cfg.workdir)
    if FLAGS.mode in EXPORT_MODES:
      _exportable(cfg, FLAGS.mode)
    print(cfg.to_json())
    return 0
  logging.set_verbosity(logging.INFO)
  from mmd_gan_tf import trainer  # pylint: disable=g-import-not-at-top
  if FLAGS.mode in EXPORT_MODES:
    try:
      with cli.signals_as_interrupt():  # SIGTERM and SIGHUP stop an export as Ctrl-C does
        # The best generator goes to --export_dir only when given: a run's own export_dir holds its latest.
        _export(cfg, FLAGS.mode, cfg.export_dir if FLAGS.mode == "export" or "export_dir" in given else None)
    except trainer.DiskFullError as e:
      print(cli.one_line(e), file=sys.stderr)
      return EXIT_RUN_FAILED
    except KeyboardInterrupt:
      print(f"interrupted: the export of {cfg.workdir} was not finished; the previous export (if any) is intact "
            "and the next export settles what this one left; run the same command again", file=sys.stderr)
      return EXIT_INTERRUPTED
    return 0
  try:
    metrics = trainer.train(cfg)
  except trainer.Interrupted as e:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # saved: a late second Ctrl-C must not turn 75 into 130
    print(f"interrupted: {e}", file=sys.stderr)
    return EXIT_INTERRUPTED
  except KeyboardInterrupt:  # a second Ctrl-C, or one before the stop handler is in place: no checkpoint of this step
    from mmd_gan_tf import checkpointing  # pylint: disable=g-import-not-at-top
    if startup.SIGNALS:  # SIGTERM / SIGHUP before training began: nothing of this start is lost
      print(f"stopped by {startup.SIGNALS[0]} during start-up, before training: run the same command again",
            file=sys.stderr)
      return EXIT_INTERRUPTED
    if checkpointing.checkpoints_on_disk(os.path.join(cfg.workdir, "checkpoints")):
      print(f"stopped at once by Ctrl-C (a second one, or one during start-up): nothing saved since the last "
            f"checkpoint in {cfg.workdir}; "
            "run the same command again to continue from it", file=sys.stderr)
    else:
      print(f"stopped at once by Ctrl-C (a second one, or one during start-up) before the first checkpoint of "
            f"{cfg.workdir}: run the same "
            "command again to start it", file=sys.stderr)
    return cli.EXIT_CTRL_C
  except (trainer.DivergedError, trainer.DiskFullError) as e:
    print(cli.one_line(e), file=sys.stderr)
    return EXIT_RUN_FAILED
  if not metrics:
    print("final: nothing trained (the run was already at --steps or had used its --max_train_minutes)")
    return 0
  print("final: " + " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
  return 0


if __name__ == "__main__":
  cli.run(main)
