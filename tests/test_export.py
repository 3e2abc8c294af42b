"""nmt export: a SavedModel that translates strings exactly as Translator does, loaded without nmtcli."""

from __future__ import annotations

import json
import shutil
import unicodedata
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import REAL_CORPORA, require_corpus, translate_with_exports
from nmtcli.cli import app
from nmtcli.corpus import normalize
from nmtcli.errors import ModelError
from nmtcli.vectorizers import CharTokenizer, WordTokenizer

MODELS = [("gru-attention", "word"), ("lstm", "char")]

# Normal text in NFC (the graph does no NFC; see nmtcli.export): known and unknown words, punctuation
# glued and spaced, accents, mixed case, other scripts, control characters, blank lines, and lines
# long enough to be cut to max_source_tokens.
SENTENCES = [
    "red cat.",
    "",
    "big dog runs.",
    "   ",
    "small blue cat eats.",
    "Red CAT!",
    "¿Qué pasa, señor?",
    "the zebra café naïve déjà-vu",
    '(green) [dog]... "sleeps"',
    "l'été — J'ai faim !",
    "red\tcat\x00 runs\u200b.",
    "日本語のテスト。",
    "🙂 dog 🙂",
    "blue-green cat's dog",
    " ".join(["red cat runs"] * 40) + ".",
    "x" * 300,
]
# More lines than one batch of 64, so several batches of different widths are decoded.
MANY = SENTENCES + [f"{w} dog {v}." for w in ("red", "big", "small", "cat") for v in ("runs", "eats")] * 10


@pytest.fixture(scope="module")
def exports(tiny_run_factory, tmp_path_factory) -> dict[tuple[str, str], Path]:
    from nmtcli.export import export

    root = tmp_path_factory.mktemp("exports")
    return {
        (arch, level): export(tiny_run_factory(arch, level), root / f"{arch}-{level}").output
        for arch, level in MODELS
    }


@pytest.fixture(scope="module")
def served(exports) -> dict[str, list[str]]:
    """Translations of MANY by each export, in a fresh Python process that cannot import nmtcli."""
    return translate_with_exports(exports.values(), MANY)


@pytest.mark.parametrize(("arch", "level"), MODELS)
def test_the_export_translates_exactly_as_the_translator(arch, level, tiny_run_factory, exports, served):
    from nmtcli.translator import Translator

    assert served["nmtcli_imported"] is False
    translations = served[str(exports[arch, level])]
    expected = Translator.load(tiny_run_factory(arch, level)).translate(MANY)
    assert len(translations) == len(MANY)
    mismatches = [
        (line, got, want) for line, got, want in zip(MANY, translations, expected, strict=True) if got != want
    ]
    assert not mismatches, mismatches[:5]
    assert translations[1] == translations[3] == ""
    assert any(translations)


def test_the_export_folder_describes_itself(tiny_run_factory, exports) -> None:
    folder = exports["gru-attention", "word"]
    assert (folder / "saved_model.pb").is_file()
    assert (folder / "variables").is_dir()
    info = json.loads((folder / "nmt-export.json").read_text(encoding="utf-8"))
    assert info["arch"] == "gru-attention" and info["level"] == "word"
    assert info["signature"] == "serving_default"
    assert Path(info["run"]) == tiny_run_factory("gru-attention").resolve()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folders left


# --------------------------------------------------------------------------------------------------
# The in-graph tokenisation against the Python tokenizers


def _real_lines(corpus: Path, count: int = 1500) -> list[str]:
    """Both sides of ``count`` lines spread over a real corpus (the test skips where it is absent)."""
    rows = require_corpus(corpus).read_text(encoding="utf-8").splitlines()
    step = max(1, len(rows) // count)
    return [text for row in rows[::step][:count] for text in row.split("\t")[:2]]


TRICKY = [
    "¿Qué?",
    "Va !",
    "J'ai faim.",
    "well-known a/b",
    "don''t -x- 'quoted'",
    "  a \x00 b\t\tc \u00a0 d\u2028e  ",
    "l'été—là… «Oui», dit-il.",
    "日本語、テスト。",
    "🙂🙂 x",
    "...!!",
    "\u0915\u093f\u0924\u093e\u092c \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22",
    "ΟΔΟΣ İstanbul STRASSE ß",
    "\u0301a \u00b2 \u2460 \u24b6 x_y 3.5",
    "\ufeffword\uffedjoined",
    "",
]


@pytest.mark.parametrize("corpus", [None, *REAL_CORPORA], ids=lambda path: path.name if path else "tricky")
@pytest.mark.parametrize("lowercase", [False, True])
@pytest.mark.parametrize("level", ["word", "char"])
def test_graph_tokenisation_matches_python_on_real_text(level, lowercase, corpus) -> None:
    import tensorflow as tf

    from nmtcli.export import GraphText

    lines = TRICKY if corpus is None else _real_lines(corpus)
    assert all(unicodedata.is_normalized("NFC", line) for line in lines)  # the graph does no NFC
    tokenizer = WordTokenizer() if level == "word" else CharTokenizer()
    graph = GraphText(level, lowercase)
    got = graph.tokenize(graph.normalize(tf.constant(lines))).to_list()
    mismatches = []
    for line, tokens in zip(lines, got, strict=True):
        expected = tokenizer.tokenize(normalize(line, lowercase))
        if [t.decode("utf-8") for t in tokens] != expected:
            mismatches.append((line, tokens, expected))
    assert not mismatches, mismatches[:5]
    # And back: detokenising the Python tokens gives what the Python detokenizer gives.
    sample = [tokenizer.tokenize(normalize(line, lowercase)) for line in lines[:500]]
    joined = graph.detokenize(tf.ragged.constant(sample, dtype=tf.string, ragged_rank=1)).numpy()
    assert [t.decode("utf-8") for t in joined] == [tokenizer.detokenize(tokens) for tokens in sample]


# --------------------------------------------------------------------------------------------------
# The command and the output folder


def test_nmt_export_writes_a_savedmodel_and_says_where(tiny_run_factory, tmp_path) -> None:
    run = tiny_run_factory("lstm", "char")
    out = tmp_path / "serving" / "nmt" / "1"
    result = CliRunner().invoke(app, ["export", str(run), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout and "serving_default" in result.stdout
    assert (out / "saved_model.pb").is_file()
    # An earlier export is replaced; the latest run of the workspace is the default.
    workspace = run.parent.parent
    again = CliRunner().invoke(app, ["export", "-w", str(workspace), "-o", str(out), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["run"] == str(run)


def test_export_refuses_to_replace_other_folders(tiny_run, tmp_path) -> None:
    from nmtcli.export import export

    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"precious")
    with pytest.raises(ModelError, match="does not hold an nmt export"):
        export(tiny_run, other)
    assert (other / "cat.jpg").read_bytes() == b"precious"
    afile = tmp_path / "file"
    afile.write_text("x")
    result = CliRunner().invoke(app, ["export", "-m", str(tiny_run), "-o", str(afile)])
    assert result.exit_code == 1
    assert "is not a folder" in result.stderr
    assert {p.name for p in tmp_path.iterdir()} == {"photos", "file"}  # no temporary folders left


def test_export_says_what_is_wrong_with_the_options(tiny_run, tmp_path) -> None:
    both = CliRunner().invoke(app, ["export", str(tiny_run), "-m", str(tiny_run), "-o", str(tmp_path / "x")])
    assert both.exit_code == 1 and "not both" in both.stderr
    missing = CliRunner().invoke(app, ["export", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x")])
    assert missing.exit_code == 1 and "model folder not found" in missing.stderr


def test_export_writes_into_the_run_folder_unless_told(tiny_run, tmp_path) -> None:
    from nmtcli.run_folder import RunFolder

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    result = CliRunner().invoke(app, ["export", "-m", str(run), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["output"] == str(RunFolder(run).export_dir)
    assert (RunFolder(run).export_dir / "saved_model.pb").is_file()
