"""Conformer wav2vec 2.0 pre-training, cf_S (18.4M parameters, 18.43M here; Srivastava et al., 2022).

    python -m audiossl_jax.main --config=configs/pretrain_cfS.py --workdir=runs/cfS
    python -m audiossl_jax.main --config=configs/pretrain_cfS.py:demo --workdir=runs/demo

Variants: '' (the paper's recipe, 300k steps, on AudioSet: the paper's own ~67k-hour
corpus is in-house), 'demo' (a small model on the built-in synthetic data; a few
minutes on a laptop CPU), 'smoke' (seconds). configs/pretrain_cfL.py is this recipe at
cf_L's width; configs/eval_finetune_cfS.py fine-tunes this model.
"""

import ml_collections

from audiossl_jax import config_lib, frontend
from audiossl_jax.data import pipeline


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = config_lib.trainer_config()  # AdamW (0.9, 0.98, eps 1e-6), weight decay 0.01, gradient clip 10
    c.total_steps = 300_000
    c.batch_size = 128
    c.log_every_steps = 100
    c.schedule.warmup_steps = 10_000  # linear warm-up to the peak, then linear decay to 0
    c.schedule.peak_learning_rate = 3e-4
    c.checkpoint.every_steps = 5000

    # The paper's log-mels: 64 ms windows, 20 ms hop, 64 mels at 16 kHz (frontend.PRESETS["conformer"]).
    c.frontend = frontend.preset_config_dict("conformer")

    # AudioSet stands in for the paper's in-house ~67k-hour corpus (docs/fidelity.md); random 10 s crops.
    c.data = pipeline.default_data_config()
    c.data.name = "audioset"
    c.data.crop_seconds = 10.0

    # Table 1 and Section 3: time stacking R=4, 12 conformer blocks of d=256 and 8 heads (cf_S),
    # FFN 1024, convolution kernels 31 (first block) then 15, dropout 0.1.
    c.model = ml_collections.ConfigDict()
    c.model.name = "conformer_wav2vec2_S"
    c.model.stack = 4
    c.model.model_dim = 256
    c.model.num_heads = 8
    c.model.ffn_dim = 1024
    c.model.num_blocks = 12
    c.model.first_kernel_size = 31
    c.model.kernel_size = 15
    # Width L of the latents Z and of the context output C (Section 2.2; 256 reproduces the
    # paper's four parameter counts, see models/wav2vec2.py).
    c.model.latent_dim = 256
    c.model.dropout = 0.1
    c.model.feature_dropout = 0.1
    c.model.remat = False

    # wav2vec 2.0's contrastive task on 30% of the latent steps masked in spans of 3, 100 distractors.
    c.task = ml_collections.ConfigDict()
    c.task.name = "wav2vec2"
    c.task.mask_prob = 0.3
    c.task.mask_span = 3
    c.task.num_negatives = 100
    c.task.temperature = 0.1

    if variant in ("demo", "smoke"):
        c.data.name = "synthetic_audio" if variant == "demo" else "synthetic_audio/tiny"
        c.model.name += f"_{variant}"
        c.model.first_kernel_size, c.model.kernel_size = 15, 7
        c.checkpoint.asynchronous = False
        c.schedule.peak_learning_rate = 1e-3
    if variant == "demo":
        # About 1M parameters, 600 steps: ~2.5 minutes on a 2-core laptop CPU.
        c.total_steps = 600
        c.batch_size = 32
        c.data.crop_seconds = 4.0
        c.model.model_dim, c.model.num_heads, c.model.ffn_dim, c.model.latent_dim = 128, 4, 256, 128
        c.model.num_blocks = 4
        c.schedule.warmup_steps = 60
        c.log_every_steps = 25
        c.checkpoint.every_steps = 200
    elif variant == "smoke":
        c.total_steps = 4
        c.batch_size = 8
        c.data.crop_seconds = 1.0
        c.model.num_blocks = 1
        c.model.model_dim, c.model.num_heads, c.model.ffn_dim, c.model.latent_dim = 32, 2, 64, 32
        c.schedule.warmup_steps = 1
        c.log_every_steps = 1
        c.checkpoint.every_steps = 2
    elif variant:
        raise ValueError(f"unknown config variant {variant!r}: use one of '', 'demo', 'smoke'.")
    return c
