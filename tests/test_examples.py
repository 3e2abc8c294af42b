"""The bundled example corpus: generated deterministically, grammatical where it matters, and its test
split made of sentences the model never sees in training."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def grammar():
    spec = importlib.util.spec_from_file_location("make_grammar_corpus", EXAMPLES / "make_grammar_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_the_generator_is_deterministic_and_the_bundled_file_is_its_output(grammar) -> None:
    first = grammar.generate(300, seed=5)
    assert first == grammar.generate(300, seed=5)
    assert first != grammar.generate(300, seed=6)
    assert len({english for english, _ in first}) == 300, "each English sentence once"
    bundled = (EXAMPLES / "eng-spa.txt").read_text(encoding="utf-8")
    expected = "".join(f"{english}\t{spanish}\n" for english, spanish in grammar.generate(6000, seed=14))
    assert bundled == expected, "regenerate examples/eng-spa.txt with make_grammar_corpus.py"


def test_articles_and_adjectives_agree_with_their_noun(grammar) -> None:
    """Every Spanish noun phrase: the article and the adjective carry the noun's gender and number."""
    nouns = {}
    for _, _, singular, plural, gender in [*grammar.SUBJECT_NOUNS, *grammar.OBJECT_NOUNS]:
        nouns[singular] = (gender, "s")
        nouns[plural] = (gender, "p")
    articles = {spanish: (gender, number) for (_, number, gender), spanish in grammar.ARTICLES.items()}
    adjectives = {
        grammar.adjective_form(spanish, number, gender): (gender, number)
        for _, spanish in grammar.ADJECTIVES
        for number in "sp"
        for gender in "mf"
    }
    checked = Counter()
    for _, spanish in grammar.generate(2000, seed=3):
        words = spanish.strip("¿?.").lower().split()
        for i, word in enumerate(words):
            if word not in nouns:
                continue
            gender, number = nouns[word]
            assert articles[words[i - 1]] == (gender, number), spanish
            checked["article"] += 1
            after = words[i + 1] if i + 1 < len(words) else None
            if after in adjectives:
                # Invariable adjectives (verde, grande) agree in number only.
                forms = {
                    grammar.adjective_form(base, number, gender)
                    for _, base in grammar.ADJECTIVES
                    if after in {grammar.adjective_form(base, n, g) for n in "sp" for g in "mf"}
                }
                assert after in forms, spanish
                checked["adjective"] += 1
    assert checked["article"] > 3000 and checked["adjective"] > 1000


def test_verbs_agree_with_their_subject(grammar) -> None:
    assert grammar.VERBS[0].spanish_form("1s", "present") == "compro"
    assert grammar.VERBS[0].spanish_form("3p", "past") == "compraron"
    pairs = dict(grammar.generate(3000, seed=4))
    for english, spanish in pairs.items():
        if english.startswith("We ") and " not " not in english:
            assert spanish.split()[1].endswith(("amos", "emos", "imos")), (english, spanish)
        if english.startswith("I ") and english.endswith("yesterday.") and " not " not in english:
            assert spanish.split()[1].endswith(("é", "í")), (english, spanish)


def test_test_sentences_are_unseen_in_training_and_every_word_is_in_the_vocabulary(tmp_path) -> None:
    from nmtcli.config import PrepareConfig
    from nmtcli.corpus import prepare

    data = tmp_path / "data"
    prepare(EXAMPLES / "eng-spa.txt", data, PrepareConfig())

    def sides(name: str) -> list[list[str]]:
        return [line.split("\t") for line in (data / name).read_text(encoding="utf-8").splitlines()]

    train = sides("train.tsv")
    test = sides("test.tsv")
    assert len(test) >= 200
    assert not {source for source, _ in test} & {source for source, _ in train}
    vocabulary = set((data / "vocab" / "target.word.txt").read_text(encoding="utf-8").split("\n"))
    from nmtcli.vectorizers import make_tokenizer

    tokenize = make_tokenizer("word").tokenize
    missing = {token for _, target in test for token in tokenize(target)} - vocabulary
    assert not missing, f"test words the model cannot write: {sorted(missing)[:10]}"
