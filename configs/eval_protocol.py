"""The downstream protocol of Tagliasacchi et al. (2020): encoders x tasks x arms x training sets x replicas.

    python -m audiossl_jax.evaluation.protocol --config=configs/eval_protocol.py:demo --workdir=runs/protocol

Recipes (``config.recipe``): 'slices' (the paper's: random 975-ms slices with the clip
label in training and evaluation, Adam 1e-4 for 100k steps, slice and clip accuracy)
or 'clips' (a clip-level L-BFGS linear probe and the conformer paper's fine-tuning;
faster, what HEAR does).

Variants:
  paper   the paper's 8 tasks on its CNN encoders (pre-trained here from the paper
          recipes unless given as run directories: --config.encoders.temporal_gap=runs/tg);
          needs the datasets prepared (docs/datasets.md); 'slices' recipe, both arms.
  demo    ('clips' recipe) built-in synthetic audio, FSDD digits and speakers, donate-a-cry
          (../shared/data), the narrower ``demo`` CNN encoders trained on the fly on
          the built-in data (300 steps each); frozen arm (the fine-tuned one, when
          added, trains 300 steps of 32 clips per run).
  smoke   seconds: tiny synthetic data, three smoke CNN encoders, 2 replicas; frozen
          arm (fine-tuning settings sized for seconds when the arm is added).
  smoke_conformer  seconds: conformer encoders, both arms.

An encoder is a run directory, ``train:<config.py[:variant]>`` (trained into
``<workdir>/encoders/<name>``, resuming) or ``untrained:<config.py[:variant]>`` (its
random initialisation saved there). An encoder is normalised by ``untrained_for[name]``
when given, else by ``untrained``: an untrained encoder of its slicing and architecture.
``scale='raw'`` reports raw scores and needs no untrained reference. A task is a set of
data config keys (``pipeline.default_data_config``); its classes come from the dataset;
add one on the command line with ``--task=name:key=value,...``.
"""

from __future__ import annotations

import ml_collections

from audiossl_jax.config_finetune import SHARED_DATA, SHARED_TASKS
from audiossl_jax.config_lib import repo_path

# Tagliasacchi et al. (2020): the pretext tasks and baselines, each a configs/pretrain_<name>.py.
PRETEXT = ("audio2vec_cbow", "audio2vec_sg", "temporal_gap", "triplet", "arrow_of_time", "autoencoder")

# The paper's downstream tasks: name -> (registry dataset, crop seconds). Crops are our
# choice (the encoders embed 975-ms slices and average them): about a clip's length.
PAPER_TASKS = {
    "speech_commands": ("speech_commands", 1.0),
    "librispeech_speaker": ("librispeech100_speaker", 4.0),
    "language_id": ("spoken_language_id", 10.0),
    "musan": ("musan", 4.0),
    "nsynth_pitch": ("nsynth_pitch", 4.0),
    "nsynth_instrument": ("nsynth_instrument", 4.0),
    "bird_audio_detection": ("bird_audio_detection", 10.0),
    "tut_scenes_2018": ("tut_urban_2018", 10.0),
}


def _task(name: str, crop_seconds: float, **keys: object) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        dict(name=name, crop_seconds=crop_seconds, train_split="train", eval_split="test", **keys)
    )


def _shared_task(variant: str) -> ml_collections.ConfigDict:
    folder, column, _, crop = SHARED_TASKS[variant]  # the class count comes from the dataset
    return _task("audio_folder", crop, path=f"{SHARED_DATA}/{folder}", label_key=column)


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.replicas = 4
    c.n_train = 1000
    c.train_sets = ("full", "subset")
    c.arms = ("frozen",)
    # The zero (frozen) and one (fine-tuned from scratch) of the normalisation, eq. (1), of every
    # encoder but those mapped in untrained_for to an untrained encoder of their own slicing.
    c.untrained = "untrained"
    c.untrained_for = ml_collections.ConfigDict()
    # 'normalised' (eq. 1) or 'raw': the raw scores averaged, no untrained reference run.
    c.scale = "normalised"
    c.embed_batch_size = 16
    c.recipe = "clips"
    # The paper's downstream recipe (recipe 'slices'): "we extract equal-length slices uniformly
    # at random ... T = 975 ms ... learning rate to 1e-4 and we stop after 100 k steps".
    # Batch 256 (the paper's only batch size) and 10 slices per test clip are our choice.
    c.slices = ml_collections.ConfigDict(
        dict(seconds=0.975, learning_rate=1e-4, total_steps=100_000, batch_size=256, per_clip=10, log_every_steps=1000)
    )
    c.linear = ml_collections.ConfigDict(dict(val_fraction=0.2))
    c.bootstrap = ml_collections.ConfigDict(dict(resamples=50, seed=0, interval=0.95))
    # The fine-tuned arm (CNN and conformer encoders): steps, batch and rate are our choice.
    c.finetune = ml_collections.ConfigDict(
        dict(
            total_steps=20_000,
            batch_size=64,
            peak_learning_rate=1e-4,
            log_every_steps=100,
            class_balanced=False,
            consistency=False,
            output_dropout=0.1,
        )
    )

    if variant == "paper":
        suffix = ""
        c.tasks = {name: _task(dataset, crop) for name, (dataset, crop) in PAPER_TASKS.items()}
        c.recipe, c.arms = "slices", ("frozen", "finetuned")
    elif variant in ("demo", "smoke"):
        suffix = f":{variant}"
        if variant == "demo":
            c.tasks = {"synthetic": _task("synthetic_audio", 4.0), **{k: _shared_task(k) for k in SHARED_TASKS}}
            c.finetune.update(dict(total_steps=300, batch_size=32, peak_learning_rate=1e-3, log_every_steps=100))
        else:
            c.replicas, c.n_train, c.embed_batch_size = 2, 24, 8
            c.finetune.update(dict(total_steps=2, batch_size=8, peak_learning_rate=1e-3, log_every_steps=1))
            c.tasks = {"synthetic_tiny": _task("synthetic_audio/tiny", 2.0)}
    elif variant == "smoke_conformer":
        c.replicas, c.n_train, c.embed_batch_size = 1, 24, 8
        c.arms = ("frozen", "finetuned")
        c.tasks = {"synthetic_tiny": _task("synthetic_audio/tiny", 1.0)}
        c.encoders = {
            "untrained": f"untrained:{repo_path('configs/pretrain_cfS.py')}:smoke",
            "wav2vec2": f"train:{repo_path('configs/pretrain_cfS.py')}:smoke",
            "supervised": f"train:{repo_path('configs/eval_finetune_cfS.py')}:smoke",
        }
        c.finetune.update(dict(total_steps=2, batch_size=8, peak_learning_rate=1e-3, log_every_steps=1))
        return c
    else:
        raise ValueError(f"unknown variant {variant!r}: use 'paper', 'demo', 'smoke' or 'smoke_conformer'.")
    pretext = PRETEXT if variant != "smoke" else ("temporal_gap",)
    c.encoders = {
        "untrained": f"untrained:{repo_path('configs/pretrain_supervised.py')}{suffix}",
        "supervised": f"train:{repo_path('configs/pretrain_supervised.py')}{suffix}",
        **{name: f"train:{repo_path(f'configs/pretrain_{name}.py')}{suffix}" for name in pretext},
    }
    if variant == "demo":  # the demo's Audio2Vec embeds 48-frame slices (pretrain_audio2vec_cbow.py), the others 96
        c.encoders.untrained_audio2vec = f"untrained:{repo_path('configs/pretrain_audio2vec_cbow.py')}:demo"
        c.untrained_for = {name: "untrained_audio2vec" for name in ("audio2vec_cbow", "audio2vec_sg")}
    return c
