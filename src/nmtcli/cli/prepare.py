"""``nmt prepare``: read, clean and split a corpus, and build its vocabularies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from ..config import SUBWORD_TYPES, PrepareConfig
from . import render
from .options import JsonOpt, PresetOpt, QuietOpt, WorkspaceOpt, given

D = PrepareConfig()  # the defaults shown, read from the config so the two cannot drift
SETTINGS = [
    "format",
    "source_column",
    "target_column",
    "encoding",
    "on_bad_line",
    "limit",
    "sample",
    "reverse",
    "lowercase",
    "min_words",
    "max_words",
    "max_chars",
    "dedupe",
    "valid_size",
    "test_size",
    "seed",
    "max_vocab",
    "min_count",
    "subword_size",
    "subword_type",
    "joint_subwords",
    "subword_sample",
]


def prepare(
    ctx: typer.Context,
    corpus: Annotated[
        Path,
        typer.Argument(
            help="Corpus: anki/Tatoeba TSV (spa.txt), CSV with a header, or the source of aligned files; "
            "- reads stdin.",
            show_default=False,
            readable=False,
        ),
    ],
    target_file: Annotated[
        Path | None,
        typer.Argument(
            help="Target file, when CORPUS and it are aligned plain-text files.",
            show_default=False,
            readable=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Data folder to write \\[default: WORKSPACE/data].",
            show_default=False,
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    format: Annotated[
        Literal["auto", "tsv", "csv", "aligned"], typer.Option(help="Corpus format.")
    ] = D.format,
    source_column: Annotated[
        str | None,
        typer.Option(
            help="Source column: header name (CSV) or number counting from 1 \\[default: 1].",
            show_default=False,
        ),
    ] = None,
    target_column: Annotated[
        str | None,
        typer.Option(
            help="Target column: header name (CSV) or number counting from 1 \\[default: 2].",
            show_default=False,
        ),
    ] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of the corpus.")] = D.encoding,
    on_bad_line: Annotated[
        Literal["error", "warn", "skip"], typer.Option(help="What to do with a malformed line.")
    ] = D.on_bad_line,
    limit: Annotated[
        int | None,
        typer.Option(
            help="Read only the first N pairs of the file (anki files are sorted by length: the first "
            "pairs are the shortest); --sample draws pairs from the whole file.",
            show_default=False,
        ),
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(
            help="Keep N pairs drawn at random (with --seed) from the whole corpus, after cleaning.",
            show_default=False,
        ),
    ] = None,
    reverse: Annotated[
        bool, typer.Option(help="Swap the direction: translate column 2 into column 1.")
    ] = D.reverse,
    lowercase: Annotated[bool, typer.Option(help="Lower-case both sides.")] = D.lowercase,
    min_words: Annotated[
        int, typer.Option(help="Drop pairs with a side shorter than this (words).")
    ] = D.min_words,
    max_words: Annotated[
        int, typer.Option(help="Drop pairs with a side longer than this (words).")
    ] = D.max_words,
    max_chars: Annotated[
        int, typer.Option(help="Drop pairs with a side longer than this (characters).")
    ] = D.max_chars,
    dedupe: Annotated[bool, typer.Option(help="Drop exact duplicate pairs.")] = D.dedupe,
    valid_size: Annotated[
        float,
        typer.Option(help="Validation share of source sentences: a fraction below 1, or a count."),
    ] = D.valid_size,
    test_size: Annotated[
        float, typer.Option(help="Test share of source sentences: a fraction below 1, or a count.")
    ] = D.test_size,
    seed: Annotated[int, typer.Option(help="Seed of the shuffled split.")] = D.seed,
    max_vocab: Annotated[
        int,
        typer.Option(help="Largest vocabulary per side and level, specials included; 0 = no limit."),
    ] = D.max_vocab or 0,
    min_count: Annotated[
        int, typer.Option(help="Keep tokens seen at least this often in training data.")
    ] = D.min_count,
    subword_size: Annotated[
        int, typer.Option(help="Pieces per subword (SentencePiece) model, 256 byte pieces included.")
    ] = D.subword_size,
    subword_type: Annotated[
        Literal[SUBWORD_TYPES], typer.Option(help="Subword model: unigram or BPE.")
    ] = D.subword_type,
    joint_subwords: Annotated[
        bool, typer.Option(help="One subword model for both sides (--no-joint-subwords: one per side).")
    ] = D.joint_subwords,
    subword_sample: Annotated[
        int, typer.Option(help="Most training sentences the subword model learns from (both sides count).")
    ] = D.subword_sample,
    vocab_from: Annotated[
        Path | None,
        typer.Option(
            help="Encode with this run's vocabularies (its SentencePiece models at subword level) instead "
            "of building new ones, to fine-tune it with `nmt train --init-from RUN`.",
            show_default=False,
        ),
    ] = None,
    preset: PresetOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Read a parallel corpus, clean it, split train/valid/test, build word, char and subword vocabularies."""
    from ..corpus import prepare as prepare_corpus
    from ..presets import apply_preset
    from ..workspace import Workspace, resolve_model_dir

    config = apply_preset(preset, prepare=given(ctx, locals(), SETTINGS)).prepare
    ws = Workspace(workspace)
    vocabularies = None
    if vocab_from is not None:
        from ..fine_tuning import run_vocabularies

        vocabularies = run_vocabularies(resolve_model_dir(vocab_from, ws))
    output = output or ws.data_dir
    runs = ws.interrupted_runs_using(output)
    if runs:
        render.warn(
            f"{output} is the prepared data of the interrupted run{'s' if len(runs) > 1 else ''} "
            f"{', '.join(runs)}; `nmt train --resume` will continue on the data written now"
        )
    manifest = prepare_corpus(
        corpus, output, config, target_path=target_file, warn=render.notice, vocabularies=vocabularies
    )
    render.print_result(
        {"output": str(output), **manifest}, json_output, render.prepare_summary(manifest, output)
    )
