"""Our conformer wav2vec 2.0 step against torchaudio's, side by side and alternating in one run.

    python benchmarks/bench_vs_torch.py --torch_python=/path/to/torchenv/bin/python \
        [--sizes S,L] [--crops [2.5,40]] [--steps 3] [--rounds 2] [--threads N] [--quick]

The reference is torchaudio's prototype ``conformer_wav2vec2_pretrain_base`` / ``_large``
(the same paper, cf_S and cf_L), which torchaudio 2.9 removed. It runs in a separate
Python, never a dependency of this package:

    python -m venv /work/torchenv28
    /work/torchenv28/bin/pip install -r benchmarks/requirements-torch.txt

Our side runs in this process; the reference runs in a worker subprocess (this same file
started with ``--worker`` by ``--torch_python``) that answers one JSON command per line.
Both sides get the same random waveform (numpy PCG64, seed 0), the same CPUs (this
process's affinity, which the worker inherits; torch gets ``set_num_threads``), the same
shapes, and take turns: each round times ``--steps`` of ours, then ``--steps`` of theirs.
A step on either side is the whole pre-training step from the waveform: logmel
(64 ms / 20 ms, 64 mels), stacking R=4, mask, conformer, contrastive loss with 100
distractors, backward, AdamW. Inference is the frontend plus the encoder (no dropout).
The last rows time one 2048^3 matrix product in float32 and in bfloat16 on each side
(XLA's dot against torch's ``@``), the GEMM rate every step's FFNs depend on.
Peak memory on a CPU is the process's peak resident memory during the timed calls above
its resident memory before the row was built (sampled every 2 ms); on a GPU it is the
device allocator's peak. A case whose compiled step (XLA's memory analysis) needs more
than the available memory is a row that says so, run on neither side; a worker the
kernel kills mid-row (out of memory) leaves that row without a reference time, says so
in its notes, and is restarted for the next rows; a case whose step needs over half the
available memory runs the sides one after the other, ours freed first ("sides apart").
Only ratios within one run are meaningful on a shared CPU; the script measures the load
of other processes and warns when the machine is not idle.

On a GPU (our side only) it runs in bfloat16 and adds MFU (XLA's FLOP count of the
compiled step over ``--peak_tflops``) and the largest batch (row batch x 2^k) whose compiled
step fits the device memory. ``--quick`` runs tiny shapes through every code path
(tests/test_bench_vs_torch.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

SAMPLE_RATE, WIN, HOP, N_FFT, N_MELS, STACK = 16000, 1024, 320, 1024, 64, 4
SEED = 0
CROPS = (2.5, 5.0, 10.0, 20.0, 40.0)
MATMUL_N = 2048  # the matmul rows: one [n, n] x [n, n] product, both sides, float32 and bfloat16
# Dense bfloat16 peak of an H100/H200 SXM (989 TFLOP/s, the vendor's figure without sparsity).
H100_BF16_TFLOPS = 989.0


@dataclasses.dataclass(frozen=True)
class Case:
    """One row: a model size, a batch of ``batch`` clips of ``seconds`` each."""

    size: str  # "S", "L", or "tiny" (--quick)
    batch: int
    seconds: float

    @property
    def samples(self) -> int:
        return int(round(self.seconds * SAMPLE_RATE))

    @property
    def frames(self) -> int:
        return (self.samples - WIN) // HOP + 1

    @property
    def name(self) -> str:
        return f"cf_{self.size} b={self.batch} {self.seconds:g} s"


# Model dimensions shared by both sides: (model_dim, heads, ffn_dim, blocks, first kernel, kernel).
DIMS = {
    "S": (256, 8, 1024, 12, 31, 15),
    "L": (768, 12, 1024, 12, 31, 15),
    "tiny": (32, 2, 64, 1, 15, 7),
}


def waveform(case: Case) -> np.ndarray:
    """The shared random input: [B, N] float32, seed ``SEED``."""
    rng = np.random.default_rng(SEED)
    return (0.1 * rng.standard_normal((case.batch, case.samples))).astype(np.float32)


# ----------------------------------------------------------------------------- machine


def _cpu_jiffies() -> tuple[int, int]:
    """(busy jiffies of the whole machine, jiffies of this process and its children)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)
    with open("/proc/self/stat") as f:
        own = f.read().rsplit(")", 1)[1].split()
    return busy, sum(int(v) for v in own[11:15])


def other_load(window_s: float = 1.0) -> dict[str, float]:
    """Cores kept busy by other processes over ``window_s`` (this process idle) and load average."""
    busy0, own0 = _cpu_jiffies()
    time.sleep(window_s)
    busy1, own1 = _cpu_jiffies()
    hz = os.sysconf("SC_CLK_TCK")
    others = max(0.0, ((busy1 - busy0) - (own1 - own0)) / hz / window_s)
    return {"other_cores_busy": others, "loadavg_1m": os.getloadavg()[0]}


def idle_warning(load: dict[str, float], threads: int) -> str | None:
    """A warning line when other processes use more than a tenth of a core."""
    if load["other_cores_busy"] > 0.1:
        return (
            f"WARNING: the machine is NOT idle: other processes kept {load['other_cores_busy']:.2f} of "
            f"{os.cpu_count()} cores busy (load average {load['loadavg_1m']:.2f}); this run uses "
            f"{threads} threads, so absolute times are inflated and ratios are noisy."
        )
    return None


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor() or "unknown CPU"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak resident memory above ``base`` while the block runs, sampled every 2 ms."""

    def __init__(self, base: int):
        self.base, self.peak = base, base
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            self._stop.wait(0.002)

    def __enter__(self) -> PeakRSS:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


def time_calls(fn: Callable[[], None], n: int) -> list[float]:
    """Wall times of ``n`` calls of ``fn`` (which must block)."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


# ----------------------------------------------------------------------------- our side


def step_flops(compiled: Any) -> float:
    """FLOPs of one call of a compiled JAX function, from XLA's cost analysis."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan")))


def compiled_bytes(compiled: Any) -> int:
    """Arguments + outputs + temporaries of a compiled function (XLA's memory analysis)."""
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def ours_config(case: Case, dtype: str) -> Any:
    from audiossl_jax import config_lib

    config = config_lib.load_config_file(
        "pretrain_cfS.py:smoke" if case.size == "tiny" else f"pretrain_cf{case.size}.py"
    )
    d, h, f, n, k1, k = DIMS[case.size]
    m = config.model
    m.model_dim, m.num_heads, m.ffn_dim, m.num_blocks, m.first_kernel_size, m.kernel_size = d, h, f, n, k1, k
    m.latent_dim = 256 if case.size != "tiny" else 32
    config.batch_size = case.batch
    config.data.crop_seconds = case.seconds
    config.compute_dtype = dtype
    return config


class Ours:
    """Our pre-training step and embedding on one device for one ``Case``."""

    def __init__(self, case: Case, dtype: str):
        import jax

        from audiossl_jax.train import sharding, trainer

        self.case, self.jax = case, jax
        self.base_rss = _rss_bytes()
        config = ours_config(case, dtype)
        config.mesh.data = 1
        self.mesh = sharding.make_mesh(config.mesh.data, config.mesh.model, devices=jax.devices()[:1])
        s = trainer.setup(config, self.mesh)
        wave = waveform(case)
        self.batch = sharding.global_batch(
            {
                "waveform": wave,
                "length": np.full(case.batch, case.samples, np.int32),
                "label": np.zeros(case.batch, np.int32),
            },
            self.mesh,
        )
        self.state = s.init_fn()
        t0 = time.perf_counter()
        self.step = s.train_step.lower(self.state, self.batch).compile()
        self.compile_s = time.perf_counter() - t0
        self.flops = step_flops(self.step)
        self.step_bytes = compiled_bytes(self.step)
        limit = device_memory_limit()
        if self.step_bytes > limit:
            raise DoesNotFit(
                f"our compiled step needs {self.step_bytes / 2**30:.1f} GiB (XLA's memory analysis), "
                f"{limit / 2**30:.1f} GiB available"
            )
        task, model_state = s.task, self.state.model_state
        self.embed = jax.jit(lambda p, b: task.embed({"params": p, **model_state}, b)[0])
        self.train_one()
        self.infer_one()

    def train_one(self) -> None:
        self.state, metrics = self.step(self.state, self.batch)
        self.jax.block_until_ready(metrics)

    def infer_one(self) -> None:
        self.embed(self.state.params, self.batch).block_until_ready()


def largest_batch(case: Case, dtype: str, limit_bytes: int, max_batch: int, case_bytes: int) -> int:
    """Largest batch case.batch * 2^k (<= max_batch) whose compiled step fits ``limit_bytes``.

    ``case_bytes`` is the memory of the step already compiled at ``case.batch``; larger
    batches are compiled (not run) until one no longer fits.
    """
    import jax

    from audiossl_jax.train import sharding, trainer

    if case_bytes > limit_bytes:
        return 0
    best, b = case.batch, 2 * case.batch
    while b <= max_batch:
        config = ours_config(dataclasses.replace(case, batch=b), dtype)
        config.mesh.data = 1
        mesh = sharding.make_mesh(config.mesh.data, config.mesh.model, devices=jax.devices()[:1])
        s = trainer.setup(config, mesh)
        batch_spec = {
            "waveform": jax.ShapeDtypeStruct((b, case.samples), np.float32),
            "length": jax.ShapeDtypeStruct((b,), np.int32),
            "label": jax.ShapeDtypeStruct((b,), np.int32),
        }
        if compiled_bytes(s.train_step.lower(s.abstract_state, batch_spec).compile()) > limit_bytes:
            break
        best, b = b, 2 * b
    return best


def device_memory_limit() -> int:
    """Bytes the device may allocate (GPU allocator limit; on a CPU, available RAM)."""
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("cannot tell the device's memory: no bytes_limit and no /proc/meminfo")


def ours_frontend(case: Case) -> Callable[[], None]:
    import jax

    from audiossl_jax import frontend

    cfg = frontend.FrontendConfig.from_config(frontend.preset_config_dict("conformer"))
    wave = jax.numpy.asarray(waveform(case))
    f = jax.jit(lambda w: frontend.logmel(w, cfg))
    f(wave).block_until_ready()
    return lambda: f(wave).block_until_ready()


def ours_matmul(n: int, dtype: str) -> Callable[[], None]:
    """One jitted [n, n] x [n, n] product in ``dtype`` on the default device (the GEMM the step's FFNs run)."""
    import jax

    a, b = (jax.numpy.asarray(x, dtype=dtype) for x in matmul_operands(n))
    f = jax.jit(lambda x, y: x @ y)
    f(a, b).block_until_ready()
    return lambda: f(a, b).block_until_ready()


def matmul_operands(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The two seeded float32 [n, n] operands both sides multiply (cast to the row's dtype)."""
    rng = np.random.default_rng(SEED)
    return rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)


def librosa_frontend(case: Case) -> Callable[[], None]:
    import librosa

    wave = waveform(case)

    def run() -> None:
        mel = librosa.feature.melspectrogram(
            y=wave,
            sr=SAMPLE_RATE,
            n_fft=N_FFT,
            hop_length=HOP,
            win_length=WIN,
            window="hann",
            center=False,
            power=2.0,
            n_mels=N_MELS,
            fmin=0.0,
            fmax=SAMPLE_RATE / 2,
            htk=True,
            norm=None,
        )
        np.log(mel + 1e-6)

    run()
    return run


# ----------------------------------------------------------------------------- reference worker


class WorkerDied(RuntimeError):
    """The torch worker exited mid-command (a crop too large for the machine's memory is
    killed by the kernel with SIGKILL, no Python error)."""


class DoesNotFit(RuntimeError):
    """Our compiled step needs more memory than the device has available."""


class Reference:
    """The torchaudio worker subprocess; ``call`` sends one command and returns its reply."""

    def __init__(self, python: str, threads: int):
        self.python, self.threads = python, threads
        self.start()

    def start(self) -> None:
        """(Re)starts the worker: a fresh process after one died."""
        self.proc = subprocess.Popen(
            [self.python, os.path.abspath(__file__), "--worker", f"--threads={self.threads}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.info = self.call({"op": "hello"})

    def call(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("RESULT "):
                reply = json.loads(line[len("RESULT ") :])
                if "error" in reply:
                    raise RuntimeError(f"torch worker failed on {cmd}: {reply['error']}")
                return reply
        code = self.proc.wait()
        why = " = SIGKILL, likely out of memory" if code == -9 else ""
        raise WorkerDied(f"torch worker exited (code {code}{why}) on op {cmd.get('op')!r}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.call({"op": "quit"})
            self.proc.wait(timeout=30)


def worker_main(threads: int) -> None:
    """Runs under the torch Python: answers JSON commands on stdin with ``RESULT {...}`` lines."""
    import warnings

    import torch
    import torchaudio

    # torchaudio 2.8 marks the prototype models deprecated (removed in 2.9): known, not news per call.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torchaudio\..*|__main__")
    from torchaudio.prototype.models import (
        conformer_wav2vec2_pretrain_base,
        conformer_wav2vec2_pretrain_large,
        conformer_wav2vec2_pretrain_model,
    )

    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    mel = torchaudio.functional.melscale_fbanks(
        N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE, norm=None, mel_scale="htk"
    )
    window = torch.hann_window(WIN, periodic=True)
    state: dict[str, Any] = {}

    def logmel(w: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(w, N_FFT, HOP, WIN, window, center=False, return_complex=True)
        return torch.log(spec.abs().pow(2).transpose(1, 2) @ mel + 1e-6)  # [B, T, F]

    def setup(case: Case) -> None:
        if case.size in ("S", "L"):
            factory = {"S": conformer_wav2vec2_pretrain_base, "L": conformer_wav2vec2_pretrain_large}[case.size]
            model = factory(
                extractor_input_dim=N_MELS,
                extractor_output_dim=256,
                encoder_projection_dropout=0.1,
                mask_prob=0.3,
                mask_length=3,
                num_negatives=100,
                cross_sample_negatives=0,
            )
        else:
            d, h, f, n, k1, k = DIMS[case.size]
            model = conformer_wav2vec2_pretrain_model(
                extractor_input_dim=N_MELS,
                extractor_output_dim=d,
                extractor_stride=STACK,
                encoder_embed_dim=d,
                encoder_projection_dropout=0.1,
                encoder_num_layers=n,
                encoder_num_heads=h,
                encoder_ff_interm_features=f,
                encoder_depthwise_conv_kernel_size=[k1] + [k] * (n - 1),
                encoder_dropout=0.1,
                encoder_convolution_first=True,
                encoder_use_group_norm=True,
                mask_prob=0.3,
                mask_selection="static",
                mask_other=0.0,
                mask_length=3,
                no_mask_overlap=False,
                mask_min_space=0,
                mask_channel_prob=0.0,
                mask_channel_selection="static",
                mask_channel_other=0.0,
                mask_channel_length=10,
                no_mask_channel_overlap=False,
                mask_channel_min_space=1,
                num_negatives=100,
                cross_sample_negatives=0,
            )
        state.update(
            case=case,
            model=model,
            wave=torch.from_numpy(waveform(case)),
            lengths=torch.full((case.batch,), case.frames, dtype=torch.int64),
            opt=torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01),
            base=_rss_bytes(),
        )
        train_one()
        infer_one()

    def train_one() -> None:
        model, opt = state["model"], state["opt"]
        model.train()
        x, _, mask_idxs, targets, negs, _ = model(logmel(state["wave"]), state["lengths"])
        # eq. 1: cosine similarity / 0.1 of the context at each masked step with its
        # target (index 0) and 100 distractors; targets [B, M, D], negs [K, B, M, D].
        c = x[mask_idxs].view(targets.shape)
        candidates = torch.cat([targets[None], negs], dim=0)
        logits = torch.cosine_similarity(c[None], candidates, dim=-1) / 0.1  # [1 + K, B, M]
        logits = logits.flatten(1).transpose(0, 1)
        loss = torch.nn.functional.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer_one() -> None:
        model = state["model"]
        model.eval()
        with torch.inference_mode():
            model.wav2vec2(logmel(state["wave"]), state["lengths"])

    def frontend_one() -> None:
        with torch.inference_mode():
            logmel(state["fe_wave"])

    def matmul_one() -> None:
        with torch.inference_mode():
            state["mm_a"] @ state["mm_b"]

    while True:
        line = sys.stdin.readline()
        if not line:
            return
        cmd = json.loads(line)
        try:
            op = cmd["op"]
            if op == "quit":
                print("RESULT {}", flush=True)
                return
            if op == "hello":
                reply = {
                    "torch": torch.__version__,
                    "torchaudio": torchaudio.__version__,
                    "threads": torch.get_num_threads(),
                }
            elif op == "setup":
                state.clear()
                t0 = time.perf_counter()
                setup(Case(cmd["size"], cmd["batch"], cmd["seconds"]))
                reply = {"setup_s": time.perf_counter() - t0}
            elif op == "frontend_setup":
                state["fe_wave"] = torch.from_numpy(waveform(Case("tiny", cmd["batch"], cmd["seconds"])))
                frontend_one()
                reply = {}
            elif op == "matmul_setup":
                dtype = getattr(torch, cmd["dtype"])
                state["mm_a"], state["mm_b"] = (torch.from_numpy(x).to(dtype) for x in matmul_operands(cmd["n"]))
                matmul_one()
                reply = {}
            else:
                fn = {"train": train_one, "infer": infer_one, "frontend": frontend_one, "matmul": matmul_one}[op]
                with PeakRSS(state.get("base", _rss_bytes())) as peak:
                    times = time_calls(fn, cmd["n"])
                reply = {"times": times, "peak_mib": peak.mib}
        except Exception as e:  # reported to the parent, which raises with the command
            reply = {"error": f"{type(e).__name__}: {e}"}
        print("RESULT " + json.dumps(reply), flush=True)


# ----------------------------------------------------------------------------- the run


@dataclasses.dataclass
class Row:
    what: str
    ours_s: float | None
    theirs_s: float | None
    examples: int  # examples (or seconds of audio) per call
    ours_mib: float | None = None
    theirs_mib: float | None = None
    extra: str = ""

    def cells(self) -> list[str]:
        def fmt(v: float | None, spec: str) -> str:
            return "-" if v is None or not math.isfinite(v) else format(v, spec)

        ours_rate = self.examples / self.ours_s if self.ours_s else None
        theirs_rate = self.examples / self.theirs_s if self.theirs_s else None
        ratio = ours_rate / theirs_rate if theirs_rate and ours_rate else None
        return [
            self.what,
            fmt(self.ours_s, ".3f"),
            fmt(self.theirs_s, ".3f"),
            fmt(ours_rate, ",.2f"),
            fmt(theirs_rate, ",.2f"),
            fmt(ratio, ".2f"),
            fmt(self.ours_mib, ",.0f"),
            fmt(self.theirs_mib, ",.0f"),
            self.extra,
        ]


COLUMNS = [
    "what",
    "ours s/call",
    "ref s/call",
    "ours /s",
    "ref /s",
    "ours/ref",
    "ours peak MiB",
    "ref peak MiB",
    "notes",
]


def format_table(rows: list[Row]) -> str:
    """One markdown table; '/s' is examples/s (train, inference) or seconds of audio/s (frontend)."""
    cells = [COLUMNS] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |"
        for r in cells[1:]
    ]
    return "\n".join(lines)


def announce(rows: list[Row]) -> None:
    """Each finished row on stderr at once, every column of it, so a run killed later (a crop
    that does not fit the machine's memory is killed without a Python error) keeps what it measured."""
    for r in rows:
        cells = "; ".join(f"{col} {cell}" for col, cell in zip(COLUMNS[1:], r.cells()[1:]) if cell not in ("", "-"))
        print(f"measured {r.what}: {cells}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class Timing:
    """Median s/call of each side and its peak MiB; ``note`` says why the reference has none."""

    ours_s: float
    theirs_s: float | None
    ours_mib: float
    theirs_mib: float | None
    note: str = ""


def reference_died(ref: Reference, err: WorkerDied) -> str:
    """Restarts a worker that died and says so, for the row's notes."""
    print(f"WARNING: {err}; restarting it for the next rows", file=sys.stderr, flush=True)
    ref.start()
    return f"reference not measured: {err}"


def alternate(
    ours_fn: Callable[[], None], ref: Reference | None, op: str, steps: int, rounds: int, base: int
) -> Timing:
    """Our calls and the reference's, timed in turns. A reference that dies gets no time for
    the row (its partial times are dropped) and is restarted for the next."""
    ours_t: list[float] = []
    theirs_t: list[float] = []
    ours_peak, theirs_peak, note = 0.0, None, ""
    for _ in range(rounds):
        with PeakRSS(base) as peak:
            ours_t += time_calls(ours_fn, steps)
        ours_peak = max(ours_peak, peak.mib)
        if ref is not None:
            try:
                reply = ref.call({"op": op, "n": steps})
            except WorkerDied as err:
                note, ref, theirs_t, theirs_peak = reference_died(ref, err), None, [], None
                continue
            theirs_t += reply["times"]
            theirs_peak = max(theirs_peak or 0.0, reply["peak_mib"])
    theirs = float(np.median(theirs_t)) if theirs_t else None
    return Timing(float(np.median(ours_t)), theirs, ours_peak, theirs_peak, note)


def run_case(case: Case, ref: Reference | None, args: argparse.Namespace, dtype: str, with_infer: bool) -> list[Row]:
    """The train row (and the inference row) of one case.

    A case whose compiled step does not fit the device's available memory is a row that
    says so, run on neither side. One whose step needs over half of it runs the two sides
    one after the other: ours first, then, with our state freed, the reference (both at
    once would not fit; the notes say "sides apart"). Otherwise the sides take turns.
    """
    import jax

    what = f"train {case.name} ({dtype})"
    try:
        ours = Ours(case, dtype)
    except DoesNotFit as err:
        return [Row(what, None, None, case.batch, extra=f"not run: {err}")]
    compile_s, flops, step_bytes = ours.compile_s, ours.flops, ours.step_bytes
    apart = ref is not None and 2 * step_bytes > device_memory_limit()
    ops = {"train": ours.train_one, **({"infer": ours.infer_one} if with_infer else {})}
    timings: dict[str, Timing] = {}
    if apart:
        timings = {op: alternate(fn, None, op, args.steps, args.rounds, ours.base_rss) for op, fn in ops.items()}
        del ours, ops
        gc.collect()
    notes = ["sides apart: our step needs over half the available memory"] if apart else []
    if ref is not None:
        try:
            ref.call({"op": "setup", "size": case.size, "batch": case.batch, "seconds": case.seconds})
        except WorkerDied as err:
            notes.append(reference_died(ref, err))
            ref = None
    for op in ("train", "infer") if with_infer else ("train",):
        if apart:
            theirs = alternate(lambda: None, ref, op, args.steps, args.rounds, _rss_bytes())
            timings[op] = dataclasses.replace(
                timings[op], theirs_s=theirs.theirs_s, theirs_mib=theirs.theirs_mib, note=theirs.note
            )
        else:
            timings[op] = alternate(ops[op], ref, op, args.steps, args.rounds, ours.base_rss)
        if timings[op].note:  # the worker died and was restarted without this case's model
            ref = None
    on_gpu = jax.default_backend() == "gpu"
    train = timings["train"]
    extra = f"compile {compile_s:.1f} s; XLA {flops / 1e9:.4g} GFLOP/step"
    if args.peak_tflops:
        extra += f"; MFU {flops / train.ours_s / (args.peak_tflops * 1e12):.1%} of {args.peak_tflops:g} TFLOP/s"
    extra += "".join(f"; {n}" for n in (*notes, train.note) if n)
    om = ours_peak_mib_or(train.ours_mib, on_gpu)
    rows = [Row(what, train.ours_s, train.theirs_s, case.batch, om, train.theirs_mib, extra)]
    if with_infer:
        infer = timings["infer"]
        mib = ours_peak_mib_or(infer.ours_mib, on_gpu)
        rows.append(
            Row(
                f"inference {case.name} ({dtype})",
                infer.ours_s,
                infer.theirs_s,
                case.batch,
                mib,
                infer.theirs_mib,
                infer.note,
            )
        )
    if args.max_batch:
        limit = device_memory_limit()
        best = largest_batch(case, dtype, limit, args.max_batch, step_bytes)
        rows[0].extra += f"; largest batch <= {args.max_batch} fitting {limit / 2**30:.1f} GiB: {best}"
    return rows


def ours_peak_mib_or(sampled: float, on_gpu: bool) -> float:
    import jax

    if not on_gpu:
        return sampled
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use", 0) / 2**20


def run(args: argparse.Namespace) -> tuple[str, list[Row]]:
    """Builds every row, alternating with the reference; returns (header lines, rows)."""
    import jax

    on_gpu = jax.default_backend() == "gpu"
    dtype = "bfloat16" if on_gpu else "float32"
    load = other_load()
    if on_gpu and args.torch_python:
        print("note: the torch worker runs on the CPU, so on a GPU the reference is not run (our side only)")
    ref = Reference(args.torch_python, args.threads) if args.torch_python and not on_gpu else None
    header = [
        f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | {cpu_model()} | {os.cpu_count()} cores, "
        f"{args.threads} threads each side | backend {jax.default_backend()} ({jax.devices()[0].device_kind})",
        f"jax {jax.__version__} | numpy {np.__version__}"
        + (
            f" | reference: torch {ref.info['torch']}, torchaudio {ref.info['torchaudio']}, "
            f"{ref.info['threads']} threads"
            if ref
            else " | reference: not run (no --torch_python)"
        ),
        f"before the run: other processes busy {load['other_cores_busy']:.2f} cores, "
        f"load average {load['loadavg_1m']:.2f}",
    ]
    warn = idle_warning(load, args.threads)
    if warn:
        header.append(warn)
    print("\n".join(header), flush=True)
    rows: list[Row] = []
    try:
        if args.quick:
            cases = [Case("tiny", 2, 1.0)]
        else:
            cases = [Case(s, 8, 10.0) for s in args.sizes.split(",")]
        for case in cases:
            rows += run_case(case, ref, args, dtype, with_infer=True)
            announce(rows[-2:])
        if args.crops:
            for size in args.sizes.split(",") if not args.quick else ["tiny"]:
                for sec in args.crops if not args.quick else (1.0, 2.0):
                    case = Case(size, 8 if not args.quick else 2, sec)
                    if case in cases:
                        continue
                    rows += run_case(case, ref, args, dtype, with_infer=False)
                    announce(rows[-1:])
        fe_case = Case("tiny", 8 if not args.quick else 2, 10.0 if not args.quick else 1.0)
        if ref is not None:
            ref.call({"op": "frontend_setup", "batch": fe_case.batch, "seconds": fe_case.seconds})
        fe = alternate(ours_frontend(fe_case), ref, "frontend", args.steps * 3, args.rounds, _rss_bytes())
        audio = int(fe_case.batch * fe_case.seconds)
        rows.append(
            Row(f"logmel {fe_case.batch} x {fe_case.seconds:g} s vs torch.stft+mel", fe.ours_s, fe.theirs_s, audio)
        )
        lib = float(np.median(time_calls(librosa_frontend(fe_case), args.steps * 3)))
        rows.append(Row(f"logmel {fe_case.batch} x {fe_case.seconds:g} s vs librosa", fe.ours_s, lib, audio))
        n = MATMUL_N if not args.quick else 256
        for mm_dtype in ("float32", "bfloat16"):
            if ref is not None:
                ref.call({"op": "matmul_setup", "n": n, "dtype": mm_dtype})
            mm = alternate(ours_matmul(n, mm_dtype), ref, "matmul", args.steps * 3, args.rounds, _rss_bytes())
            rows.append(Row(f"matmul {n}^3 {mm_dtype}, /s = GFLOP/s", mm.ours_s, mm.theirs_s, 2 * n**3 / 1e9))
        announce(rows[-4:])
    finally:
        if ref is not None:
            ref.close()
    after = other_load()
    tail = (
        f"after the run: other processes busy {after['other_cores_busy']:.2f} cores, "
        f"load average {after['loadavg_1m']:.2f}"
    )
    warn = idle_warning(after, args.threads)
    return "\n".join([tail] + ([warn] if warn else [])), rows


def crop_seconds(spec: str) -> tuple[float, ...]:
    """``--crops`` '2.5,40' -> (2.5, 40.0); a value that is not a positive number is refused."""
    try:
        out = tuple(float(v) for v in spec.split(","))
    except ValueError:
        out = ()
    if not out or min(out) <= 0:
        raise SystemExit(f"--crops={spec!r}: give positive seconds, comma-separated (e.g. 2.5,40)")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--torch_python", default="", help="Python with torch/torchaudio 2.8 (see the docstring)")
    p.add_argument("--sizes", default="S,L")
    p.add_argument("--steps", type=int, default=3, help="timed calls per side per round")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument(
        "--crops",
        nargs="?",
        const=",".join(f"{c:g}" for c in CROPS),
        default="",
        help=f"add train rows for crops of these seconds (comma-separated; alone: {CROPS})",
    )
    p.add_argument("--quick", action="store_true", help="tiny shapes, every code path (for the test)")
    p.add_argument(
        "--peak_tflops",
        type=float,
        default=None,
        help=f"dense bf16 peak for MFU; default {H100_BF16_TFLOPS:g} (H100/H200) on a GPU, none on a CPU",
    )
    p.add_argument(
        "--max_batch",
        type=int,
        default=None,
        help="largest batch (row batch x 2^k) up to this that fits; default 1024 on a GPU",
    )
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker_main(args.threads)
        return
    args.crops = crop_seconds(args.crops) if args.crops else ()  # a bad value stops the run before any row
    if args.threads < 1 or args.threads > (os.cpu_count() or 1):
        raise SystemExit(f"--threads={args.threads}: use 1..{os.cpu_count()} (this machine's cores)")
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.threads]))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # no oneDNN banner from TensorFlow
    import jax

    on_gpu = jax.default_backend() == "gpu"
    if args.peak_tflops is None:
        args.peak_tflops = H100_BF16_TFLOPS if on_gpu else 0.0
    if args.max_batch is None:
        args.max_batch = 1024 if on_gpu else (4 if args.quick else 0)
    tail, rows = run(args)
    print(format_table(rows))
    print(tail)


if __name__ == "__main__":
    main()
