"""tf.distribute plumbing: strategy choice, chief detection, the cross-replica all-gather."""

import json
import os
import tempfile
from typing import Optional

import tensorflow as tf

from mmd_gan_tf import config as config_lib


def split_cpu(num_devices: int) -> None:
  """Splits the host CPU into `num_devices` logical devices (before TF initialises its devices).

  A no-op when the CPU is already split that way (e.g. by a test's conftest).

  Raises:
    ValueError: num_devices < 1, or TF's devices were already initialised differently.
  """
  if num_devices < 1:
    raise ValueError(f"--cpu_devices={num_devices} must be >= 1")
  cpu = tf.config.list_physical_devices("CPU")[0]
  current = tf.config.get_logical_device_configuration(cpu)
  if current is not None and len(current) == num_devices:
    return
  try:
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
  except RuntimeError as e:
    raise ValueError(f"--cpu_devices={num_devices}: TensorFlow's devices are already initialised "
                     f"({e})") from e


def make_strategy(name: str, cpu_devices: int = 0) -> tf.distribute.Strategy:
  """Returns the strategy named by `--strategy`.

  Args:
    name: "mirrored" (all local GPUs, else all logical CPUs), "one_device" (first GPU, else
      the CPU) or "multi_worker" (MultiWorkerMirroredStrategy over the cluster of `cluster_resolver`).
    cpu_devices: if > 0 and there is no GPU, split the CPU into this many logical devices first.
  """
  if name == "multi_worker":
    # Must come before anything initialises TF's devices (listing logical devices does).
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=cluster_resolver())
  if cpu_devices and not tf.config.list_physical_devices("GPU"):
    split_cpu(cpu_devices)
  gpus = tf.config.list_logical_devices("GPU")
  if name == "mirrored":
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if gpus:
      return tf.distribute.MirroredStrategy([d.name for d in gpus])
    # Several logical CPUs of one host: reduce on one device (no collective ops needed).
    return tf.distribute.MirroredStrategy(
        cpus, cross_device_ops=tf.distribute.ReductionToOneDevice() if len(cpus) > 1 else None)
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  raise ValueError(f"--strategy={name!r} must be one of {', '.join(config_lib.STRATEGIES)}")


# Under Slurm, the first port of the workers on each node (the next tasks of a node take the next ports).
SLURM_PORT_ENV = "MMD_GAN_TF_SLURM_PORT"
_SLURM_VARIABLES = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST", "SLURM_STEP_TASKS_PER_NODE")


def _check_tf_config(text: str) -> None:
  """ValueError naming TF_CONFIG unless it is JSON with a cluster of host:port lists and a task in it."""
  try:
    spec = json.loads(text)
  except json.JSONDecodeError as error:
    raise ValueError(f"TF_CONFIG is not valid JSON ({error.msg} at character {error.pos}); expected e.g. "
                     '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", '
                     '"index": 0}}') from None
  cluster = spec.get("cluster") if isinstance(spec, dict) else None
  if not isinstance(cluster, dict) or not cluster or not all(
      isinstance(tasks, list) and tasks and all(isinstance(t, str) and ":" in t for t in tasks)
      for tasks in cluster.values()):
    raise ValueError(f"TF_CONFIG's cluster must map job names to lists of 'host:port' strings, not {cluster!r}")
  task = spec.get("task")
  if not isinstance(task, dict) or task.get("type") not in cluster or not isinstance(task.get("index"), int) \
      or not 0 <= task["index"] < len(cluster[task["type"]]):
    raise ValueError(f"TF_CONFIG's task {task!r} is not one of its cluster's tasks "
                     f"({ {job: len(tasks) for job, tasks in cluster.items()} })")


def cluster_resolver() -> Optional[tf.distribute.cluster_resolver.ClusterResolver]:
  """The cluster of `--strategy=multi_worker`: TF_CONFIG when it is set (checked: a malformed one is one
  line); else, in a Slurm job step (`srun`), Slurm's own variables through `SlurmClusterResolver`, ports from
  $MMD_GAN_TF_SLURM_PORT (default 8888) on; else None (TensorFlow's default: one worker).

  Slurm's GPU binding (e.g. `--gpus-per-task=1`) decides which GPUs a task sees; the resolver only names
  the workers (one per task, `worker` 0 the chief).
  """
  text = os.environ.get("TF_CONFIG", "").strip()
  if text:
    _check_tf_config(text)
    return None  # MultiWorkerMirroredStrategy reads it itself
  if not all(name in os.environ for name in _SLURM_VARIABLES):
    return None
  try:
    tasks, port = int(os.environ["SLURM_STEP_NUM_TASKS"]), int(os.environ.get(SLURM_PORT_ENV, "8888"))
    # GPUs are Slurm's business here: give the resolver one placeholder per task so that it only lays out
    # the workers (its own GPU counting calls nvidia-smi, and a node without GPUs would get no worker).
    resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
        port_base=port, gpus_per_node=tasks, gpus_per_task=1, auto_set_gpu=False)
    resolver.cluster_spec()  # resolves this task's type and index
  except (ValueError, RuntimeError, KeyError) as error:
    found = {name: os.environ.get(name) for name in (*_SLURM_VARIABLES, SLURM_PORT_ENV)}
    raise ValueError(f"--strategy=multi_worker under Slurm: the job step's variables do not describe a cluster "
                     f"({error}; {found})") from None
  return resolver


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True on the worker that writes summaries, checkpoints and exports."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  return task_type == "chief" or (task_type == "worker" and task_id == 0
                                  and "chief" not in resolver.cluster_spec().as_dict())


def num_workers(strategy: tf.distribute.Strategy) -> int:
  """Worker processes of the cluster (1 without a cluster spec)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return 1
  spec = resolver.cluster_spec()
  return sum(spec.num_tasks(job) for job in ("chief", "worker") if job in spec.jobs)


def any_worker(strategy: tf.distribute.Strategy, flag: bool) -> bool:
  """True if `flag` is True on any worker: a collective sum, so every worker must call it at the same step.

  Only needed with several workers (`num_workers(strategy) > 1`); on one worker `flag` is the answer.
  """
  local = tf.constant(1 if flag else 0, tf.int32)
  total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(local)), axis=None)
  return bool(int(total.numpy()) > 0)


def write_dir(path: str, strategy: tf.distribute.Strategy) -> str:
  """The directory this worker writes `path` to: `path` on the chief, a scratch dir elsewhere.

  Non-chief workers must still run checkpoint saves (they are collective), but into a
  throw-away directory, so that only the chief's files are ever read back.
  """
  if is_chief(strategy):
    return path
  return os.path.join(tempfile.gettempdir(), f"worker_{strategy.cluster_resolver.task_id}",
                      os.path.basename(path))


def all_gather(local: tf.Tensor) -> tf.Tensor:
  """Concatenates `local` [b, ...] over replicas along axis 0, differentiably.

  In replica context with more than one replica this is `ReplicaContext.all_gather`, whose
  gradient sends each replica's slice of the upstream gradient, summed over replicas, back to
  the replica that produced it; with one replica it is the identity.
  """
  ctx = tf.distribute.get_replica_context()
  if ctx is None or ctx.num_replicas_in_sync == 1:
    return local
  return ctx.all_gather(local, axis=0)


def num_replicas(replica_context: Optional[tf.distribute.ReplicaContext] = None) -> int:
  """Replicas in sync: of `replica_context`, else of the current context (1 outside any strategy).

  The one definition of the replica count: steps, gradient clipping and the flow all ask here.
  """
  ctx = replica_context or tf.distribute.get_replica_context()
  if ctx is None:  # cross-replica context: ask the strategy
    return tf.distribute.get_strategy().num_replicas_in_sync
  return ctx.num_replicas_in_sync
