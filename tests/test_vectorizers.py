"""Tokenizers, vocabularies and vectorizers: reversible tokenization, ordering, ids, files."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nmtcli.corpus import normalize
from nmtcli.errors import DataError
from nmtcli.vectorizers import (
    END,
    END_ID,
    JOINER,
    PAD,
    PAD_ID,
    SPECIALS,
    START,
    START_ID,
    UNK,
    UNK_ID,
    CharTokenizer,
    Vectorizer,
    Vocabulary,
    WordTokenizer,
    make_tokenizer,
)

TRICKY = [
    "¿Qué?",
    "¡Hola!",
    "¿Qué hora es? ¡Vámonos!",
    "Va !",
    "Qu'est-ce que c'est ?",
    "J'ai faim.",
    "l'homme",
    "aujourd'hui",
    "It’s a well-known fact.",
    "3.5",
    "It costs $3.50, i.e. 3,50 €.",
    "...",
    "Wait... what?!",
    "« Bonjour »",
    "«Bonjour»",
    '"Quoted," he said.',
    "(parenthesised) [bracketed] {braced}",
    "Nice 😀👍",
    "👨‍👩‍👧 family",
    "東京は日本の首都です。",
    "Tokyo 東京 Москва مرحبا!",
    "नमस्ते दुनिया",
    "snake_case and -dash- and 'single'",
    "a",
    "",
]


@pytest.fixture
def word() -> WordTokenizer:
    return WordTokenizer()


@pytest.fixture
def char() -> CharTokenizer:
    return CharTokenizer()


# --------------------------------------------------------------------------------------------------
# Tokenizers


@pytest.mark.parametrize("sentence", TRICKY)
def test_word_round_trip_is_exact(word: WordTokenizer, sentence: str) -> None:
    assert word.detokenize(word.tokenize(sentence)) == sentence


@pytest.mark.parametrize("sentence", TRICKY)
def test_char_round_trip_is_exact(char: CharTokenizer, sentence: str) -> None:
    tokens = char.tokenize(sentence)
    assert len(tokens) == len(sentence)
    assert char.detokenize(tokens) == sentence


def test_punctuation_is_split_off_with_joiner_marks(word: WordTokenizer) -> None:
    assert word.tokenize("¿Qué?") == [f"¿{JOINER}", "Qué", f"{JOINER}?"]
    assert word.tokenize("¡Hola!") == [f"¡{JOINER}", "Hola", f"{JOINER}!"]


def test_french_space_before_punctuation_is_kept(word: WordTokenizer) -> None:
    assert word.tokenize("Va !") == ["Va", "!"]
    assert word.tokenize("Va!") == ["Va", f"{JOINER}!"]
    assert word.detokenize(["Va", "!"]) == "Va !"
    assert word.detokenize(["Va", f"{JOINER}!"]) == "Va!"


@pytest.mark.parametrize("text", ["J'ai", "l'homme", "well-known", "It’s", "rock'n'roll"])
def test_apostrophes_and_hyphens_inside_words_stay(word: WordTokenizer, text: str) -> None:
    assert word.tokenize(text) == [text]


def test_words_never_carry_joiner_marks(word: WordTokenizer) -> None:
    for sentence in TRICKY:
        for token in word.tokenize(sentence):
            if token[0].isalnum():
                assert JOINER not in token, (sentence, token)


def test_number_with_decimal_point(word: WordTokenizer) -> None:
    tokens = word.tokenize("3.5")
    assert tokens[0] == "3"
    assert tokens[-1] == "5"
    assert [t.strip(JOINER) for t in tokens] == ["3", ".", "5"]


def test_ellipsis_is_three_glued_tokens(word: WordTokenizer) -> None:
    assert [t.strip(JOINER) for t in word.tokenize("...")] == [".", ".", "."]


def test_whitespace_runs_become_single_spaces(word: WordTokenizer) -> None:
    assert word.tokenize("  Hello \t world  ") == ["Hello", "world"]
    assert word.detokenize(word.tokenize("  Hello \t world  ")) == "Hello world"


def test_detokenize_skips_empty_tokens(word: WordTokenizer) -> None:
    assert word.detokenize(["Hola", "", f"{JOINER}!"]) == "Hola!"


def test_make_tokenizer() -> None:
    assert isinstance(make_tokenizer("word"), WordTokenizer)
    assert isinstance(make_tokenizer("char"), CharTokenizer)
    with pytest.raises(ValueError, match="subword"):
        make_tokenizer("subword")


@pytest.mark.parametrize("text", ["नमस्ते", "สวัสดี"])
def test_combining_marks_stay_inside_words(word: WordTokenizer, text: str) -> None:
    assert word.tokenize(text) == [text]


@settings(max_examples=300, deadline=None, database=None)
@given(st.text())
def test_word_round_trip_property(text: str) -> None:
    tokenizer = WordTokenizer()
    x = normalize(text)
    assert tokenizer.detokenize(tokenizer.tokenize(x)) == x


@settings(max_examples=300, deadline=None, database=None)
@given(st.text())
def test_char_round_trip_property(text: str) -> None:
    tokenizer = CharTokenizer()
    x = normalize(text)
    assert tokenizer.detokenize(tokenizer.tokenize(x)) == x


# --------------------------------------------------------------------------------------------------
# Vocabulary


def test_build_orders_by_frequency_then_token() -> None:
    vocab = Vocabulary.build([["b", "a", "c"], ["c", "b"], ["c", "d"]])
    assert vocab.tokens == [*SPECIALS, "c", "b", "a", "d"]


def test_build_never_duplicates_specials() -> None:
    vocab = Vocabulary.build([[PAD, "x", END, START, UNK, "x"]])
    assert vocab.tokens == [*SPECIALS, "x"]


def test_max_size_counts_the_specials() -> None:
    token_lists = [["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2 + ["e"]]
    vocab = Vocabulary.build(token_lists, max_size=6)
    assert len(vocab) == 6
    assert vocab.tokens == [*SPECIALS, "a", "b"]
    assert Vocabulary.build(token_lists, max_size=4).tokens == list(SPECIALS)


def test_min_count_drops_rare_tokens() -> None:
    vocab = Vocabulary.build([["a", "a", "b", "c", "c", "c"]], min_count=2)
    assert vocab.tokens == [*SPECIALS, "c", "a"]


def test_build_from_nothing_has_only_specials() -> None:
    assert Vocabulary.build([]).tokens == list(SPECIALS)


def test_special_ids_match_positions() -> None:
    vocab = Vocabulary.build([])
    assert [vocab.index[s] for s in (PAD, UNK, START, END)] == [PAD_ID, UNK_ID, START_ID, END_ID]


def test_encode_maps_unknown_tokens_to_unk() -> None:
    vocab = Vocabulary([*SPECIALS, "hola", "mundo"])
    assert vocab.encode(["hola", "adiós", "mundo"]) == [4, UNK_ID, 5]


def test_decode_stops_at_end_and_skips_pad_and_start() -> None:
    vocab = Vocabulary([*SPECIALS, "hola", "mundo"])
    ids = [START_ID, 4, PAD_ID, 5, UNK_ID, END_ID, 4, 5]
    assert vocab.decode(ids) == ["hola", "mundo", UNK]


def test_decode_maps_out_of_range_ids_to_unk() -> None:
    vocab = Vocabulary([*SPECIALS, "hola"])
    assert vocab.decode([4, 99, -1]) == ["hola", UNK, UNK]


def test_decode_accepts_numpy_like_integers() -> None:
    class FakeInt:
        def __init__(self, value: int):
            self.value = value

        def __int__(self) -> int:
            return self.value

    vocab = Vocabulary([*SPECIALS, "hola"])
    assert vocab.decode([FakeInt(4), FakeInt(END_ID)]) == ["hola"]


def test_save_load_round_trip(tmp_path) -> None:
    vocab = Vocabulary([*SPECIALS, "¿", "Qué", f"{JOINER}?", "l'homme", "😀"])
    path = tmp_path / "vocab" / "target.word.txt"
    vocab.save(path)
    assert path.read_text(encoding="utf-8").splitlines()[:4] == list(SPECIALS)
    assert Vocabulary.load(path).tokens == vocab.tokens


def test_char_vocabulary_with_space_and_line_separator_round_trips(tmp_path) -> None:
    tokens = [*SPECIALS, " ", "a", "\u2028", "\u2029", "\x85", "\u00a0", "é"]
    path = tmp_path / "source.char.txt"
    Vocabulary(tokens).save(path)
    loaded = Vocabulary.load(path)
    assert loaded.tokens == tokens
    assert loaded.index[" "] == 4
    assert loaded.index["\u2028"] == 6


def test_carriage_return_token_round_trips(tmp_path) -> None:
    tokens = [*SPECIALS, "\r", "a"]
    path = tmp_path / "v.txt"
    Vocabulary(tokens).save(path)
    assert Vocabulary.load(path).tokens == tokens


def test_constructor_rejects_missing_specials() -> None:
    with pytest.raises(DataError, match="must start with"):
        Vocabulary(["a", "b"])


@pytest.mark.parametrize(
    "content",
    [
        "",
        "a\nb\n",
        f"{UNK}\n{PAD}\n{START}\n{END}\nx\n",  # specials out of order
        f"{PAD}\n{UNK}\n{START}\nx\n",  # one special missing
    ],
    ids=["empty", "no-specials", "wrong-order", "missing-end"],
)
def test_load_rejects_file_without_specials(tmp_path, content: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match="must start with") as info:
        Vocabulary.load(path)
    assert str(path) in str(info.value)


def test_load_rejects_duplicates(tmp_path) -> None:
    path = tmp_path / "dup.txt"
    path.write_text("".join(t + "\n" for t in [*SPECIALS, "a", "b", "a"]), encoding="utf-8")
    with pytest.raises(DataError, match="same token twice") as info:
        Vocabulary.load(path)
    assert str(path) in str(info.value)


def test_load_missing_file(tmp_path) -> None:
    path = tmp_path / "nope.txt"
    with pytest.raises(DataError, match="missing") as info:
        Vocabulary.load(path)
    assert str(path) in str(info.value)


def test_load_non_utf8_file(tmp_path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("".join(t + "\n" for t in SPECIALS).encode() + b"caf\xe9\n")
    with pytest.raises(DataError, match="cannot read"):
        Vocabulary.load(path)


# --------------------------------------------------------------------------------------------------
# Vectorizer


@pytest.fixture
def spanish(word: WordTokenizer) -> Vectorizer:
    sentences = ["¿Qué hora es?", "¡Hola!", "Hola, ¿qué tal?"]
    return Vectorizer("word", Vocabulary.build(word.tokenize(s) for s in sentences))


def test_vectorizer_encode_plain(spanish: Vectorizer) -> None:
    ids = spanish.encode("¡Hola!")
    assert START_ID not in ids and END_ID not in ids
    assert spanish.vocabulary.decode(ids) == [f"¡{JOINER}", "Hola", f"{JOINER}!"]


def test_vectorizer_encode_with_start_and_end(spanish: Vectorizer) -> None:
    plain = spanish.encode("¡Hola!")
    assert spanish.encode("¡Hola!", start=True) == [START_ID, *plain]
    assert spanish.encode("¡Hola!", end=True) == [*plain, END_ID]
    assert spanish.encode("¡Hola!", start=True, end=True) == [START_ID, *plain, END_ID]


def test_vectorizer_encode_unknown_word(spanish: Vectorizer) -> None:
    ids = spanish.encode("¡Adiós!")
    assert ids[1] == UNK_ID
    assert spanish.decode(ids) == f"¡{UNK}!"


def test_vectorizer_decode_round_trip(spanish: Vectorizer) -> None:
    for sentence in ["¿Qué hora es?", "Hola, ¿qué tal?"]:
        ids = spanish.encode(sentence, start=True, end=True)
        assert spanish.decode([*ids, PAD_ID, PAD_ID]) == sentence


def test_char_vectorizer(char: CharTokenizer) -> None:
    vectorizer = Vectorizer("char", Vocabulary.build([char.tokenize("Va !")]))
    ids = vectorizer.encode("Va !", start=True, end=True)
    assert len(ids) == 6
    assert vectorizer.decode(ids) == "Va !"
    assert len(vectorizer) == len(SPECIALS) + 4


def test_vectorizer_save_load(tmp_path, spanish: Vectorizer) -> None:
    path = tmp_path / "target.word.txt"
    spanish.save(path)
    loaded = Vectorizer.load("word", path)
    assert loaded.level == "word"
    assert loaded.vocabulary.tokens == spanish.vocabulary.tokens
    assert loaded.encode("Hola, ¿qué tal?") == spanish.encode("Hola, ¿qué tal?")
