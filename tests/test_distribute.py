"""Global-batch MMD^2 under MirroredStrategy equals the single-device computation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_gan_tf import config as config_lib
from mmd_gan_tf import distribute
from mmd_gan_tf import losses as losses_lib


def _tiny_nets(seed=0):
  keras.utils.set_random_seed(seed)
  generator = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="tanh")])
  critic = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="tanh"),
                             keras.layers.Dense(3)])
  return generator, critic


def _grads(generator, critic, real, z, loss_name):
  """(critic grads, generator grads) of the replica-scaled rep losses on this replica's slice."""
  spec = losses_lib.LOSSES[loss_name]
  cfg = config_lib.LossConfig(name=loss_name)
  with tf.GradientTape(persistent=True) as tape:
    fake = generator(z)
    real_features, fake_features = critic(real), critic(fake)
    outputs = losses_lib.CriticOutputs(
        real_images=real, fake_images=fake,
        real_features=distribute.all_gather(real_features),
        fake_features=distribute.all_gather(fake_features),
        critic=critic, gather=distribute.all_gather, real_activations=None, fake_activations=None,
        real_reconstruction=None, fake_reconstruction=None)
    replicas = tf.cast(distribute.num_replicas(), tf.float32)
    critic_loss = spec.critic_loss(outputs, cfg).loss / replicas
    generator_loss = spec.generator_loss(outputs, cfg).loss / replicas
  return (tape.gradient(critic_loss, critic.trainable_variables),
          tape.gradient(generator_loss, generator.trainable_variables))


def _check_loss(loss_name, two_replica_strategy):
  rng = np.random.default_rng(0)
  real = tf.constant(rng.normal(size=(8, 6)), tf.float32)
  z = tf.constant(rng.normal(size=(8, 4)), tf.float32)

  generator, critic = _tiny_nets()
  single_critic, single_generator = _grads(generator, critic, real, z, loss_name)

  strategy = two_replica_strategy
  with strategy.scope():
    d_generator, d_critic = _tiny_nets()
  d_generator.set_weights(generator.get_weights())
  d_critic.set_weights(critic.get_weights())

  def split(tensor):
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: tensor[4 * ctx.replica_id_in_sync_group: 4 * (ctx.replica_id_in_sync_group + 1)])

  @tf.function
  def step(real_split, z_split):
    per_replica = strategy.run(lambda r, q: _grads(d_generator, d_critic, r, q, loss_name),
                               args=(real_split, z_split))
    return tf.nest.map_structure(lambda g: strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None),
                                 per_replica)

  multi_critic, multi_generator = step(split(real), split(z))
  for single, multi in zip(single_critic + single_generator, multi_critic + multi_generator):
    np.testing.assert_allclose(multi.numpy(), single.numpy(), rtol=1e-5, atol=1e-6)
  return single_critic


def test_rep_gradients_match_single_device(two_replica_strategy):
  grads = _check_loss("rep", two_replica_strategy)
  assert max(float(tf.reduce_max(tf.abs(g))) for g in grads) > 1e-4  # not a trivial zero match


def test_per_replica_mmd_would_differ(two_replica_strategy):
  """The check above can fail: MMD^2 on local features alone gives other gradients."""
  rng = np.random.default_rng(0)
  real = tf.constant(rng.normal(size=(8, 6)), tf.float32)
  z = tf.constant(rng.normal(size=(8, 4)), tf.float32)
  generator, critic = _tiny_nets()
  single_critic, _ = _grads(generator, critic, real, z, "rep")
  half_critic_a, _ = _grads(generator, critic, real[:4], z[:4], "rep")
  half_critic_b, _ = _grads(generator, critic, real[4:], z[4:], "rep")
  local_sum = [(a + b) / 2 for a, b in zip(half_critic_a, half_critic_b)]
  differences = [np.max(np.abs(a.numpy() - b.numpy())) for a, b in zip(local_sum, single_critic)]
  assert max(differences) > 1e-3


def _free_port() -> int:
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _free_port_pair() -> int:
  """A port p with p and p + 1 free (Slurm's layout: the tasks of a node take consecutive ports)."""
  import socket  # pylint: disable=g-import-not-at-top
  for _ in range(50):
    port = _free_port()
    try:
      with socket.socket() as s:
        s.bind(("localhost", port + 1))
      return port
    except OSError:
      continue
  raise RuntimeError("no two consecutive free ports")


def _slurm_env(rank: int, port: int) -> dict:
  """What `srun --ntasks=2` on one node sets (the variables SlurmClusterResolver reads), plus the port."""
  return {"SLURM_PROCID": str(rank), "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NODELIST": "localhost",
          "SLURM_STEP_TASKS_PER_NODE": "2", "MMD_GAN_TF_SLURM_PORT": str(port)}


def test_the_cluster_comes_from_tf_config_or_slurm_and_a_bad_one_is_one_line(monkeypatch):
  import os  # pylint: disable=g-import-not-at-top
  from mmd_gan_tf import distribute  # pylint: disable=g-import-not-at-top
  for name in ("TF_CONFIG", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST",
               "SLURM_STEP_TASKS_PER_NODE", "MMD_GAN_TF_SLURM_PORT"):
    monkeypatch.delenv(name, raising=False)
  assert distribute.cluster_resolver() is None  # neither: TensorFlow's default, one worker
  for name, value in _slurm_env(1, 23456).items():
    monkeypatch.setenv(name, value)
  resolver = distribute.cluster_resolver()
  assert resolver.cluster_spec().as_dict() == {"worker": ["localhost:23456", "localhost:23457"]}
  assert (resolver.task_type, resolver.task_id) == ("worker", 1)
  assert not distribute.is_chief(type("S", (), {"cluster_resolver": resolver})())
  monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "4")
  monkeypatch.setenv("SLURM_STEP_NODELIST", "node[07-08]")
  monkeypatch.setenv("SLURM_STEP_TASKS_PER_NODE", "2(x2)")
  monkeypatch.delenv("MMD_GAN_TF_SLURM_PORT")
  assert distribute.cluster_resolver().cluster_spec().as_dict() == {
      "worker": ["node07:8888", "node07:8889", "node08:8888", "node08:8889"]}
  monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "3")  # not what the nodes hold
  with pytest.raises(ValueError, match="under Slurm.*SLURM_STEP_NUM_TASKS"):
    distribute.cluster_resolver()
  # TF_CONFIG wins over Slurm, and a malformed one is named.
  monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}')
  assert distribute.cluster_resolver() is None
  for text, message in (("{cluster: 1}", "TF_CONFIG is not valid JSON"),
                        ('{"cluster": {"worker": "a:1"}, "task": {}}', "TF_CONFIG's cluster must map"),
                        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
                         "TF_CONFIG's task .* is not one of its cluster's tasks")):
    monkeypatch.setenv("TF_CONFIG", text)
    with pytest.raises(ValueError, match=message):
      distribute.make_strategy("multi_worker")
  assert os.environ["TF_CONFIG"] == text  # read, never changed


@pytest.mark.end_to_end
def test_multi_worker_run_under_slurm_writes_from_the_chief_only(tmp_path):
  """Two `main.py --strategy=multi_worker` processes on localhost as `srun --ntasks=2` starts them (Slurm's
  variables, no TF_CONFIG): one global batch, one set of outputs."""
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from helpers import ROOT  # pylint: disable=g-import-not-at-top
  port = _free_port_pair()
  workdir = tmp_path / "run"
  processes = []
  for index in range(2):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TMPDIR=str(tmp_path / f"tmp{index}"),
               **_slurm_env(index, port))
    env.pop("TF_CONFIG", None)
    os.makedirs(env["TMPDIR"])
    processes.append(subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--strategy=multi_worker", f"--workdir={workdir}", "--steps=4",
         "--arch=li", "--width=0.125", "--batch_size=8", "--checkpoint_every=2", "--log_every=2",
         "--sample_every=2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  results = []
  for process in processes:
    try:
      results.append(process.communicate(timeout=300))
    except subprocess.TimeoutExpired:
      for p in processes:
        p.kill()
      raise
  for process, (_, err) in zip(processes, results):
    assert process.returncode == 0, err[-3000:]
    assert "Strategy with 2 replica(s)" in err  # CollectiveAllReduceStrategy = MultiWorkerMirroredStrategy
  finals = [out.strip().splitlines()[-1] for out, _ in results]
  assert finals[0] == finals[1] and finals[0].startswith("final:")  # both workers saw the same global step
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-4")
  assert (workdir / "export" / "saved_model.pb").exists()
  assert sorted(os.listdir(workdir / "samples")) == ["step_0000002.png", "step_0000004.png"]
  # The non-chief wrote its (collective) checkpoint saves to its own scratch space, nothing else.
  assert os.listdir(tmp_path / "tmp1") == ["worker_1"]


@pytest.mark.end_to_end
def test_a_signal_to_one_worker_stops_every_worker_at_the_same_step(tmp_path):
  """SIGTERM to the non-chief of two `main.py --strategy=multi_worker` processes: both save and stop together."""
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  import signal  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  from helpers import ROOT  # pylint: disable=g-import-not-at-top
  workers = [f"localhost:{_free_port()}" for _ in range(2)]
  workdir = tmp_path / "run"
  processes, logs = [], []
  for index in range(2):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TMPDIR=str(tmp_path / f"tmp{index}"),
               TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
    os.makedirs(env["TMPDIR"])
    logs.append(tmp_path / f"worker{index}.txt")
    with open(logs[-1], "w") as log:
      processes.append(subprocess.Popen(
          [sys.executable, str(ROOT / "main.py"), "--strategy=multi_worker", f"--workdir={workdir}",
           "--steps=100000", "--arch=li", "--width=0.125", "--batch_size=8", "--checkpoint_every=100000",
           "--log_every=1", "--sample_every=100000", "--eval_every=0"],
          cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True))
  try:
    deadline = time.time() + 300
    while "step 2/" not in logs[1].read_text():
      assert time.time() < deadline and processes[1].poll() is None, logs[1].read_text()[-3000:]
      time.sleep(0.5)
    processes[1].send_signal(signal.SIGTERM)
    codes = [process.wait(timeout=300) for process in processes]
  finally:
    for process in processes:
      process.kill()
  texts = [log.read_text() for log in logs]
  assert codes == [75, 75], texts[0][-2000:] + texts[1][-2000:]
  steps = [int(re.search(r"interrupted: .* at step (\d+)", text).group(1)) for text in texts]
  assert steps[0] == steps[1]
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith(f"ckpt-{steps[0]}")


def test_cpu_devices_after_initialisation_is_a_clear_error(two_replica_strategy):
  distribute.split_cpu(2)  # what conftest configured: a no-op
  with pytest.raises(ValueError, match="--cpu_devices=3"):
    distribute.split_cpu(3)
  with pytest.raises(ValueError, match="--cpu_devices=0"):
    distribute.split_cpu(0)
