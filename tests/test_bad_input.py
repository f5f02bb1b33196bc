"""Bad input as a new user gives it, one row each: (input, expected message or count).

Every row builds its input in a fresh directory and returns what the user sees: the
error message, the logged warnings, or the preparation report and dataset info as
JSON. The expectation is a regex on that text. Add the next bad input as one row.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import re
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import pytest
import soundfile

from audiossl_jax import config_lib
from audiossl_jax.data import audio_io, manifest, pipeline, registry

SR = 16000
REPO = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[pathlib.Path], str]
    expect: str


def _tone(seconds: float = 0.25, amp: float = 0.5, rate: int = SR) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * 440.0 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def _write(root: pathlib.Path, name: str, kind: str) -> None:
    """One entry of a test folder: a kind of audio file or of something else."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "tone":
        soundfile.write(path, _tone(), SR, subtype="PCM_16")
    elif kind in ("aiff", "opus"):
        fmt, subtype = {"aiff": ("AIFF", "PCM_16"), "opus": ("OGG", "OPUS")}[kind]
        rate = 48000 if kind == "opus" else SR
        soundfile.write(path, _tone(rate=rate), rate, format=fmt, subtype=subtype)
    elif kind == "loud":
        soundfile.write(path, _tone(amp=1.5), SR, subtype="FLOAT")
    elif kind == "short":
        soundfile.write(path, _tone(seconds=0.01), SR, subtype="PCM_16")
    elif kind == "truncated":
        soundfile.write(path, _tone(), SR, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[:-2000])
    elif kind == "junk":
        path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    elif kind == "text":
        path.write_text("notes")
    elif kind == "dir":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dangling":
        path.symlink_to(root / "nowhere.wav")
    else:
        raise ValueError(kind)


def folder(
    entries: dict[str, str], metadata: str | bytes | None = None, split: str = "train", **cfg: object
) -> Callable[[pathlib.Path], str]:
    """A runner: writes the folder (+ metadata.csv), loads `split`; returns the error or report + info."""

    def run(tmp: pathlib.Path) -> str:
        root = tmp / "audio"
        root.mkdir()
        for name, kind in entries.items():
            _write(root, name, kind)
        if metadata is not None:
            target = root / "metadata.csv"
            target.write_bytes(metadata) if isinstance(metadata, bytes) else target.write_text(metadata)
        data = pipeline.default_data_config()
        data.update(dict(name="audio_folder", path=str(root), data_dir=str(tmp / "dd"), **cfg))
        try:
            info = registry.get_dataset_info(data, split)
        except registry.DatasetError as e:
            return f"DatasetError: {e}"
        (report,) = (tmp / "dd").glob(f"audio_folder/*/{manifest.REPORT_FILE}")
        return json.dumps({"report": json.loads(report.read_text()), "info": dataclasses.asdict(info)})

    return run


def config_error(**overrides: object) -> Callable[[pathlib.Path], str]:
    """A runner: validates the cf_S smoke config with the overrides; returns the error (or '')."""

    def run(tmp: pathlib.Path) -> str:
        config = config_lib.load_config_file("pretrain_cfS.py:smoke")
        config.update_from_flattened_dict(overrides)
        try:
            config_lib.validate(config)
        except ValueError as e:
            return f"ValueError: {e}"
        return ""

    return run


def command(*args: str, devices: int = 1) -> Callable[[pathlib.Path], str]:
    """A runner: `python -m audiossl_jax.main` on the smoke config; returns status and stderr."""

    def run(tmp: pathlib.Path) -> str:
        env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "audiossl_jax.main",
                "--config=configs/pretrain_cfS.py:smoke",
                *[a.replace("TMP", str(tmp)) for a in args],
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Traceback" not in out.stderr, out.stderr[-3000:]
        assert not (tmp / "run" / "checkpoints").exists()
        return f"status {out.returncode}: {out.stderr.strip().splitlines()[-1]}"

    return run


def slurm(*args: str) -> Callable[[pathlib.Path], str]:
    """A runner: launch/slurm.py --dry-run; returns status, the script and stderr."""

    def run(tmp: pathlib.Path) -> str:
        out = subprocess.run(
            [sys.executable, str(REPO / "launch" / "slurm.py"), "--dry-run", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return f"status {out.returncode}\n{out.stdout}{out.stderr}"

    return run


CASES = [
    # Configs (item 7).
    Case(
        "path-without-audio-folder",
        config_error(**{"data.path": "/my/audio"}),
        r"config\.data\.path='/my/audio': is read only by data\.name='audio_folder' .*--config\.data\.name=audio_folder",
    ),
    Case(
        "negative-grad-clip",
        config_error(**{"optimizer.grad_clip_norm": -1.0}),
        r"config\.optimizer\.grad_clip_norm=-1\.0: must be >= 0",
    ),
    Case(
        "sample-rate-disagrees",
        config_error(**{"data.sample_rate": 22050}),
        r"config\.data\.sample_rate=22050: differs from config\.frontend\.sample_rate=16000",
    ),
    Case(
        "negatives-far-above-distractors",
        config_error(),
        r"num_negatives=100 is far above the 3 distinct distractors a 1\.0 s crop offers \(12 latent steps, 4 masked\)",
    ),
    # The command line: one line, no traceback, nothing written (items 4, 7).
    Case("empty-workdir", command("--workdir="), r"status 1: error: --workdir is empty"),
    Case(
        "mesh-needs-more-devices",
        command("--workdir=TMP/run", "--config.mesh.data=4"),
        r"status 1: error: invalid config: config\.mesh \(data=4, model=1\) needs 4 devices but 1 are available",
    ),
    Case(
        "batch-not-divisible",
        command("--workdir=TMP/run", "--config.batch_size=3", devices=2),
        r"status 1: error: invalid config: config\.batch_size=3 is not divisible by the mesh's data axis \(2 devices\)",
    ),
    Case(
        "warmup-beyond-total",
        command("--workdir=TMP/run", "--config.schedule.warmup_steps=10"),
        r"status 1: error: invalid config: config\.schedule\.warmup_steps=10 must lie in \[0, config\.total_steps=4\]",
    ),
    # Audio folders: splits, duplicates, labels (item 8).
    Case(
        "unmatched-split-values",
        folder(
            {f"{i}.wav": "tone" for i in range(7)},
            "filename,label,split\n0.wav,a,train\n1.wav,a,Train\n2.wav,b,Train\n3.wav,b,trian\n4.wav,a,valid\n"
            "5.wav,a,test\n6.wav,b,\n",
        ),
        r"split values that no configured split selects \('': 1 rows, 'Train': 2 rows, 'trian': 1 rows, "
        r"'valid': 1 rows; data\.train_split='train', data\.eval_split='test'\)",
    ),
    Case(
        "file-in-two-splits",
        folder(
            {"a.wav": "tone", "b.wav": "tone"}, "filename,label,split\na.wav,x,train\nb.wav,x,train\na.wav,x,test\n"
        ),
        r"2 bad rows/files.*a\.wav: listed 2 times in the metadata \(splits \['test', 'train'\], labels \['x'\]\)",
    ),
    Case(
        "file-with-two-labels",
        folder(
            {"a.wav": "tone", "b.wav": "tone"}, "filename,label\na.wav,cat\nb.wav,cat\na.wav,dog\n", skip_bad_files=True
        ),
        r'"kept": 1, "skipped": 2, "skipped_by_problem": \{"listed times in the metadata": 2\}',
    ),
    Case(
        "empty-labels-counted",
        folder({"a.wav": "tone", "b.wav": "tone", "c.wav": "tone"}, "filename,label\na.wav,cat\nb.wav,\nc.wav,dog\n"),
        r'"unlabelled": 1.*"num_examples": 3.*"num_unlabelled": 1',
    ),
    # Files the scan takes, lists or refuses (item 9).
    Case(
        "every-libsndfile-format-is-read",
        folder({"a.wav": "tone", "b.aiff": "aiff", "c.opus": "opus"}),
        r'"kept": 3, "skipped": 0.*"resampled_from_hz": \{"48000": 1\}',
    ),
    Case(
        "other-files-counted",
        folder({"a.wav": "tone", "README.txt": "text", "sub/notes.md": "text"}),
        r'"ignored": 2, "ignored_files": \[".*/audio/README\.txt", ".*/audio/sub/notes\.md"\]',
    ),
    Case(
        "unsupported-format",
        folder({"a.wav": "tone", "b.m4a": "junk"}),
        r"b\.m4a: \.m4a files \(AAC/ALAC/WMA/\.\.\. audio\) cannot be decoded by libsndfile [\d.]+; convert them",
    ),
    Case(
        "fifo-named-like-audio",
        folder({"a.wav": "tone", "pipe.wav": "fifo"}),
        r"pipe\.wav: not a regular file \(FIFO, socket or device\)",
    ),
    Case(
        "directory-named-like-audio",
        folder({"a.wav": "tone", "d.flac": "dir"}),
        r"d\.flac: a directory named like an audio file",
    ),
    Case("dangling-link", folder({"a.wav": "tone", "gone.wav": "dangling"}), r"gone\.wav: dangling symbolic link"),
    Case(
        "special-files-skipped-and-counted",
        folder({"a.wav": "tone", "pipe.wav": "fifo", "gone.wav": "dangling", "b.m4a": "junk"}, skip_bad_files=True),
        r'"kept": 1, "skipped": 3',
    ),
    # Damaged or unusual audio (item 10).
    Case(
        "truncated-wav",
        folder({"a.wav": "tone", "cut.wav": "truncated"}),
        r"cut\.wav: truncated file \(header announces 8000 bytes of audio, the file holds 6000\)",
    ),
    Case(
        "float-outside-range-refused",
        folder({"a.wav": "tone", "loud.wav": "loud"}),
        r"loud\.wav: samples outside \[-1, 1\] \(peak 1\.5\); .*--config\.data\.clip_out_of_range=True",
    ),
    Case(
        "float-outside-range-clipped",
        folder({"a.wav": "tone", "loud.wav": "loud"}, clip_out_of_range=True),
        r'"kept": 2, "skipped": 0.*"clipped": 1',
    ),
    Case(
        "clip-below-minimum",
        folder({"a.wav": "tone", "blip.wav": "short"}),
        r"blip\.wav: clip of 0\.010 s is shorter than data\.min_seconds=0\.02",
    ),
    Case(
        "clips-below-minimum-counted",
        folder({"a.wav": "tone", "blip.wav": "short"}, skip_bad_files=True),
        r'"skipped_by_problem": \{"clip is shorter than data\.min_seconds=0\.02": 1\}',
    ),
    # metadata.csv encodings (item 13).
    Case(
        "metadata-with-bom",
        folder({"a.wav": "tone", "b.wav": "tone"}, "\ufefffilename,label\na.wav,x\nb.wav,y\n"),
        r'"class_names": \["x", "y"\], "num_examples": 2',
    ),
    Case(
        "metadata-not-utf8",
        folder({"a.wav": "tone"}, "filename,label\na.wav,caf\u00e9\n".encode("latin-1")),
        r"metadata\.csv is not UTF-8 text \(byte 0xe9 at offset 24\); save it as UTF-8",
    ),
    # The SLURM script (item 14).
    Case(
        "slurm-newline-refused",
        slurm("--workdir=/runs/a\n#SBATCH --exclusive"),
        r"status 2.*--workdir='/runs/a\\n#SBATCH --exclusive' holds a newline",
    ),
    Case(
        "slurm-values-quoted",
        slurm("--workdir=/runs/my run", "--name=a;b", "--", "--config.data.path=/x $(id)"),
        r"status 0\n.*#SBATCH --job-name='a;b'\n.*'--workdir=/runs/my run' .*'--config\.data\.path=/x \$\(id\)'",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        observed = case.run(tmp_path)
    observed += "".join(f"\nlog: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING)
    assert re.search(case.expect, observed, re.DOTALL), observed[-3000:]


def test_paper_recipe_is_not_warned_about_negatives(caplog: pytest.LogCaptureFixture) -> None:
    """10 s crops offer 37 distinct distractors; the paper's 100 (drawn with replacement) is within 4x."""
    with caplog.at_level(logging.WARNING):
        config_lib.validate(config_lib.load_config_file("pretrain_cfS.py"))
    assert not [r for r in caplog.records if "num_negatives" in r.getMessage()]


def test_unlabelled_examples_refused_for_a_supervised_task(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    from audiossl_jax.train import trainer

    folder(
        {"a.wav": "tone", "b.wav": "tone", "c.wav": "tone"},
        "filename,label,split\na.wav,cat,train\nb.wav,,train\nc.wav,dog,test\n",
    )(tmp_path)
    config = config_lib.load_config_file("pretrain_cfS.py:smoke")
    config.data.update(dict(name="audio_folder", path=str(tmp_path / "audio"), data_dir=str(tmp_path / "dd")))
    with caplog.at_level(logging.INFO):
        trainer._log_and_check_data(config)  # self-supervised: unlabelled rows are fine
    assert any(
        f"dataset audio_folder ({tmp_path / 'audio'}): 'train' 2 examples; 'test' 1 examples" in r.getMessage()
        for r in caplog.records
    )
    config.task.name = "supervised"
    with pytest.raises(
        registry.DatasetError,
        match=r"split 'train': 1 of 2 examples have no label \(empty 'label' "
        r"cell\), and task 'supervised' trains on labels",
    ):
        trainer._log_and_check_data(config)


def test_long_files_read_only_the_crop(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    """A 3-minute 44.1 kHz file: a 1 s crop equals the whole file's resampling, bitwise, at a
    fraction of the cost; training start-up warns about such files."""
    rng = np.random.default_rng(0)
    root = tmp_path / "audio"
    root.mkdir()
    long = (rng.uniform(-0.5, 0.5, 180 * 44100) * 32767).astype(np.int16)
    soundfile.write(root / "long.wav", long, 44100, subtype="PCM_16")
    soundfile.write(root / "short.wav", _tone(), SR, subtype="PCM_16")
    start = time.perf_counter()
    full = audio_io.read_audio(str(root / "long.wav"), SR)
    full_s = time.perf_counter() - start
    start = time.perf_counter()
    window = audio_io.read_window(str(root / "long.wav"), SR, 1_234_567, SR)
    window_s = time.perf_counter() - start
    np.testing.assert_array_equal(window, full[1_234_567 : 1_234_567 + SR])
    assert window_s * 10 < full_s, (window_s, full_s)

    data = pipeline.default_data_config()
    data.update(dict(name="audio_folder", path=str(root), data_dir=str(tmp_path / "dd"), crop_seconds=1.0))
    with caplog.at_level(logging.WARNING):
        batch = next(pipeline.make_train_iterator(data, batch_size=2, seed=0))
    assert sorted(batch["length"].tolist()) == [4000, SR]
    assert any("1 of 2 clips are over 20x the 1.00 s crop (longest 180.0 s)" in r.getMessage() for r in caplog.records)


def test_config_files_load_by_bare_name_or_path_and_a_missing_configs_dir_says_what_to_do(tmp_path, monkeypatch):
    """'pretrain_cfS.py:smoke' is the checkout's configs/ file, a path is read as given; without configs/
    (a wheel install) a bare name fails naming the fix."""
    by_name = config_lib.load_config_file("pretrain_cfS.py:smoke")
    by_path = config_lib.load_config_file(f"{config_lib.REPO_ROOT / 'configs' / 'pretrain_cfS.py'}:smoke")
    assert by_name.to_dict() == by_path.to_dict() and by_name.model.name == "conformer_wav2vec2_S_smoke"
    monkeypatch.setattr(config_lib, "CONFIGS_DIR", tmp_path / "configs")
    with pytest.raises(FileNotFoundError, match=r"installed without its checkout.*pip install -e"):
        config_lib.load_config_file("pretrain_cfS.py")
    with pytest.raises(FileNotFoundError, match=r"config file .*nowhere\.py"):
        config_lib.load_config_file(str(tmp_path / "nowhere.py"))
