"""Round trips on the real anki corpora beside the project (../shared/data), skipped where absent.

Scores are computed on detokenized text, so word-level tokenization must be exactly reversible on
every line that training and evaluation will see.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REAL_CORPORA, require_corpus
from nmtcli.corpus import normalize
from nmtcli.vectorizers import WordTokenizer


@pytest.mark.parametrize("corpus", REAL_CORPORA, ids=lambda path: path.name)
def test_word_tokenization_round_trips_on_every_line(corpus: Path) -> None:
    require_corpus(corpus)
    tokenizer = WordTokenizer()
    failures = []
    checked = 0
    with open(corpus, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            for text in line.rstrip("\n").split("\t")[:2]:
                text = normalize(text)
                tokens = tokenizer.tokenize(text)
                checked += 1
                if tokenizer.detokenize(tokens) != text:
                    failures.append((number, text, tokens))
    assert checked > 200_000
    assert not failures, failures[:5]


def test_examples_from_the_protocol_split_and_restore() -> None:
    tokenizer = WordTokenizer()
    tokens = tokenizer.tokenize("¿Qué?")
    assert [token.strip("\uffed") for token in tokens] == ["¿", "Qué", "?"]
    assert tokenizer.detokenize(tokens) == "¿Qué?"
    assert tokenizer.detokenize(tokenizer.tokenize("J'ai faim.")) == "J'ai faim."
