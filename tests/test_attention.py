"""Translator.attend and the attention pictures: the tiny GRU-attention model, real decoding and drawing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nmtcli.alignment import Alignment, display_token
from nmtcli.attention import (
    check_picture_path,
    heatmap_table,
    picture_paths,
    require_matplotlib,
    save_picture,
)
from nmtcli.cli import app
from nmtcli.errors import ConfigError, ModelError, NmtError
from nmtcli.vectorizers import END, JOINER

LINES = ["red cat.", "", "big small dog runs.", "dog.", "small blue cat eats the zebra."]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def translator(tiny_run):
    from nmtcli.translator import Translator

    return Translator.load(tiny_run)


@pytest.fixture(scope="module")
def alignments(translator) -> list[Alignment]:
    return translator.attend(LINES, batch_size=2)


def nmt(*args, input: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height in pixels, from the PNG header."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# --------------------------------------------------------------------------------------------------
# Translator.attend


def test_attend_translates_exactly_like_translate(translator, alignments) -> None:
    assert [a.translation for a in alignments] == translator.translate(LINES, batch_size=2)
    assert [a.translation for a in translator.attend(LINES)] == translator.translate(LINES)
    assert [a.source for a in alignments] == LINES


def test_weights_are_output_steps_by_source_tokens(translator, alignments) -> None:
    for alignment in alignments:
        if alignment.empty:
            continue
        assert alignment.source_tokens == translator.source.tokenizer.tokenize(alignment.source)
        assert alignment.weights.dtype == np.float32
        assert alignment.weights.shape == (len(alignment.target_tokens), len(alignment.source_tokens))
        # The tiny model ends every sentence well before the default length limit.
        assert alignment.target_tokens[-1] == END and END not in alignment.target_tokens[:-1]
        words = alignment.target_tokens[:-1]
        assert translator.target.tokenizer.detokenize(words) == alignment.translation


def test_each_row_sums_to_one_over_the_sentence_s_own_tokens(alignments) -> None:
    # LINES are decoded two at a time, so shorter sentences were padded: padding gets no weight.
    for alignment in alignments:
        if not alignment.empty:
            assert (alignment.weights >= 0).all()
            np.testing.assert_allclose(alignment.weights.sum(axis=1), 1.0, atol=1e-5)


def test_a_sentence_alone_gets_the_weights_it_gets_in_a_padded_batch(translator, alignments) -> None:
    alone = translator.attend(["dog."])[0]
    np.testing.assert_allclose(alone.weights, alignments[3].weights, atol=1e-5)


def test_blank_lines_give_empty_alignments(alignments, translator) -> None:
    blank = alignments[1]
    assert blank.empty and blank.translation == "" and blank.weights.shape == (0, 0)
    assert [a.empty for a in translator.attend(["  ", "dog."])] == [True, False]


def test_unknown_source_words_are_flagged(alignments) -> None:
    last = alignments[4]
    assert last.source_tokens[-2:] == ["zebra", JOINER + "."]
    assert last.unknown == [token in ("the", "zebra") for token in last.source_tokens]


def test_max_length_limits_the_rows(translator) -> None:
    (alignment,) = translator.attend(["big small dog runs."], max_length=1)
    assert len(alignment.target_tokens) == 1
    assert alignment.weights.shape == (1, 5)


def test_an_lstm_model_has_no_attention(tiny_run_factory) -> None:
    from nmtcli.translator import Translator

    lstm = Translator.load(tiny_run_factory("lstm"))
    with pytest.raises(ModelError, match="lstm model has no attention.*`arch` transformer or gru-attention"):
        lstm.attend(["red cat."])


# --------------------------------------------------------------------------------------------------
# Labels, file names, pictures


def test_labels_drop_joiner_marks_and_show_spaces() -> None:
    assert display_token("\u00bf" + JOINER) == "\u00bf"
    assert display_token(JOINER + "?") == "?"
    assert display_token("word") == "word"
    assert display_token(" ") == "\u2423"


def test_one_picture_keeps_its_name_several_are_numbered(tmp_path) -> None:
    assert picture_paths(tmp_path / "a.png", 1) == [tmp_path / "a.png"]
    assert picture_paths(tmp_path / "a.png", 3) == [tmp_path / f"a-{i}.png" for i in (1, 2, 3)]


def test_only_known_picture_formats_are_accepted(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"\.png"):
        check_picture_path(tmp_path / "a.jpg")
    check_picture_path(tmp_path / "a.PNG")


def test_missing_matplotlib_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import matplotlib` sees when absent
    with pytest.raises(NmtError, match=r"pip install 'nmtcli\[plot\]'"):
        require_matplotlib()


def test_save_picture_writes_a_png_that_grows_with_the_sentence(tmp_path, alignments) -> None:
    short, long = tmp_path / "short.png", tmp_path / "sub" / "long.png"
    save_picture(alignments[3], short)  # dog. -> 2 source tokens
    save_picture(alignments[4], long)  # 7 source tokens
    (short_width, short_height), (long_width, _) = png_size(short), png_size(long)
    assert long_width > short_width and short_height > 300
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["long.png", "short.png"]


def test_save_picture_svg_holds_the_tokens(tmp_path, alignments) -> None:
    path = save_picture(alignments[0], tmp_path / "a.svg")
    svg = path.read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg


def test_an_empty_alignment_is_not_drawn(tmp_path, alignments) -> None:
    with pytest.raises(NmtError, match="empty"):
        save_picture(alignments[1], tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()


def test_heatmap_table_lists_tokens_and_percentages(alignments) -> None:
    from rich.console import Console

    console = Console(width=200, record=True, file=open("/dev/null", "w"), color_system=None)  # noqa: SIM115
    console.print(heatmap_table(alignments[4]))
    text = console.export_text()
    for token in ("small", "blue", "cat", "eats", "the*", "zebra*", END, "* unknown to the model"):
        assert token in text, token
    first_row = next(
        line for line in text.splitlines() if line.strip().startswith(alignments[4].target_labels[0])
    )
    percentages = [int(cell) for cell in first_row.split()[1:] if cell.isdigit()]
    assert 95 <= sum(percentages) <= 105  # rounded shares of 100 %


def test_the_table_prints_sentences_as_typed_not_as_markup(translator) -> None:
    from rich.console import Console

    (alignment,) = translator.attend(["[b]red[/x] cat."])
    console = Console(width=200, record=True, file=open("/dev/null", "w"), color_system=None)  # noqa: SIM115
    console.print(heatmap_table(alignment))
    assert "[b]red[/x] cat." in console.export_text()


# --------------------------------------------------------------------------------------------------
# nmt translate --attention


def test_cli_writes_one_picture_for_one_sentence(tmp_path, tiny_run, translator) -> None:
    picture = tmp_path / "pics" / "heat.png"
    result = nmt("translate", "-m", tiny_run, "--attention", picture, "big small dog runs.")
    assert result.exit_code == 0, result.output
    assert result.stdout == translator.translate(["big small dog runs."])[0] + "\n"
    png_size(picture)
    assert result.stderr == f"nmt: attention of line 1 written to {picture}\n"


def test_cli_numbers_pictures_by_line_and_skips_blank_lines(tmp_path, tiny_run, translator) -> None:
    lines = ["red cat.", "", "dog."]
    result = nmt(
        "translate", "-m", tiny_run, "--attention", tmp_path / "heat.png", "-q", input="\n".join(lines)
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.split("\n")[:-1] == translator.translate(lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heat-1.png", "heat-3.png"]
    assert result.stderr == "nmt: warning: line 2 is empty: no attention to draw\n"  # -q keeps warnings


def test_cli_attention_dash_prints_a_table_on_stderr_and_only_translations_on_stdout(
    tiny_run, translator
) -> None:
    lines = ["red cat.", "big dog runs."]
    result = nmt("translate", "-m", tiny_run, "--attention", "-", *lines)
    assert result.exit_code == 0, result.output
    assert result.stdout.split("\n")[:-1] == translator.translate(lines)
    for token in ("red", "cat", "big", "dog", "runs", END):
        assert token in result.stderr, token
    assert result.stderr.count("\u2192 ") == 2  # one table per sentence


def test_cli_attention_with_an_output_file(tmp_path, tiny_run, translator) -> None:
    result = nmt("translate", "-m", tiny_run, "--attention", "-", "-o", tmp_path / "out.txt", "dog.")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == translator.translate(["dog."])[0] + "\n"


def assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nmt: error: ") and fragment in lines[0], result.stderr


def test_cli_refuses_an_lstm_model_in_one_line(tmp_path, tiny_run_factory) -> None:
    result = nmt("translate", "-m", tiny_run_factory("lstm"), "--attention", tmp_path / "a.png", "red cat.")
    assert_one_line_error(result, "has no attention")
    assert not list(tmp_path.iterdir())


def test_cli_refuses_an_unknown_picture_format(tmp_path, tiny_run) -> None:
    result = nmt("translate", "-m", tiny_run, "--attention", tmp_path / "a.jpg", "red cat.")
    assert_one_line_error(result, "--attention")


def test_cli_refuses_too_many_lines(tmp_path, tiny_run) -> None:
    result = nmt("translate", "-m", tiny_run, "--attention", tmp_path / "a.png", input="dog.\n" * 101)
    assert_one_line_error(result, "at most 100 lines")
    assert not list(tmp_path.iterdir())


def test_the_stream_carries_the_alignments_of_attend(translator) -> None:
    streamed = list(translator.translate_stream(iter(LINES), attention=True, batch_size=2, chunk_size=2))
    attended = translator.attend(LINES, batch_size=2)
    assert [r.translation for r in streamed] == [a.translation for a in attended]
    for result, alignment in zip(streamed, attended, strict=True):
        assert result.alignment.target_tokens == alignment.target_tokens
        np.testing.assert_allclose(result.alignment.weights, alignment.weights, atol=1e-6)
    with pytest.raises(ConfigError, match="beam_size"):
        next(translator.translate_stream(LINES, attention=True, beam_size=2))
