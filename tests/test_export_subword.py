"""nmt export of subword models: the SentencePiece model inside the SavedModel (tensorflow-text), loaded
in a fresh process with ``import tensorflow_text`` and no nmtcli, translates as ``nmt translate``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import TINY_TRAINING, translate_with_exports
from nmtcli.cli import app
from nmtcli.config import ModelConfig, TrainConfig
from nmtcli.errors import ModelError

# Known and unknown words, characters the tiny corpus never saw (byte fallback), a literal U+2581
# (SentencePiece's space mark, escaped by nmtcli), control characters, blank lines, a line long
# enough to be cut to max_source_tokens.
SENTENCES = [
    "red cat.",
    "",
    "big dog runs.",
    "   ",
    "Red CAT!",
    "¿Qué pasa, señor?",
    "the zebra café naïve déjà-vu",
    "red\tcat\x00 runs\u200b.",
    "日本語のテスト。",
    "🙂 dog 🙂",
    "a\u2581b red\u2581cat",
    " ".join(["red cat runs"] * 40) + ".",
]
# More lines than one batch of 64, so several batches of different widths are decoded.
MANY = SENTENCES + [f"{w} dog {v}." for w in ("red", "big", "small", "cat") for v in ("runs", "eats")] * 9
TINY_TRANSFORMER = {"units": 16, "layers": 2, "heads": 2, "ff_dim": 32, "dropout": 0.0}


@pytest.fixture(scope="module")
def subword_runs(tiny_run_factory, tiny_data, tmp_path_factory) -> dict[str, Path]:
    from nmtcli.training import train
    from nmtcli.workspace import Workspace

    transformer = train(
        ModelConfig(arch="transformer", level="subword", **TINY_TRANSFORMER),
        TrainConfig(**{**TINY_TRAINING, "learning_rate": 0.003, "bleu_sample": 0}),
        data_dir=tiny_data,
        workspace=Workspace(tmp_path_factory.mktemp("ws-export-transformer")),
    ).run_dir
    return {"transformer": transformer, "gru-attention": tiny_run_factory("gru-attention", "subword")}


@pytest.fixture(scope="module")
def exports(subword_runs, tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("tensorflow_text")
    root = tmp_path_factory.mktemp("subword-exports")
    exported = {}
    for arch, run in subword_runs.items():
        result = CliRunner().invoke(app, ["export", str(run), "-o", str(root / arch), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["imports"] == ["tensorflow_text"]
        exported[arch] = root / arch
    return exported


@pytest.fixture(scope="module")
def served(exports) -> dict[str, list[str]]:
    """Translations of MANY by each export, in a fresh Python process that cannot import nmtcli."""
    return translate_with_exports(exports.values(), MANY, imports=["tensorflow_text"])


@pytest.mark.parametrize("arch", ["transformer", "gru-attention"])
def test_the_subword_export_translates_as_nmt_translate(arch, subword_runs, exports, served, tmp_path):
    assert served["nmtcli_imported"] is False
    translations = served[str(exports[arch])]
    source = tmp_path / "in.txt"
    # One line per input line: the CLI reads lines, so the test's lines hold no line breaks.
    assert not any("\n" in line or "\r" in line for line in MANY)
    source.write_text("".join(line + "\n" for line in MANY), encoding="utf-8")
    result = CliRunner().invoke(app, ["translate", "-m", str(subword_runs[arch]), "-i", str(source)])
    assert result.exit_code == 0, result.output
    expected = result.stdout.split("\n")[: len(MANY)]
    mismatches = [
        (line, got, want) for line, got, want in zip(MANY, translations, expected, strict=True) if got != want
    ]
    assert not mismatches, mismatches[:5]
    assert translations[1] == translations[3] == ""
    assert any(translations)
    info = json.loads((exports[arch] / "nmt-export.json").read_text(encoding="utf-8"))
    assert info["level"] == "subword" and info["imports"] == ["tensorflow_text"]


def test_the_graph_pieces_are_those_of_the_python_vectorizer(subword_runs) -> None:
    pytest.importorskip("tensorflow_text")
    import tensorflow as tf

    from nmtcli.export import SubwordCodec
    from nmtcli.text import normalize
    from nmtcli.translator import Translator

    translator = Translator.load(subword_runs["transformer"])
    source, target = translator.source, translator.target
    codec = SubwordCodec(False, source.model, target.model)
    lines = [line for line in SENTENCES if line.strip()]
    got = codec.encode(tf.constant(lines)).to_list()
    assert got == [source.encode(normalize(line)) for line in lines]
    ids = [target.encode(normalize(line)) for line in lines]
    decoded = codec.decode(tf.ragged.constant(ids, dtype=tf.int64)).numpy().tolist()
    assert [t.decode("utf-8") for t in decoded] == [target.decode(row) for row in ids]
    assert "a\u2581b red\u2581cat" in [t.decode("utf-8") for t in decoded]


def test_without_tensorflow_text_the_export_says_what_to_install(subword_runs, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow_text", None)  # import fails with ImportError
    from nmtcli.export import export

    with pytest.raises(ModelError, match=r"pip install 'nmtcli\[export\]'"):
        export(subword_runs["gru-attention"], tmp_path / "out")
    run = str(subword_runs["gru-attention"])
    result = CliRunner().invoke(app, ["export", run, "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "pip install 'nmtcli[export]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing written
