"""Input pipeline throughput next to what the train step consumes.

    python benchmarks/bench_pipeline.py [--batches 20] [--data_dir /tmp/bench_tfds]

Prints one table: clips/s and seconds of audio per second of the host pipeline
(`pipeline.make_train_iterator`) on the built-in `synthetic_audio` (in memory) and on
the real FLAC audio folders in ../shared/data (decoded by soundfile on every read), per
host and per host CPU core; then the clips/s and audio s/s that one train step consumes
at the demo config (batch 32 x 4 s) and at cf_S (batch 8 x 10 s), timed with the
trainer's own setup as benchmarks/bench_pretrain.py does.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from bench_pretrain import timed  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from audiossl_jax import config_lib  # noqa: E402
from audiossl_jax.data import pipeline, registry  # noqa: E402
from audiossl_jax.train import sharding, trainer  # noqa: E402

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def bench_pipeline(data_cfg, batch_size: int, batches: int) -> tuple[float, float]:
    """(clips/s, seconds of audio/s) of the train iterator after a 3-batch warm-up."""
    it = pipeline.make_train_iterator(data_cfg, batch_size=batch_size, seed=0)
    for _ in range(3):
        next(it)
    samples = 0
    t0 = time.perf_counter()
    for _ in range(batches):
        samples += int(next(it)["length"].sum())
    elapsed = time.perf_counter() - t0
    return batch_size * batches / elapsed, samples / data_cfg.sample_rate / elapsed


def bench_step(config, steps: int) -> float:
    """Median seconds per train step of `config` (synthetic input, compiled once)."""
    mesh = sharding.make_mesh(config.mesh.data, config.mesh.model)
    s = trainer.setup(config, mesh)
    batch = pipeline.example_batch(config, config.batch_size)
    batch["waveform"] = (0.1 * np.random.default_rng(0).normal(size=batch["waveform"].shape)).astype(np.float32)
    batch = sharding.global_batch(batch, mesh)
    holder = {"state": s.init_fn()}
    compiled = s.train_step.lower(holder["state"], batch).compile()

    def one() -> None:
        holder["state"], metrics = compiled(holder["state"], batch)
        jax.block_until_ready(metrics)

    one()
    return timed(one, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--data_dir", default="/tmp/bench_pipeline_tfds")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"machine: {platform.node()} | backend {jax.default_backend()} | {cores} CPU cores | jax {jax.__version__}")

    sources = [("synthetic_audio (in memory)", {"name": "synthetic_audio"})]
    for name in ("fsdd", "donateacry"):
        if (SHARED / name).is_dir():
            sources.append((f"audio folder {name} (FLAC)", {"name": "audio_folder", "path": str(SHARED / name)}))
    rows = []
    for what, overrides in sources:
        for crop in (4.0, 10.0):
            cfg = pipeline.default_data_config()
            cfg.data_dir = args.data_dir
            cfg.update(overrides)
            cfg.crop_seconds = crop
            registry.get_dataset_info(cfg, cfg.train_split)
            clips, audio = bench_pipeline(cfg, 32, args.batches)
            rows.append((f"pipeline: {what}, {crop:g}-s crops", clips, audio, cores))
    for name, variant in (("train step: demo (b=32, 4 s)", "demo"), ("train step: cf_S (b=8, 10 s)", "")):
        config = config_lib.load_config_file(f"pretrain_cfS.py:{variant}")
        if not variant:
            config.batch_size = 8
        sec = bench_step(config, args.steps)
        clips = config.batch_size / sec
        rows.append((name, clips, clips * config.data.crop_seconds, cores))

    header = f"| {'what':<52} | {'clips/s':>9} | {'audio s/s':>10} | {'clips/s per core':>16} |"
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for what, clips, audio, n in rows:
        print(f"| {what:<52} | {clips:>9.1f} | {audio:>10.1f} | {clips / n:>16.1f} |")


if __name__ == "__main__":
    main()
