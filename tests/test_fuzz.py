"""Property-based tests (hypothesis): arbitrary bytes and text never make an exception escape.

- the corpus reader and ``prepare`` on arbitrary file contents either succeed, with counts that add
  up, or raise ``CorpusError``/``DataError``;
- the vectorizers turn arbitrary Unicode into ids and back to the same text;
- ``Translator.translate`` and ``nmt translate`` give one single-line output per input line.

The numbers of examples are the constants below (docs/reliability.md quotes them).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nmtcli.config import PrepareConfig
from nmtcli.corpus import normalize, prepare, read_pairs
from nmtcli.errors import CorpusError, DataError
from nmtcli.vectorizers import Vectorizer, Vocabulary, make_tokenizer
from test_cli import nmt

CORPUS_EXAMPLES = 100
VECTORIZER_EXAMPLES = 100
TRANSLATE_EXAMPLES = 50
CLI_TRANSLATE_EXAMPLES = 30
JSON_EXAMPLES = 200


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
    )


# Pieces that arbitrary text rarely hits by chance: emoji (with joiners and flags), right-to-left
# scripts and overrides, zero-width and format characters, controls, every Unicode line break,
# combining marks, and words the tiny model knows.
PIECES = [
    *["red", "cat", "dog", "big", ".", "?", " ", "  ", "\t"],
    *["😀", "👩\u200d👩\u200d👧", "🇪🇸", "مرحبا", "שלום", "\u202e", "\u200f", "\u200b", "\ufeff", "\uffed"],
    *["\x00", "\x07", "\x1b[31m", "\r", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"],
    *["e\u0301", "日本語", "ß", "İ", "ﬁ"],
]
texts = st.one_of(st.text(), st.lists(st.sampled_from(PIECES), max_size=12).map("".join))


# --------------------------------------------------------------------------------------------------
# The corpus reader and prepare on arbitrary bytes


words = st.lists(
    st.sampled_from(["red", "cat", "dog.", "¿Qué?", "J'ai", "日本", "😀"]), min_size=1, max_size=4
)
fields = st.one_of(words.map(" ".join), texts)


@st.composite
def corpus_like(draw) -> bytes:
    """Mostly well-formed TSV or CSV lines, with odd text in the fields and a few malformed lines."""
    separator = draw(st.sampled_from(["\t", ","]))
    row = st.one_of(
        st.lists(fields, min_size=2, max_size=3),  # source, target and maybe an attribution
        st.lists(fields, max_size=5),
    )
    lines = [separator.join(line) for line in draw(st.lists(row, min_size=1, max_size=12))]
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return bom + newline.join(lines).encode("utf-8")


file_contents = st.one_of(
    st.binary(max_size=400),
    corpus_like(),
    corpus_like(),
    st.tuples(corpus_like(), st.binary(max_size=8), corpus_like()).map(b"".join),  # a few stray bytes
)
prepare_configs = st.builds(
    PrepareConfig,
    format=st.sampled_from(["auto", "tsv", "csv"]),
    on_bad_line=st.sampled_from(["error", "warn", "skip", "skip"]),
    encoding=st.sampled_from(["utf-8", "latin-1"]),
    lowercase=st.booleans(),
    valid_size=st.sampled_from([0, 0, 1, 0.2]),
    test_size=st.sampled_from([0, 0, 1]),
)


@fuzz(CORPUS_EXAMPLES)
@given(file_contents, st.sampled_from([".tsv", ".csv", ".txt"]), prepare_configs)
def test_prepare_on_arbitrary_bytes_succeeds_or_raises_a_corpus_error(content, suffix, config) -> None:
    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(folder) / f"corpus{suffix}"
        corpus.write_bytes(content)
        try:
            pairs = list(read_pairs(corpus, config, warn=lambda message: None))
        except (CorpusError, DataError):
            pairs = None
        for pair in pairs or []:
            assert isinstance(pair.source, str) and isinstance(pair.target, str)
            assert pair.where.startswith(f"{corpus}:")
        try:
            manifest = prepare(corpus, Path(folder) / "data", config, warn=lambda message: None)
        except (CorpusError, DataError) as exc:
            event(f"prepare refused it: {type(exc).__name__}")
            return
        event("prepared")
        assert pairs is not None, "prepare read a corpus that read_pairs refused"
        counts, dropped = manifest["counts"], manifest["dropped"]
        assert counts["read"] == len(pairs)
        assert counts["read"] == counts["kept"] + sum(n for k, n in dropped.items() if k != "malformed")
        assert counts["kept"] == counts["train"] + counts["valid"] + counts["test"] > 0
        for split in ("train", "valid", "test"):
            rows = (Path(folder) / "data" / f"{split}.tsv").read_text(encoding="utf-8").split("\n")
            assert rows.pop() == "" and len(rows) == counts[split]
            assert all(len(row.split("\t")) == 2 for row in rows)


# --------------------------------------------------------------------------------------------------
# Vectorizers


@fuzz(VECTORIZER_EXAMPLES)
@given(texts)
def test_vectorizers_round_trip_arbitrary_unicode(text: str) -> None:
    clean = normalize(text)
    for level in ("word", "char"):
        tokens = make_tokenizer(level).tokenize(clean)
        vectorizer = Vectorizer(level, Vocabulary.build([tokens]))
        ids = vectorizer.encode(clean, start=True, end=True)
        assert vectorizer.decode(ids) == clean
        with tempfile.TemporaryDirectory() as folder:
            vectorizer.save(Path(folder) / "vocab.txt")
            reloaded = Vectorizer.load(level, Path(folder) / "vocab.txt")
        assert reloaded.vocabulary.tokens == vectorizer.vocabulary.tokens
    # Characters need no normalising to come back: whatever the text, it returns unchanged.
    chars = Vectorizer("char", Vocabulary.build([list(text)]))
    assert chars.decode(chars.encode(text)) == text


@fuzz(VECTORIZER_EXAMPLES)
@given(texts)
def test_unknown_text_encodes_and_decodes_without_error(text: str) -> None:
    for level in ("word", "char"):
        vectorizer = Vectorizer(level, Vocabulary.build([["red", "cat", "r", "e", "d"]]))
        decoded = vectorizer.decode(vectorizer.encode(normalize(text)))
        assert isinstance(decoded, str) and "\n" not in decoded


# --------------------------------------------------------------------------------------------------
# Translation


@pytest.fixture(scope="module")
def translator(tiny_run):
    from nmtcli.translator import Translator

    return Translator.load(tiny_run)


def is_one_line(text: str) -> bool:
    return isinstance(text, str) and len(text.splitlines()) <= 1 and "\n" not in text and "\r" not in text


@fuzz(TRANSLATE_EXAMPLES)
@given(st.lists(texts, max_size=8), st.integers(1, 4))
def test_translate_gives_one_line_per_input(translator, lines: list[str], batch_size: int) -> None:
    outputs = translator.translate(lines, batch_size=batch_size)
    assert len(outputs) == len(lines)
    assert all(is_one_line(output) for output in outputs)
    for line, output in zip(lines, outputs, strict=True):
        if not normalize(line):
            assert output == ""


@pytest.fixture(scope="module")
def loaded_once(tiny_run, translator):
    """``nmt translate`` with ``Translator.load`` answered from memory, so that each example costs a
    translation rather than a model load."""
    from nmtcli.translator import Translator

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Translator, "load", classmethod(lambda cls, run_dir, bf16_output=False: translator))
        yield tiny_run


@fuzz(CLI_TRANSLATE_EXAMPLES)
@given(st.lists(texts.map(lambda text: text.replace("\n", " ")), max_size=8))
def test_nmt_translate_writes_one_line_per_input_line(loaded_once, translator, lines: list[str]) -> None:
    stdin = "".join(line + "\n" for line in lines).encode("utf-8")
    result = nmt("translate", "--model", loaded_once, input=stdin)
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Traceback" not in result.output
    assert result.stdout.count("\n") == len(lines)
    assert result.stdout.split("\n")[:-1] == translator.translate(lines)


# --------------------------------------------------------------------------------------------------
# The shared reader on arbitrary JSON-like bytes


json_pieces = st.sampled_from(
    ['{"a":', "[", "]", "{", "}", ",", '"x"', "1", "1e999", "NaN", "true", "null", ":"]
)
json_like = st.one_of(
    st.binary(max_size=200),
    st.lists(json_pieces, max_size=60).map("".join).map(str.encode),
    st.integers(1, 5000).map(lambda n: ("[" * n + "]" * n).encode()),
)


@fuzz(JSON_EXAMPLES)
@given(raw=json_like)
def test_read_json_file_returns_or_raises_one_error(raw: bytes) -> None:
    from nmtcli.files import DictOf, UnsafeFileError, read_json_file
    from nmtcli.model_files import RUN_CONFIG_SCHEMA

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.json"
        path.write_bytes(raw)
        for schema in (RUN_CONFIG_SCHEMA, DictOf([str]), [dict]):
            try:
                read_json_file(path, schema)
                event("read")
            except UnsafeFileError as exc:
                assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
                event("refused")
