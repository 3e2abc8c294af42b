"""Reading corpora, normalising, the grouped split, and the prepared data folder."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from nmtcli.config import PrepareConfig
from nmtcli.corpus import (
    DATA_FORMAT_VERSION,
    PreparedData,
    assign_splits,
    detect_format,
    group_references,
    normalize,
    prepare,
    read_pairs,
    text_digest,
)
from nmtcli.errors import CorpusError, DataError
from nmtcli.vectorizers import JOINER, SPECIALS, Vocabulary

ATTRIBUTION = "CC-BY 2.0 (France) Attribution: tatoeba.org #1 (CK) & #2 (x)"


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def pairs_of(path: Path, config: PrepareConfig | None = None, **kwargs) -> list[tuple[str, str]]:
    return [(p.source, p.target) for p in read_pairs(path, config, **kwargs)]


def multi_reference_lines(n_sources: int = 30) -> list[str]:
    """Anki-style lines in which every source sentence has two or three translations."""
    lines = []
    for i in range(n_sources):
        for j in range(2 + i % 2):
            lines.append(f"I saw {i} cats.\tVi {i} gatos, versión {j}.\t{ATTRIBUTION}")
    return lines


@pytest.fixture
def anki(tmp_path: Path) -> Path:
    return write(
        tmp_path / "spa.txt",
        f"Go.\tVe.\t{ATTRIBUTION}\nHi.\tHola.\t{ATTRIBUTION}\nRun!\t¡Corre!\t{ATTRIBUTION}\n",
    )


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write(tmp_path / "multi.txt", "\n".join(multi_reference_lines()) + "\n")


def small_split(**kwargs) -> PrepareConfig:
    return PrepareConfig(**{"valid_size": 3, "test_size": 3, **kwargs})


# --------------------------------------------------------------------------------------------------
# read_pairs: TSV


def test_tsv_three_columns_drops_attribution(anki: Path) -> None:
    assert pairs_of(anki) == [("Go.", "Ve."), ("Hi.", "Hola."), ("Run!", "¡Corre!")]


def test_tsv_two_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "fra.txt", "Go.\tVa !\nWho?\tQui ?\n")
    assert pairs_of(path) == [("Go.", "Va !"), ("Who?", "Qui ?")]


def test_tsv_crlf_line_endings(tmp_path: Path) -> None:
    path = write(tmp_path / "crlf.txt", "Go.\tVa !\r\nWho?\tQui ?\r\n")
    assert pairs_of(path) == [("Go.", "Va !"), ("Who?", "Qui ?")]


def test_tsv_utf8_bom_is_dropped(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.txt", b"\xef\xbb\xbfGo.\tVa !\nWho?\tQui ?\n")
    assert pairs_of(path)[0] == ("Go.", "Va !")


def test_tsv_without_trailing_newline_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "blank.txt", "Go.\tVa !\n\n   \nWho?\tQui ?")
    pairs = list(read_pairs(path))
    assert [(p.source, p.target) for p in pairs] == [("Go.", "Va !"), ("Who?", "Qui ?")]
    assert [p.where for p in pairs] == [f"{path}:1", f"{path}:4"]


def test_tsv_columns_by_number(anki: Path) -> None:
    config = PrepareConfig(source_column=2, target_column=1)
    assert pairs_of(anki, config)[0] == ("Ve.", "Go.")
    assert pairs_of(anki, PrepareConfig(source_column="1", target_column="3"))[0] == (
        "Go.",
        ATTRIBUTION,
    )


def test_tsv_column_by_name_is_an_error(anki: Path) -> None:
    with pytest.raises(CorpusError, match="no header"):
        list(read_pairs(anki, PrepareConfig(source_column="en")))


def test_column_number_zero_is_an_error(anki: Path) -> None:
    with pytest.raises(CorpusError, match="count from 1"):
        list(read_pairs(anki, PrepareConfig(source_column=0)))


def test_reverse_swaps_sides(anki: Path) -> None:
    assert pairs_of(anki, PrepareConfig(reverse=True)) == [
        ("Ve.", "Go."),
        ("Hola.", "Hi."),
        ("¡Corre!", "Run!"),
    ]


def test_limit_stops_early(anki: Path) -> None:
    assert pairs_of(anki, PrepareConfig(limit=2)) == [("Go.", "Ve."), ("Hi.", "Hola.")]


def test_limit_does_not_read_past_the_limit(tmp_path: Path) -> None:
    path = write(tmp_path / "late-bad.txt", "Go.\tVa !\nWho?\tQui ?\nno tab here\n")
    assert len(pairs_of(path, PrepareConfig(limit=2))) == 2
    with pytest.raises(CorpusError):
        pairs_of(path)


def test_limit_and_reverse_together(anki: Path) -> None:
    assert pairs_of(anki, PrepareConfig(limit=1, reverse=True)) == [("Ve.", "Go.")]


# --------------------------------------------------------------------------------------------------
# read_pairs: CSV


@pytest.fixture
def csv_corpus(tmp_path: Path) -> Path:
    return write(
        tmp_path / "pairs.csv",
        "id,en,fr\r\n"
        "1,Hello,Bonjour\r\n"
        '2,"Yes, sir.","Oui, monsieur."\r\n'
        '3,"Two\nlines","Deux\r\nlignes"\r\n'
        '4,"She said ""hi""",Elle a dit « salut »\r\n',
    )


def test_csv_columns_by_name(csv_corpus: Path) -> None:
    config = PrepareConfig(source_column="en", target_column="fr")
    assert pairs_of(csv_corpus, config) == [
        ("Hello", "Bonjour"),
        ("Yes, sir.", "Oui, monsieur."),
        ("Two\nlines", "Deux\r\nlignes"),
        ('She said "hi"', "Elle a dit « salut »"),
    ]


def test_csv_columns_by_number(csv_corpus: Path) -> None:
    by_name = pairs_of(csv_corpus, PrepareConfig(source_column="fr", target_column="en"))
    assert pairs_of(csv_corpus, PrepareConfig(source_column=3, target_column=2)) == by_name
    assert pairs_of(csv_corpus, PrepareConfig(source_column="3", target_column="2")) == by_name


def test_csv_default_columns_are_the_first_two(csv_corpus: Path) -> None:
    assert pairs_of(csv_corpus)[0] == ("1", "Hello")


def test_csv_with_bom_matches_first_header_name(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.csv", b"\xef\xbb\xbfen,fr\nHello,Bonjour\n")
    assert pairs_of(path, PrepareConfig(source_column="en", target_column="fr")) == [("Hello", "Bonjour")]


def test_csv_unknown_column_name_lists_the_header(csv_corpus: Path) -> None:
    with pytest.raises(CorpusError, match="no column named 'de'.*id, en, fr"):
        list(read_pairs(csv_corpus, PrepareConfig(source_column="de")))


def test_csv_short_row_is_a_bad_line(tmp_path: Path) -> None:
    path = write(tmp_path / "short.csv", "en,fr\nHello,Bonjour\nlonely\n")
    with pytest.raises(CorpusError, match=rf"{path.name}:3"):
        list(read_pairs(path))
    config = PrepareConfig(on_bad_line="skip")
    assert pairs_of(path, config) == [("Hello", "Bonjour")]


def test_csv_header_only_yields_nothing(tmp_path: Path) -> None:
    assert pairs_of(write(tmp_path / "head.csv", "en,fr\n")) == []


# --------------------------------------------------------------------------------------------------
# read_pairs: aligned files


@pytest.fixture
def aligned(tmp_path: Path) -> tuple[Path, Path]:
    return (
        write(tmp_path / "train.en", "Hello.\r\nHow are you?\r\n"),
        write(tmp_path / "train.de", b"\xef\xbb\xbfHallo.\nWie geht's?\n"),
    )


def test_aligned_files(aligned: tuple[Path, Path]) -> None:
    source, target = aligned
    pairs = list(read_pairs(source, target_path=target))
    assert [(p.source, p.target) for p in pairs] == [
        ("Hello.", "Hallo."),
        ("How are you?", "Wie geht's?"),
    ]
    assert pairs[1].where == f"{source}:2"


def test_aligned_reverse(aligned: tuple[Path, Path]) -> None:
    source, target = aligned
    assert pairs_of(source, PrepareConfig(reverse=True), target_path=target)[0] == (
        "Hallo.",
        "Hello.",
    )


@pytest.mark.parametrize("short_side", ["source", "target"])
def test_aligned_length_mismatch(tmp_path: Path, short_side: str) -> None:
    long = write(tmp_path / "long.txt", "a\nb\nc\n")
    short = write(tmp_path / "short.txt", "x\ny\n")
    source, target = (short, long) if short_side == "source" else (long, short)
    with pytest.raises(CorpusError, match="fewer lines") as info:
        list(read_pairs(source, target_path=target))
    assert str(info.value).startswith(str(short))


def test_aligned_format_needs_two_files(aligned: tuple[Path, Path]) -> None:
    with pytest.raises(CorpusError, match="needs two files"):
        list(read_pairs(aligned[0], PrepareConfig(format="aligned")))


# --------------------------------------------------------------------------------------------------
# Format detection


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("data.csv", "a\tb\n", "csv"),  # the extension wins
        ("data.tsv", "a,b\n", "tsv"),
        ("data.TAB", "a,b\n", "tsv"),
        ("spa.txt", "Hello, Tom.\tHola, Tom.\n", "tsv"),
        ("spa.txt", "Hi\n" * 3 + "Go.\tVe.\n", "tsv"),
        ("pairs.txt", "en,fr\nHi,Salut\n", "csv"),
    ],
)
def test_detect_format(tmp_path: Path, name: str, content: str, expected: str) -> None:
    assert detect_format(write(tmp_path / name, content), None) == expected


def test_detect_format_second_file_means_aligned(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "x,y\n")
    assert detect_format(path, tmp_path / "b.txt") == "aligned"


def test_detect_format_gives_up_with_advice(tmp_path: Path) -> None:
    path = write(tmp_path / "plain.txt", "just words\nmore words\n")
    with pytest.raises(CorpusError, match="`format`") as info:
        detect_format(path, None)
    assert str(path) in str(info.value)


def test_explicit_format_overrides_detection(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.txt", "en,fr\nHi,Salut\n")
    assert pairs_of(path) == [("Hi", "Salut")]
    with pytest.raises(CorpusError, match="tab-separated"):
        pairs_of(path, PrepareConfig(format="tsv"))


# --------------------------------------------------------------------------------------------------
# Reading errors


def test_line_without_tab_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.txt", "Go.\tVa !\nWho? Qui ?\n")
    with pytest.raises(CorpusError) as info:
        list(read_pairs(path))
    message = str(info.value)
    assert f"{path}:2" in message
    assert "`on_bad_line` skip" in message  # the setting; the command line writes --on-bad-line


def test_warn_policy_reports_and_skips(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.txt", "Go.\tVa !\nWho? Qui ?\nHi.\tSalut.\n")
    warnings: list[str] = []
    pairs = pairs_of(path, PrepareConfig(on_bad_line="warn"), warn=warnings.append)
    assert pairs == [("Go.", "Va !"), ("Hi.", "Salut.")]
    assert len(warnings) == 1
    assert f"{path}:2" in warnings[0]


def test_latin1_bytes_in_utf8_tsv_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "latin1.txt", b"Go.\tVa !\n" + b"Coffee.\tCaf\xe9.\n")
    with pytest.raises(CorpusError, match="not valid utf-8") as info:
        list(read_pairs(path))
    assert f"{path}:2" in str(info.value)


def test_latin1_file_reads_with_its_encoding(tmp_path: Path) -> None:
    path = write(tmp_path / "latin1.txt", b"Coffee.\tCaf\xe9.\n")
    assert pairs_of(path, PrepareConfig(encoding="latin-1")) == [("Coffee.", "Café.")]


def test_latin1_bytes_in_utf8_csv_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "latin1.csv", b"en,fr\nHello,Bonjour\nCoffee,Caf\xe9\n")
    with pytest.raises(CorpusError) as info:
        list(read_pairs(path))
    assert f"{path}:3" in str(info.value)


def test_unknown_encoding(anki: Path) -> None:
    with pytest.raises(CorpusError, match="unknown encoding 'klingon'"):
        list(read_pairs(anki, PrepareConfig(encoding="klingon")))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    with pytest.raises(CorpusError, match="not found") as info:
        list(read_pairs(path))
    assert str(path) in str(info.value)


def test_missing_target_file(anki: Path, tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        list(read_pairs(anki, target_path=tmp_path / "nope.txt"))


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="is a directory") as info:
        list(read_pairs(tmp_path))
    assert str(tmp_path) in str(info.value)


# --------------------------------------------------------------------------------------------------
# normalize


def test_normalize_nfc() -> None:
    assert normalize("Que\u0301 cafe\u0301") == "Qué café"


@pytest.mark.parametrize(
    "text",
    [
        "a\u202fb",  # narrow no-break space (French « »)
        "a\u00a0b",
        "a\tb",
        "a \t \u3000 b",
        "a\u2028b",
        "a\r\nb",
    ],
)
def test_normalize_collapses_whitespace(text: str) -> None:
    assert normalize(text) == "a b"


def test_normalize_strips_ends() -> None:
    assert normalize("  \t Hola. \u202f") == "Hola."


@pytest.mark.parametrize(
    "text", ["a\u200bb", "\ufeffab", "a\u200db", "a\x07b", "a\x00b", "a\u00adb", f"a{JOINER}b"]
)
def test_normalize_removes_zero_width_and_control_characters(text: str) -> None:
    assert normalize(text) == "ab"


def test_normalize_lowercase() -> None:
    assert normalize("¿QUÉ Hora ES?") == "¿QUÉ Hora ES?"
    assert normalize("¿QUÉ Hora ES?", lowercase=True) == "¿qué hora es?"


def test_normalize_leaves_clean_text_alone() -> None:
    text = "Elle a dit « salut » — J'ai 3,5 €. 東京 😀"
    assert normalize(text) == text


def test_normalize_output_is_nfc_and_idempotent() -> None:
    once = normalize("cafe\u200b\u0301")
    assert once == "café"
    assert normalize(once) == once


# --------------------------------------------------------------------------------------------------
# assign_splits and group_references


def test_assign_splits_keeps_sources_together() -> None:
    sources = np.array([text_digest(f"s{i}") for i in range(20) for _ in range(3)], np.uint64)
    splits = assign_splits(sources, 0.1, 0.2, seed=1)
    per_source = {}
    for digest, split in zip(sources.tolist(), splits.tolist(), strict=True):
        per_source.setdefault(digest, set()).add(split)
    assert all(len(seen) == 1 for seen in per_source.values())
    counts = np.bincount([next(iter(seen)) for seen in per_source.values()], minlength=3)
    assert counts.tolist() == [14, 2, 4]


def test_assign_splits_depends_on_the_seed_only() -> None:
    sources = np.array([text_digest(f"s{i}") for i in range(50)], np.uint64)
    first = assign_splits(sources, 0.2, 0.2, seed=7)
    assert np.array_equal(first, assign_splits(sources, 0.2, 0.2, seed=7))
    assert not np.array_equal(first, assign_splits(sources, 0.2, 0.2, seed=8))


def test_assign_splits_too_few_sources() -> None:
    sources = np.array([text_digest(s) for s in "abc"], np.uint64)
    with pytest.raises(CorpusError, match="only 3 distinct source sentences"):
        assign_splits(sources, 2, 1, seed=0)


def test_group_references() -> None:
    sources, references = group_references([("a", "1"), ("b", "2"), ("a", "3")])
    assert sources == ["a", "b"]
    assert references == [["1", "3"], ["2"]]


# --------------------------------------------------------------------------------------------------
# prepare


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def read_tsv(path: Path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8", newline="\n") as handle:
        return [tuple(line.rstrip("\n").split("\t")) for line in handle]  # type: ignore[misc]


def test_prepare_writes_the_data_folder(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    manifest = prepare(corpus, out, small_split())
    assert sorted(snapshot(out)) == sorted(
        [
            ".nmt-written.json",
            "train.tsv",
            "valid.tsv",
            "test.tsv",
            "manifest.json",
            *(f"vocab/{side}.{level}.txt" for side in ("source", "target") for level in ("word", "char")),
            *(f"vocab/{side}.subword.{ext}" for side in ("source", "target") for ext in ("txt", "model")),
        ]
    )
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8")) == manifest
    assert manifest["format_version"] == DATA_FORMAT_VERSION
    assert manifest["settings"] == small_split().to_dict()
    # No temporary siblings left next to the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "multi.txt"]


def test_prepare_counts_add_up(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    manifest = prepare(corpus, out, small_split())
    counts, dropped = manifest["counts"], manifest["dropped"]
    n_lines = len(multi_reference_lines())
    assert counts["read"] == n_lines
    assert counts["kept"] == n_lines - sum(v for k, v in dropped.items() if k != "malformed")
    assert counts["train"] + counts["valid"] + counts["test"] == counts["kept"]
    assert (counts["valid_sources"], counts["test_sources"]) == (3, 3)
    assert counts["train_sources"] + 6 == 30
    for split in ("train", "valid", "test"):
        pairs = read_tsv(out / f"{split}.tsv")
        assert len(pairs) == counts[split]
        assert len({s for s, _ in pairs}) == counts[f"{split}_sources"]


def test_prepare_split_is_grouped_by_source(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    prepare(corpus, out, small_split())
    owner: dict[str, str] = {}
    for split in ("train", "valid", "test"):
        for source, _ in read_tsv(out / f"{split}.tsv"):
            assert owner.setdefault(source, split) == split, f"{source!r} in two splits"
    assert len(owner) == 30
    # Every translation of each held-out source went with it.
    valid = read_tsv(out / "valid.tsv")
    for source in {s for s, _ in valid}:
        assert sum(s == source for s, _ in valid) in (2, 3)


def test_prepare_same_seed_same_split(corpus: Path, tmp_path: Path) -> None:
    prepare(corpus, tmp_path / "a", small_split(seed=5))
    prepare(corpus, tmp_path / "b", small_split(seed=5))
    prepare(corpus, tmp_path / "c", small_split(seed=6))
    a, b, c = (snapshot(tmp_path / name) for name in "abc")
    for name in ("train.tsv", "valid.tsv", "test.tsv", "vocab/target.word.txt"):
        assert a[name] == b[name]
    assert (a["valid.tsv"], a["test.tsv"]) != (c["valid.tsv"], c["test.tsv"])


def test_prepare_removes_and_counts_duplicates(tmp_path: Path) -> None:
    lines = multi_reference_lines(20)
    duplicated = [*lines, lines[0], lines[0], lines[5].replace("cats.", "cats. "), lines[7].upper()]
    path = write(tmp_path / "dups.txt", "\n".join(duplicated) + "\n")
    manifest = prepare(path, tmp_path / "data", small_split(valid_size=2, test_size=2))
    assert manifest["dropped"]["duplicate"] == 3  # the upper-cased line is a different pair
    assert manifest["counts"]["kept"] == len(lines) + 1
    lowered = prepare(path, tmp_path / "lower", small_split(lowercase=True, valid_size=2, test_size=2))
    assert lowered["dropped"]["duplicate"] == 4
    kept = prepare(path, tmp_path / "all", small_split(dedupe=False, valid_size=2, test_size=2))
    assert kept["dropped"]["duplicate"] == 0
    assert kept["counts"]["kept"] == len(duplicated)


def test_prepare_filters_and_counts(tmp_path: Path) -> None:
    lines = [
        *multi_reference_lines(10),
        "Go.\t",  # empty target
        "\u200b\tVe.",  # empty source once normalised
        "a b c d e f g h i\tuno",  # too many source words
        "x" * 31 + "\tlong",  # too many characters
    ]
    path = write(tmp_path / "filter.txt", "\n".join(lines) + "\n")
    # "Vi 9 gatos, versión 2." is 22 characters and 8 tokens.
    config = small_split(valid_size=1, test_size=1, max_words=8, max_chars=30)
    manifest = prepare(path, tmp_path / "data", config)
    assert manifest["dropped"] == {
        "empty": 2,
        "too_long": 2,
        "too_short": 0,
        "duplicate": 0,
        "malformed": 0,
    }
    assert manifest["counts"]["kept"] == len(multi_reference_lines(10))


def test_prepare_normalises_text(tmp_path: Path) -> None:
    lines = [*multi_reference_lines(10), "Tom  \u200bhas\u3000two\u00a0DOGS.\tTom a deux chiens\u202f!"]
    path = write(tmp_path / "norm.txt", "\n".join(lines) + "\n")
    out = tmp_path / "data"
    prepare(path, out, small_split(valid_size=1, test_size=1, lowercase=True))
    everything = [p for split in ("train", "valid", "test") for p in read_tsv(out / f"{split}.tsv")]
    assert ("tom has two dogs.", "tom a deux chiens !") in everything


def test_prepare_skip_counts_malformed_lines(tmp_path: Path) -> None:
    lines = multi_reference_lines(10)
    lines[3:3] = ["no tab on this line", "nor on this one"]
    path = write(tmp_path / "bad.txt", "\n".join(lines) + "\n")
    with pytest.raises(CorpusError, match=rf"{path.name}:4"):
        prepare(path, tmp_path / "strict", small_split(valid_size=1, test_size=1))
    assert not (tmp_path / "strict").exists()
    manifest = prepare(path, tmp_path / "data", small_split(valid_size=1, test_size=1, on_bad_line="skip"))
    assert manifest["dropped"]["malformed"] == 2
    assert manifest["counts"]["read"] == len(lines) - 2


def test_prepare_vocabularies_come_from_training_data(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    manifest = prepare(corpus, out, small_split())
    train_sources = {s for s, _ in read_tsv(out / "train.tsv")}
    held_out = next(s for s, _ in read_tsv(out / "test.tsv"))
    number = held_out.split()[2]  # "I saw {i} cats." -> "{i}", seen only in the test split
    assert all(number not in s.split() for s in train_sources)
    source_words = Vocabulary.load(out / "vocab" / "source.word.txt")
    assert source_words.tokens[:4] == list(SPECIALS)
    assert number not in source_words.index
    assert "cats" in source_words.index
    assert manifest["unk_rate"]["word"]["test"]["source"] > 0
    chars = Vocabulary.load(out / "vocab" / "target.char.txt")
    assert " " in chars.index and "ó" in chars.index
    assert manifest["vocab_size"]["char"]["target"] == len(chars)


def test_prepare_max_length(corpus: Path, tmp_path: Path) -> None:
    manifest = prepare(corpus, tmp_path / "data", small_split())
    # "I saw 12 cats." -> I, saw, 12, cats, .
    assert manifest["max_length"]["word"]["source"] == 5
    assert manifest["max_length"]["char"]["source"] == len("I saw 29 cats.")


def test_prepare_aligned_records_both_files(aligned: tuple[Path, Path], tmp_path: Path) -> None:
    source, target = aligned
    lines = multi_reference_lines(10)
    write(source, "\n".join(line.split("\t")[0] for line in lines) + "\n")
    write(target, "\n".join(line.split("\t")[1] for line in lines) + "\n")
    manifest = prepare(source, tmp_path / "data", small_split(valid_size=1, test_size=1), target)
    assert manifest["corpus"]["target_path"] == str(target.resolve())
    assert len(manifest["corpus"]["target_sha256"]) == 64
    assert manifest["counts"]["kept"] == len(lines)


def test_prepare_output_folder_has_normal_permissions(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    prepare(corpus, out, small_split())
    mode = stat.S_IMODE(os.stat(out).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o777 & ~umask


def test_prepare_replaces_an_existing_output(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    prepare(corpus, out, small_split(seed=1))
    # A file an earlier preparation wrote (so listed in the folder's list) but this one does not.
    (out / "stale.txt").write_text("from an older run", encoding="utf-8")
    listed = json.loads((out / ".nmt-written.json").read_text(encoding="utf-8"))
    (out / ".nmt-written.json").write_text(json.dumps([*listed, "stale.txt"]), encoding="utf-8")
    prepare(corpus, out, small_split(seed=2))
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["settings"]["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "multi.txt"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the corpus is empty"),
        ("\n\n  \n", "the corpus is empty"),
        ("Go.\t\n\tVe.\n", "no pairs left after filtering"),
        ("only\tthree\tsentences\nsecond\tpair\nthird\tpair\n", "too few"),
    ],
    ids=["empty", "blank-lines", "all-filtered", "too-few-to-split"],
)
def test_failed_prepare_leaves_existing_output_untouched(
    corpus: Path, tmp_path: Path, content: str, message: str
) -> None:
    out = tmp_path / "data"
    prepare(corpus, out, small_split())
    before = snapshot(out)
    bad = write(tmp_path / "bad.tsv", content)
    with pytest.raises(CorpusError, match=message) as info:
        prepare(bad, out, small_split(valid_size=2, test_size=1))
    assert str(bad) in str(info.value) or message == "too few"
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tsv", "data", "multi.txt"]


def test_empty_txt_corpus_says_it_is_empty(tmp_path: Path) -> None:
    path = write(tmp_path / "spa.txt", "")
    with pytest.raises(CorpusError, match="the corpus is empty"):
        prepare(path, tmp_path / "data")


def test_all_filtered_message_says_why(tmp_path: Path) -> None:
    path = write(tmp_path / "long.txt", "a b c d\te f g h\n")
    with pytest.raises(CorpusError, match="1 too long") as info:
        prepare(path, tmp_path / "data", PrepareConfig(max_words=2))
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------------------------------
# PreparedData


@pytest.fixture
def prepared(corpus: Path, tmp_path: Path) -> Path:
    out = tmp_path / "data"
    prepare(corpus, out, small_split())
    return out


def test_prepared_data_loads(prepared: Path) -> None:
    data = PreparedData.load(prepared)
    assert data.pairs("train") == read_tsv(prepared / "train.tsv")
    assert data.max_length("source", "word") == data.manifest["max_length"]["word"]["source"]
    vectorizer = data.vectorizer("target", "char")
    assert vectorizer.level == "char"
    assert len(vectorizer) == data.manifest["vocab_size"]["char"]["target"]


def test_prepared_data_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nmt prepare") as info:
        PreparedData.load(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)


@pytest.mark.parametrize("name", ["train.tsv", "test.tsv", "vocab/source.char.txt"])
def test_prepared_data_missing_file(prepared: Path, name: str) -> None:
    (prepared / name).unlink()
    with pytest.raises(DataError, match=f"missing {name}"):
        PreparedData.load(prepared)


@pytest.mark.parametrize("version", [DATA_FORMAT_VERSION + 1, None, "1"])
def test_prepared_data_wrong_format_version(prepared: Path, version) -> None:
    manifest_path = prepared / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["format_version"] = version
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(DataError, match="data format"):
        PreparedData.load(prepared)


def test_prepared_data_unreadable_manifest(prepared: Path) -> None:
    (prepared / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match=r"manifest\.json: unreadable \(not valid JSON"):
        PreparedData.load(prepared)


def test_prepared_data_malformed_split_file(prepared: Path) -> None:
    (prepared / "valid.tsv").write_text("ok\tfine\nno tab\n", encoding="utf-8")
    data = PreparedData.load(prepared)
    with pytest.raises(DataError, match=r"valid\.tsv:2"):
        data.pairs("valid")


def test_an_emptied_or_hand_edited_split_is_one_clear_error(tmp_path: Path, tiny_data: Path) -> None:
    data = Path(shutil.copytree(tiny_data, tmp_path / "data"))
    (data / "train.tsv").write_bytes(b"")
    with pytest.raises(DataError, match=r"train\.tsv: empty, but the manifest counts \d+ training pairs"):
        PreparedData.load(data)
    (data / "train.tsv").write_bytes(b"red cat.\tgato rojo.\ncaf\xe9.\tcaf\xe9.\n")
    with pytest.raises(DataError, match=r"train\.tsv:2: not valid UTF-8; run `nmt prepare` again"):
        list(PreparedData.load(data).iter_pairs("train"))


def test_a_split_file_that_is_a_fifo_is_refused_at_once(tmp_path: Path, tiny_data: Path) -> None:
    data = Path(shutil.copytree(tiny_data, tmp_path / "data"))
    (data / "valid.tsv").unlink()
    os.mkfifo(data / "valid.tsv")
    with pytest.raises(DataError, match=r"valid\.tsv: not a regular file"):
        list(PreparedData(data, {}).iter_pairs("valid"))


# --------------------------------------------------------------------------------------------------
# --sample: pairs drawn at random from the whole corpus


def split_pairs(folder: Path) -> set[str]:
    return {line for split in ("train", "valid", "test") for line in (folder / f"{split}.tsv").open()}


def sorted_corpus(tmp_path: Path, n: int = 200) -> Path:
    """An anki-like file sorted by length: pair i has i + 1 words a side."""
    lines = [f"{'go ' * (i % 40 + 1)}{i}.\t{'ve ' * (i % 40 + 1)}{i}." for i in range(n)]
    lines.sort(key=len)
    return write(tmp_path / "sorted.txt", "\n".join(lines) + "\n")


def test_sample_draws_n_pairs_from_the_whole_file(tmp_path: Path) -> None:
    path = sorted_corpus(tmp_path)
    manifest = prepare(path, tmp_path / "out", small_split(sample=40, max_words=100))
    assert manifest["counts"]["read"] == 200 and manifest["counts"]["kept"] == 40
    assert manifest["dropped"]["not_sampled"] == 160
    assert manifest["settings"]["sample"] == 40
    kept = split_pairs(tmp_path / "out")
    assert len(kept) == 40
    # Not the first 40 of a file sorted by length: the sample reaches its long half too.
    longest = max(len(line.split("\t")[0].split()) for line in kept)
    first = prepare(path, tmp_path / "first", small_split(limit=40, max_words=100))
    assert first["counts"]["kept"] == 40
    assert longest > max(len(line.split("\t")[0].split()) for line in split_pairs(tmp_path / "first"))


def test_sample_is_reproducible_with_its_seed(tmp_path: Path) -> None:
    path = sorted_corpus(tmp_path)
    prepare(path, tmp_path / "a", small_split(sample=30, seed=5, max_words=100))
    prepare(path, tmp_path / "b", small_split(sample=30, seed=5, max_words=100))
    prepare(path, tmp_path / "c", small_split(sample=30, seed=6, max_words=100))
    assert split_pairs(tmp_path / "a") == split_pairs(tmp_path / "b")
    assert split_pairs(tmp_path / "a") != split_pairs(tmp_path / "c")


def test_sample_larger_than_the_corpus_keeps_everything(tmp_path: Path) -> None:
    path = sorted_corpus(tmp_path, 50)
    manifest = prepare(path, tmp_path / "out", small_split(sample=1000, max_words=100))
    assert manifest["counts"]["kept"] == 50 and "not_sampled" not in manifest["dropped"]


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [({"sample": 0}, "sample"), ({"sample": 5, "limit": 5}, "exclude each other")],
)
def test_sample_is_validated(settings: dict, fragment: str) -> None:
    from nmtcli.errors import ConfigError

    with pytest.raises(ConfigError, match=fragment):
        PrepareConfig(**settings)


def test_prepare_sample_on_the_command_line(tmp_path: Path) -> None:
    from test_cli import assert_error, assert_ok, nmt

    path = sorted_corpus(tmp_path)
    result = nmt("prepare", path, "-o", tmp_path / "out", "--sample", "30", "--max-words", "100", "--json")
    assert_ok(result)
    assert json.loads(result.stdout)["counts"]["kept"] == 30
    assert_error(
        nmt("prepare", path, "-o", tmp_path / "x", "--sample", "3", "--limit", "3"), "--limit", "--sample"
    )
