"""The subword level: SentencePiece models trained by nmtcli, exact round trips, byte fallback, files."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from conftest import REAL_CORPORA, require_corpus, write_tsv
from nmtcli.config import PrepareConfig
from nmtcli.corpus import prepare
from nmtcli.errors import DataError
from nmtcli.subwords import SubwordVectorizer, sample_sentences, train_subwords
from nmtcli.text import normalize
from nmtcli.vectorizers import END_ID, PAD_ID, SPECIALS, START_ID, UNK_ID, Vectorizer

SENTENCES = [
    "Go.",
    "¿Dónde está la estación?",
    "Where is the station?",
    "Je n'ai pas faim !",
    "Él dijo: «¡Qué bien!»",
    "I'd like 2 coffees, please.",
] * 20


def test_ids_0_to_3_are_our_specials_and_the_pieces_list_matches():
    vectorizer = SubwordVectorizer(train_subwords(SENTENCES, size=400))
    assert tuple(vectorizer.vocabulary.tokens[:4]) == SPECIALS
    assert (PAD_ID, UNK_ID, START_ID, END_ID) == (0, 1, 2, 3)
    ids = vectorizer.encode("Go.", start=True, end=True)
    assert ids[0] == START_ID and ids[-1] == END_ID
    assert vectorizer.decode([*ids, 7, 8]) == "Go."  # stops at the end id
    assert vectorizer.tokenizer.tokenize("Go.") == [vectorizer.vocabulary.tokens[i] for i in ids[1:-1]]
    assert vectorizer.vocabulary.encode(vectorizer.tokenizer.tokenize("Go.")) == ids[1:-1]


def test_characters_never_seen_in_training_fall_back_to_bytes_not_unk():
    vectorizer = SubwordVectorizer(train_subwords(SENTENCES, size=400))
    text = "日本語 Ωμέγα 🙂 ǅ"
    ids = vectorizer.encode(text)
    assert UNK_ID not in ids
    assert vectorizer.decode(ids) == text


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_round_trip_is_exact_on_awkward_text(model_type):
    vectorizer = SubwordVectorizer(train_subwords(SENTENCES, size=400, model_type=model_type))
    awkward = ["a  b", "tab\there", "x", "«  »", "ﬁ ligature", "e\u0301 combining", "...", "▁x y", "a▁▁b"]
    for text in awkward:
        assert vectorizer.decode(vectorizer.encode(text)) == text


def test_same_seed_same_model_and_a_size_is_an_upper_bound():
    first = train_subwords(SENTENCES, size=400, seed=3)
    assert train_subwords(SENTENCES, size=400, seed=3) == first
    # Sampling 1,000 of 3,000 distinct sentences: another model than from all, the same every time.
    rng = random.Random(0)
    letters = "abcdeilmnorstu"
    many = [
        " ".join("".join(rng.choices(letters, k=rng.randint(2, 8))) for _ in range(6)) for _ in range(3000)
    ]
    sampled = train_subwords(many, size=400, sample=1000, seed=3)
    assert train_subwords(many, size=400, sample=1000, seed=3) == sampled
    assert train_subwords(many, size=400, sample=3000, seed=3) != sampled
    # Far more pieces than the text holds: fewer pieces, no error.
    assert len(SubwordVectorizer(train_subwords(SENTENCES, size=8000))) < 8000


SAMPLED_MODEL_DIGEST = """
import hashlib, random
from nmtcli.subwords import train_subwords
rng = random.Random(0)
words = lambda: ("".join(rng.choices("abcdeilmnorstu", k=rng.randint(2, 8))) for _ in range(6))
many = [" ".join(words()) for _ in range(3000)]
print(hashlib.sha256(train_subwords(many, size=400, sample=1000, seed=3)).hexdigest())
"""


def test_a_sampled_model_is_the_same_in_every_process():
    """SentencePiece's own sampling drew another sample in each process, whatever its seed: two
    `nmt prepare` runs of one corpus gave different vocabularies. Ours is seeded."""
    digests = {
        subprocess.run(
            [sys.executable, "-c", SAMPLED_MODEL_DIGEST], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(digests) == 1 and len(digests.pop()) == 64


def test_the_sample_is_seeded_uniform_and_bounded():
    lines = [f"line {i}" for i in range(10_000)]
    sample = sample_sentences(iter(lines), 1000, seed=5)
    assert len(sample) == len(set(sample)) == 1000 and set(sample) <= set(lines)
    assert sample_sentences(iter(lines), 1000, seed=5) == sample != sample_sentences(iter(lines), 1000, 6)
    assert sample_sentences(iter(lines[:50]), 1000, seed=5) == lines[:50]
    # Uniform: each tenth of the stream gives about a tenth of the sample.
    tenths = [sum(int(line.split()[1]) // 1000 == k for line in sample) for k in range(10)]
    assert all(60 <= count <= 140 for count in tenths), tenths


def test_unknown_ids_decode_as_unk_and_pad_and_start_are_dropped():
    vectorizer = SubwordVectorizer(train_subwords(SENTENCES, size=400))
    go = vectorizer.encode("Go.")
    assert vectorizer.decode([START_ID, PAD_ID, *go]) == "Go."
    assert vectorizer.decode([len(vectorizer) + 5]) == vectorizer.decode([UNK_ID])


def test_save_and_load_check_that_model_and_piece_list_agree(tmp_path):
    vectorizer = SubwordVectorizer(train_subwords(SENTENCES, size=400))
    vectorizer.save(tmp_path / "source.subword.txt")
    assert (tmp_path / "source.subword.model").is_file()
    loaded = Vectorizer.load("subword", tmp_path / "source.subword.txt")
    assert loaded.encode("¿Dónde?") == vectorizer.encode("¿Dónde?")

    other = SubwordVectorizer(train_subwords(["completely different text here"] * 50, size=300))
    (tmp_path / "source.subword.model").write_bytes(other.model)
    with pytest.raises(DataError, match="does not match its piece list"):
        Vectorizer.load("subword", tmp_path / "source.subword.txt")
    (tmp_path / "source.subword.model").write_bytes(b"not a model at all")
    with pytest.raises(DataError, match="not a SentencePiece model"):
        Vectorizer.load("subword", tmp_path / "source.subword.txt")
    (tmp_path / "source.subword.model").unlink()
    with pytest.raises(DataError, match="missing"):
        Vectorizer.load("subword", tmp_path / "source.subword.txt")


def _prepared(tmp_path: Path, tiny_pairs, **settings) -> tuple[Path, dict]:
    corpus = write_tsv(tmp_path / "corpus.tsv", tiny_pairs)
    out = tmp_path / "data"
    manifest = prepare(corpus, out, PrepareConfig(valid_size=10, test_size=10, seed=1, **settings))
    return out, manifest


def test_prepare_writes_a_joint_model_by_default_and_records_it(tmp_path, tiny_pairs):
    out, manifest = _prepared(tmp_path, tiny_pairs, subword_size=320)
    source = out / "vocab" / "source.subword.model"
    target = out / "vocab" / "target.subword.model"
    assert source.read_bytes() == target.read_bytes()
    assert manifest["subword"] == {
        "type": "unigram",
        "size": 320,
        "joint": True,
        "sample": PrepareConfig.subword_sample,
        "byte_fallback": True,
    }
    assert manifest["vocab_size"]["subword"]["source"] == manifest["vocab_size"]["subword"]["target"] <= 320
    assert manifest["unk_rate"]["subword"]["valid"] == {"source": 0.0, "target": 0.0}
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["subword"]["joint"] is True
    # The longest training sentence in pieces, per side, as the word and char levels record it.
    vectorizer = Vectorizer.load("subword", out / "vocab" / "source.subword.txt")
    sources = [line.split("\t")[0] for line in (out / "train.tsv").read_text(encoding="utf-8").splitlines()]
    lengths = [len(vectorizer.encode(source)) for source in sources]
    assert manifest["max_length"]["subword"]["source"] == max(lengths)
    # Word and char levels are as before.
    assert (out / "vocab" / "source.word.txt").is_file() and (out / "vocab" / "target.char.txt").is_file()


def test_prepare_separate_models_know_only_their_side(tmp_path, tiny_pairs):
    out, manifest = _prepared(
        tmp_path, tiny_pairs, subword_size=320, joint_subwords=False, subword_type="bpe"
    )
    source = Vectorizer.load("subword", out / "vocab" / "source.subword.txt")
    target = Vectorizer.load("subword", out / "vocab" / "target.subword.txt")
    assert source.vocabulary.tokens != target.vocabulary.tokens
    assert "▁gato" in target.vocabulary.index and "▁gato" not in source.vocabulary.index
    assert manifest["subword"]["joint"] is False and manifest["subword"]["type"] == "bpe"


@pytest.mark.parametrize("name", ["subword_size", "subword_type", "joint_subwords", "subword_sample"])
def test_subword_settings_are_validated(name):
    from nmtcli.errors import ConfigError

    bad = {"subword_size": 10, "subword_type": "wordpiece", "joint_subwords": "yes", "subword_sample": 0}
    with pytest.raises(ConfigError) as caught:
        PrepareConfig(**{name: bad[name]})
    assert caught.value.field == name


@pytest.mark.slow
@pytest.mark.parametrize("corpus", REAL_CORPORA, ids=["spa", "fra"])
def test_every_line_of_the_real_corpora_round_trips(corpus):
    """Trained on both columns of the whole file, then every normalised line encodes and decodes back."""
    path = require_corpus(corpus)
    lines = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            lines.extend(normalize(text) for text in line.rstrip("\n").split("\t")[:2])
    vectorizer = SubwordVectorizer(train_subwords(lines))  # the defaults of `nmt prepare`
    failures = [line for line in lines if vectorizer.decode(vectorizer.encode(line)) != line]
    assert failures == []
    assert all(unicodedata.is_normalized("NFC", line) for line in lines[:1000])


def test_nmt_prepare_and_train_at_subword_level_give_a_run_that_translates(tmp_path, tiny_corpus):
    """`nmt prepare` + `nmt train --level subword --arch gru-attention`: the run folder carries the
    SentencePiece models under its checksums, and `nmt translate` uses them."""
    from typer.testing import CliRunner

    from nmtcli.cli import app
    from nmtcli.errors import ModelError
    from nmtcli.run_folder import RunFolder

    def nmt(*args):
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
        return result

    workspace = tmp_path / "ws"
    split = ["--valid-size", "10", "--test-size", "10", "--seed", "1"]
    nmt("prepare", tiny_corpus, "-w", workspace, *split, "--subword-size", "300", "--subword-type", "bpe")
    manifest = json.loads((workspace / "data" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["settings"]["subword_type"] == "bpe" and manifest["subword"]["size"] == 300
    options = ["--embedding-dim", "16", "--units", "32", "--epochs", "2", "--batch-size", "16"]
    result = nmt(
        "train", "-w", workspace, "--level", "subword", "--arch", "gru-attention", *options, "--json"
    )
    run = Path(json.loads(result.stdout)["run"])
    for side in ("source", "target"):
        assert (run / "vocab" / f"{side}.model").read_bytes() == (
            workspace / "data" / "vocab" / f"{side}.subword.model"
        ).read_bytes()
    checksums = json.loads((run / "checksums.json").read_text(encoding="utf-8"))
    assert {"vocab/source.model", "vocab/target.model"} <= set(checksums)

    translated = nmt("translate", "-w", workspace, "red cat runs.", "日本").stdout.splitlines()
    assert len(translated) == 2 and "<unk>" not in " ".join(translated)

    # A SentencePiece model changed after training is refused, as any other file of the run.
    model = run / "vocab" / "target.model"
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="target.model"):
        RunFolder(run).verify()
