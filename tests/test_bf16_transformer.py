"""The Transformer trains under mixed_bfloat16 on CPUs with native bfloat16 (models.bf16.training_policy);
its saved model is float32 and translates as usual."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from conftest import TINY_TRAINING
from nmtcli.config import ModelConfig, TrainConfig
from nmtcli.models import bf16, build_model
from nmtcli.vectorizers import START_ID

TINY_TRANSFORMER = {"units": 16, "layers": 2, "heads": 2, "ff_dim": 32, "dropout": 0.0}


@pytest.mark.parametrize(
    ("arch", "mixed", "output", "native", "expected"),
    [
        ("transformer", False, True, True, "mixed_bfloat16"),
        ("transformer", False, False, True, "float32"),  # --no-bf16-output turns it off
        ("transformer", False, True, False, "float32"),  # emulated bfloat16 would be slower
        ("transformer", True, True, True, "mixed_float16"),  # --mixed-precision wins
        ("gru-attention", False, True, True, "float32"),  # recurrent models: the output layer only
    ],
)
def test_training_policy(arch, mixed, output, native, expected, monkeypatch) -> None:
    monkeypatch.setattr(bf16, "cpu_native", lambda: native)
    assert bf16.training_policy(arch, mixed, output) == expected


def test_a_transformer_under_mixed_bfloat16_gives_float32_logits() -> None:
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(0)
        model = build_model(
            ModelConfig(arch="transformer", source_vocab_size=17, target_vocab_size=17, **TINY_TRANSFORMER)
        )
        model.build()
        source = np.array([[4, 5, 6, 0], [7, 8, 9, 10]], np.int32)
        out = model((source, np.array([[START_ID, 5]] * 2, np.int32)), training=True)
        assert out.dtype == "float32" and np.isfinite(keras.ops.convert_to_numpy(out)).all()
        assert model.initial_state(model.encode(source))[0].dtype == "bfloat16"
    finally:
        keras.config.set_dtype_policy(previous)


def test_training_in_bfloat16_saves_a_float32_model_that_translates(tiny_data, tmp_path, monkeypatch) -> None:
    from nmtcli.training import train
    from nmtcli.translator import Translator
    from nmtcli.workspace import Workspace

    monkeypatch.setattr(bf16, "cpu_native", lambda: True)  # emulated where the CPU lacks it: slower, same
    result = train(
        ModelConfig(arch="transformer", level="subword", **TINY_TRANSFORMER),
        TrainConfig(**{**TINY_TRAINING, "epochs": 2, "learning_rate": 0.003, "bleu_sample": 0}),
        data_dir=tiny_data,
        workspace=Workspace(tmp_path / "ws"),
    )
    assert all(np.isfinite(row["val_cross_entropy"]) for row in result.history)
    translator = Translator.load(result.run_dir)
    assert translator.model.compute_dtype == "float32"
    assert {w.dtype for w in translator.model.weights} == {"float32"}
    assert len(translator.translate(["red cat runs.", ""])) == 2
