"""Shared fixtures: a tiny synthetic corpus, a prepared data folder and tiny trained models.

Everything that costs a training run is session-scoped, so each model is trained once per test session.
TensorFlow is imported inside the fixtures that need it, so tests that do not stay fast.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pytest

# Before anything imports TensorFlow: no C++ start-up chatter in test output.
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

# The real anki corpora beside the project (../shared/data), for the tests that read them; each such
# test skips, naming the path, where they are absent. NMT_SHARED_DATA and NMT_SPA_CORPUS point elsewhere.
SHARED_DATA = Path(
    os.environ.get("NMT_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)
SPA_CORPUS = Path(os.environ.get("NMT_SPA_CORPUS", SHARED_DATA / "spa-eng" / "spa.txt"))
FRA_CORPUS = SHARED_DATA / "fra-eng" / "fra.txt"
REAL_CORPORA = (SPA_CORPUS, FRA_CORPUS)


def require_corpus(path: Path) -> Path:
    """``path`` if the real corpus is there, else skip the calling test saying where it looked."""
    if not path.is_file():
        pytest.skip(f"real corpus not found at {path}")
    return path


def pytest_configure(config) -> None:
    # Keras 3 with NumPy 2 warns on every tensor-to-array conversion; the noise hides real warnings.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning",
    )


# --------------------------------------------------------------------------------------------------
# A learnable synthetic corpus: word-by-word "translation" of short phrases over a ten-word vocabulary.
# Every source containing "small" has two translations (chico / pequeño), so grouped splits hold some
# sentences with two references.

TINY_LEXICON = {
    "red": "rojo",
    "blue": "azul",
    "green": "verde",
    "cat": "gato",
    "dog": "perro",
    "big": "grande",
    "small": "chico",
    "runs": "corre",
    "eats": "come",
    "sleeps": "duerme",
}
TINY_SYNONYMS = {"small": "pequeño"}

# Small enough for two CPU cores; big enough to learn something in a few epochs. A word GRU with
# attention (the default before the subword Transformer): it traces and trains far faster than a
# tiny Transformer, and the tests that use it are not about the default model.
TINY_MODEL = {"arch": "gru-attention", "level": "word", "embedding_dim": 16, "units": 32, "dropout": 0.0}
TINY_TRAINING = {"epochs": 4, "batch_size": 16, "learning_rate": 0.01, "patience": 0, "seed": 7}


def make_tiny_pairs(sources: int = 90, seed: int = 0) -> list[tuple[str, str]]:
    """``sources`` distinct phrases of 1-4 words with their translations (some with two)."""
    rng = random.Random(seed)
    words = sorted(TINY_LEXICON)
    phrases: dict[str, list[str]] = {}
    while len(phrases) < sources:
        chosen = [rng.choice(words) for _ in range(rng.randint(1, 4))]
        source = " ".join(chosen) + "."
        if source in phrases:
            continue
        targets = [" ".join(TINY_LEXICON[w] for w in chosen) + "."]
        if any(w in TINY_SYNONYMS for w in chosen):
            targets.append(" ".join(TINY_SYNONYMS.get(w, TINY_LEXICON[w]) for w in chosen) + ".")
        phrases[source] = targets
    return [(source, target) for source, targets in phrases.items() for target in targets]


def write_tsv(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_pairs() -> list[tuple[str, str]]:
    return make_tiny_pairs()


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory, tiny_pairs) -> Path:
    """The synthetic corpus as an anki-style TSV file. Do not modify it."""
    return write_tsv(tmp_path_factory.mktemp("corpus") / "tiny.tsv", tiny_pairs)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, tiny_corpus) -> Path:
    """A prepared data folder of the tiny corpus: 10 valid and 10 test source sentences. Read only."""
    from nmtcli.config import PrepareConfig
    from nmtcli.corpus import prepare

    out = tmp_path_factory.mktemp("prepared") / "data"
    prepare(tiny_corpus, out, PrepareConfig(valid_size=10, test_size=10, seed=1))
    return out


@pytest.fixture(scope="session")
def tiny_run_factory(tmp_path_factory, tiny_data) -> Callable[..., Path]:
    """``get(arch, level="word") -> run folder``: a tiny model trained once per session, each in its
    own workspace (so that workspace's LATEST names it). Treat the run folders as read-only."""
    cache: dict[tuple[str, str], Path] = {}

    def get(arch: str, level: str = "word") -> Path:
        if (arch, level) not in cache:
            from nmtcli.config import ModelConfig, TrainConfig
            from nmtcli.training import train
            from nmtcli.translator import Translator
            from nmtcli.workspace import Workspace

            workspace = Workspace(tmp_path_factory.mktemp(f"ws-{arch}-{level}"))
            result = train(
                ModelConfig(**{**TINY_MODEL, "arch": arch, "level": level}),
                TrainConfig(**TINY_TRAINING),
                data_dir=tiny_data,
                workspace=workspace,
                translator_factory=Translator,
            )
            if arch != "transformer":  # as `nmt train` does: the traced decoders (decoder_cache)
                from nmtcli.decoder_cache import ensure_cached

                ensure_cached(result.run_dir)
            cache[arch, level] = result.run_dir
        return cache[arch, level]

    return get


@pytest.fixture(scope="session")
def tiny_run(tiny_run_factory) -> Path:
    """The tiny GRU-attention word-level run folder (read-only)."""
    return tiny_run_factory("gru-attention")


EXPORT_LOADER = textwrap.dedent(
    """
    import importlib, json, os, sys
    sys.modules["nmtcli"] = None  # importing nmtcli would fail: an export must not need it
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf

    request = json.load(sys.stdin)
    for name in request["imports"]:
        importlib.import_module(name)  # tensorflow_text registers the SentencePiece ops
    out = {}
    for folder in request["folders"]:
        serve = tf.saved_model.load(folder).signatures["serving_default"]
        result = serve(tf.constant(request["sentences"], tf.string))
        out[folder] = [t.decode("utf-8") for t in result["translations"].numpy().tolist()]
        assert serve(tf.constant([], tf.string))["translations"].shape == (0,)
    out["nmtcli_imported"] = sys.modules.get("nmtcli") is not None
    print(json.dumps(out))
    """
)


def translate_with_exports(
    folders: Iterable[Path], sentences: Sequence[str], imports: Sequence[str] = ()
) -> dict[str, list[str]]:
    """Each SavedModel export in ``folders`` (by its path as a string) -> its translations of
    ``sentences``, computed in a fresh Python process that cannot import nmtcli, after importing
    ``imports``; the key ``"nmtcli_imported"`` says whether nmtcli got imported anyway."""
    folders = [str(folder) for folder in folders]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    request = {"folders": folders, "sentences": list(sentences), "imports": list(imports)}
    done = subprocess.run(
        [sys.executable, "-c", EXPORT_LOADER],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(folders[0]).parent,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
