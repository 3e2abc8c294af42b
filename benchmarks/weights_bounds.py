"""How the weight-size bounds of ``model_files.weight_bytes_bounds`` compare with real model files.

Builds (does not train) models of both architectures at several sizes, saves each as ``.keras`` and
prints the size of its ``model.weights.h5`` beside the lower and upper bounds computed from the
configuration alone. Used for the figures of case 57 in docs/reliability.md::

    python benchmarks/weights_bounds.py
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

from nmtcli.config import ModelConfig
from nmtcli.model_files import weight_bytes_bounds
from nmtcli.models import build_model

SIZES = [  # source vocabulary, target vocabulary, embedding, units, tied embeddings
    (40, 45, 8, 16, False),
    (30000, 30000, 128, 256, False),
    (300, 200, 64, 512, True),
    (100, 20000, 256, 128, False),
]


def main() -> None:
    for arch in ("lstm", "gru-attention"):
        for vs, vt, e, u, tie in SIZES:
            config = ModelConfig(
                arch=arch,
                source_vocab_size=vs,
                target_vocab_size=vt,
                embedding_dim=e,
                units=u,
                tie_embeddings=tie,
            )
            model = build_model(config)
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "model.keras"
                model.save(path)
                size = zipfile.ZipFile(path).getinfo("model.weights.h5").file_size
            lower, upper = weight_bytes_bounds(config.to_dict())
            print(
                json.dumps(
                    {
                        "arch": arch,
                        "parameters": model.count_params(),
                        "weights_bytes": size,
                        "lower": lower,
                        "upper": upper,
                        "size_over_lower": round(size / lower, 2),
                        "upper_over_size": round(upper / size, 2),
                    }
                )
            )


if __name__ == "__main__":
    main()
