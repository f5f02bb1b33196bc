"""Conformer wav2vec 2.0 pre-training, cf_L (88.1M parameters, 88.13M here; Srivastava et al., 2022).

    python -m audiossl_jax.main --config=configs/pretrain_cfL.py --workdir=runs/cfL
    python -m audiossl_jax.main --config=configs/pretrain_cfL.py:demo --workdir=runs/demo

cf_S's recipe (configs/pretrain_cfS.py, the same variants) with the large model's width:
"768-D encoder embeddings and 12 attention heads" (Table 1). The 'demo' and 'smoke'
variants keep their small models, under cf_L's model name.
"""

import ml_collections

from audiossl_jax import config_lib


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = config_lib.load_config_file(f"pretrain_cfS.py:{variant}")
    c.model.name = c.model.name.replace("_S", "_L")
    if not variant:
        c.model.model_dim = 768
        c.model.num_heads = 12
    return c
