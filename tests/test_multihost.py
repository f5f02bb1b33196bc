"""Two processes x 4 CPU devices (gloo collectives) train exactly like one process x 8.

Run as a script (``python tests/test_multihost.py PORT PROCESS_ID WORKDIR``), this file
is one of the two processes: it joins the job through
``sharding.initialize_distributed``, trains the smoke model 2 steps, then resumes from
the collectively saved checkpoint to step 4, and process 0 writes the parameters and
the loss on a fixed batch to WORKDIR/result.npz.
"""

import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np

from audiossl_jax.train import trainer

ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS = 4


def half_batches(config, start, process_id, process_count):
    """This process's rows of the step-deterministic global batches."""
    from test_trainer import synthetic_batches

    rows = config.batch_size // process_count
    for batch in synthetic_batches(config, start):
        yield {k: v[process_id * rows : (process_id + 1) * rows] for k, v in batch.items()}


def final_loss(config, state):
    """The loss of ``state`` on the batch of step 100, without dropout (same on every layout)."""
    from test_trainer import synthetic_batches

    from audiossl_jax.tasks import get_task
    from audiossl_jax.train import sharding

    mesh = sharding.make_mesh(config.mesh.data, config.mesh.model)
    rows = config.batch_size // jax.process_count()
    batch = next(synthetic_batches(config, 100))
    local = {k: v[jax.process_index() * rows : (jax.process_index() + 1) * rows] for k, v in batch.items()}
    task = get_task(config)
    loss = jax.jit(lambda p, b: task.loss({"params": p}, b, jax.random.key(0), train=False)[0])
    return float(loss(state.params, sharding.global_batch(local, mesh)))


def train_twice(config, workdir, process_id, process_count):
    config.total_steps = 2
    trainer.train(config, workdir, data_iterator_fn=lambda s: half_batches(config, s, process_id, process_count))
    config.total_steps = STEPS
    return trainer.train(config, workdir, data_iterator_fn=lambda s: half_batches(config, s, process_id, process_count))


def smoke():
    from test_trainer import smoke_config

    config = smoke_config(total_steps=STEPS)
    config.checkpoint.every_steps = 2
    config.schedule.warmup_steps = 2
    return config


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_process(tmp_path):
    port = free_port()
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, str(port), str(i), str(tmp_path / "multi")],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    # Only process 0 logs progress.
    assert "step 4/4" in outputs[0] and "step 4/4" not in outputs[1], outputs[1][-2000:]
    multi = np.load(tmp_path / "multi" / "result.npz")
    assert int(multi["num_devices"]) == 8 and int(multi["process_count"]) == 2

    config = smoke()
    state = trainer.train(config, tmp_path / "single", data_iterator_fn=lambda s: half_batches(config, s, 0, 1))
    single = [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state.params))]
    np.testing.assert_allclose(float(multi["loss"]), final_loss(config, state), rtol=1e-6, atol=1e-6)
    assert len(single) == len(multi.files) - 3
    for i, b in enumerate(single):
        # Cross-process (gloo) reductions sum in another order: equal to 1e-5.
        np.testing.assert_allclose(multi[f"p{i}"], b, rtol=1e-5, atol=1e-5)


if __name__ == "__main__":
    port_arg, pid_arg, workdir_arg = sys.argv[1:]
    import logging

    from audiossl_jax.train import sharding

    logging.getLogger().setLevel(logging.INFO)
    assert sharding.initialize_distributed("auto", f"localhost:{port_arg}", 2, int(pid_arg))
    cfg = smoke()
    final = train_twice(cfg, pathlib.Path(workdir_arg), jax.process_index(), jax.process_count())
    loss_value = final_loss(cfg, final)
    from jax.experimental import multihost_utils

    params = [multihost_utils.process_allgather(x, tiled=True) for x in jax.tree.leaves(final.params)]
    if jax.process_index() == 0:
        np.savez(
            pathlib.Path(workdir_arg) / "result.npz",
            loss=loss_value,
            num_devices=jax.device_count(),
            process_count=jax.process_count(),
            **{f"p{i}": p for i, p in enumerate(params)},
        )
    jax.distributed.shutdown()
