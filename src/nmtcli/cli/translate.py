"""``nmt translate``: one output line per input line, from arguments, a file or stdin."""

from __future__ import annotations

import contextlib
import itertools
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError
from . import render
from .options import (
    BatchOpt,
    BeamSizeOpt,
    Bf16DecodingOpt,
    ComputeTypeOpt,
    EngineOpt,
    LengthPenaltyOpt,
    MaxLengthOpt,
    ModelOpt,
    QuietOpt,
    WorkspaceOpt,
    one_run,
)

TTY_HINT = "reading sentences from the terminal, one per line; end with Ctrl-D"
MAX_ATTENTION_LINES = 100


def translate(
    sentences: Annotated[
        list[str] | None,
        typer.Argument(
            help="Sentences to translate \\[default: lines from --input or stdin].",
            show_default=False,
        ),
    ] = None,
    input: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "-i",
            help="Read sentences from this file, one per line.",
            show_default=False,
            readable=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write translations to this file \\[default: stdout].",
            show_default=False,
        ),
    ] = None,
    model: ModelOpt = None,
    workspace: WorkspaceOpt = None,
    batch_size: BatchOpt = 64,
    max_length: MaxLengthOpt = None,
    beam_size: BeamSizeOpt = 1,
    length_penalty: LengthPenaltyOpt = None,
    bf16_output: Bf16DecodingOpt = False,
    n_best: Annotated[
        int,
        typer.Option(
            "--n-best",
            help="Print the K best translations of each line on its line, tab-separated (beam search "
            "of at least K; ctranslate2 engine). \\[default: 1]",
            metavar="K",
            show_default=False,
        ),
    ] = 1,
    engine: EngineOpt = "auto",
    compute_type: ComputeTypeOpt = "float32",
    attention: Annotated[
        str | None,
        typer.Option(
            "--attention",
            help="Also draw where the model looked (transformer, gru-attention): FILE.png (.svg, .pdf; "
            "FILE-1.png, FILE-2.png ... for several lines), or - for a table on stderr.",
            metavar="FILE|-",
            show_default=False,
        ),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Translate sentences with greedy or beam search: exactly one output line per input line."""
    from ..config import DecodingConfig
    from ..workspace import check_output

    if sentences and input is not None:
        raise ConfigError("give sentences as arguments or with --input, not both")
    decoding = DecodingConfig(batch_size, max_length, beam_size, length_penalty, bf16_output)
    if input is not None and str(input) != "-":
        from ..corpus import check_readable  # numpy: only when there is a file to check

        check_readable(input, "input")
    check_output(output, [input], option="--output")
    if attention is not None and beam_size != 1:
        raise ConfigError("--attention shows greedy decoding; leave out --beam-size")
    if n_best < 1:
        raise ConfigError(f"--n-best must be at least 1; got {n_best}")
    if n_best > 1 and attention is not None:
        raise ConfigError("--attention shows greedy decoding; leave out --n-best")
    if n_best > 1 and beam_size == 1:  # --n-best K alone searches with a beam of K
        decoding = decoding.with_options(beam_size=n_best)
    # Before TensorFlow loads: a wrong path fails at once.
    run_dir = one_run(None, model, workspace, None if quiet else render.notice)
    chosen = _engine(run_dir, engine, attention is not None, n_best)
    interactive = not sentences and input is None and sys.stdin.isatty()
    if attention is not None:
        lines = _attention_lines(sentences, input, output, attention)
    else:
        lines = itertools.chain.from_iterable(_input_chunks(sentences, input, chunk=1024))
        if interactive and not quiet:
            render.notice(TTY_HINT)
    from ..engines import open_translator

    with render.library_notices(quiet):
        translator = open_translator(run_dir, chosen, compute_type)
    options = {"n_best": n_best} if n_best > 1 else {}
    results = translator.translate_stream(
        lines, decoding, attention=attention is not None, chunk_size=1 if interactive else 1024, **options
    )
    alignments, truncated = [], 0

    def translations():
        nonlocal truncated
        for result in results:
            truncated += result.truncated
            if result.alignment is not None:
                alignments.append(result.alignment)
            yield "\t".join(result.hypotheses or [result.translation]) + "\n"

    if output is None:
        for line in translations():
            sys.stdout.write(line)
            sys.stdout.flush()
    else:
        from ..files import atomic_open

        with atomic_open(output) as handle:
            handle.writelines(translations())
    if truncated:
        render.warn(
            f"{truncated} input line(s) longer than {translator.max_source_tokens} tokens "
            "were cut to that length"
        )
    if attention is not None:
        _draw_attention(alignments, attention, quiet)


def _engine(run_dir: Path, engine: str, attention: bool, n_best: int) -> str:
    """The engine to open: ``auto`` turns to tensorflow for attention pictures (theirs alone); n-best
    lists are the ctranslate2 engine's."""
    from ..engines import engine_for

    if attention and engine == "ctranslate2":
        raise ConfigError("--attention pictures come from the tensorflow engine; use --engine tensorflow")
    chosen = "tensorflow" if attention and engine == "auto" else engine_for(run_dir, engine)
    if n_best > 1 and chosen == "tensorflow":
        raise ConfigError(
            "--n-best needs the ctranslate2 engine (transformer models); tensorflow's beam search "
            "returns one translation"
        )
    return chosen


def _attention_lines(sentences, input, output, attention: str) -> list[str]:
    """``translate --attention``: the input lines, at most ``MAX_ATTENTION_LINES``, once the picture
    path is known to be writable."""
    from ..attention import check_picture_path
    from ..workspace import check_output

    if attention != "-":
        check_picture_path(attention)
        check_output(attention, [input, output], option="--attention")
    lines: list[str] = []
    for chunk in _input_chunks(sentences, input, chunk=MAX_ATTENTION_LINES + 1):
        lines += chunk
        if len(lines) > MAX_ATTENTION_LINES:  # stop reading: a huge input is not read to the end
            raise ConfigError(
                f"--attention draws at most {MAX_ATTENTION_LINES} lines; translate longer inputs without it"
            )
    return lines


def _draw_attention(alignments, attention: str, quiet: bool) -> None:
    """One picture (or table on stderr, for ``-``) per line."""
    from ..attention import heatmap_table, picture_paths, save_picture

    stderr = render.stderr_console(whole_tables=True)
    paths = picture_paths(attention, len(alignments)) if attention != "-" else [None] * len(alignments)
    for number, (alignment, path) in enumerate(zip(alignments, paths, strict=True), start=1):
        if alignment.empty:
            render.warn(f"line {number} is empty: no attention to draw")
        elif path is None:
            stderr.print(heatmap_table(alignment))
        else:
            save_picture(alignment, path)
            if not quiet:
                render.notice(f"attention of line {number} written to {path}")


def _input_chunks(sentences: list[str] | None, path: Path | None, chunk: int):
    """Lists of input lines: all arguments at once, or a file/stdin streamed in chunks.

    An interactive stdin is answered line by line.
    """
    from ..corpus import read_lines

    if sentences:
        yield list(sentences)
        return
    with contextlib.ExitStack() as stack:
        if path is not None and str(path) != "-":
            handle, name = stack.enter_context(open(path, "rb")), str(path)
        else:
            handle, name = sys.stdin.buffer, "<stdin>"
            if sys.stdin.isatty():
                chunk = 1
        batch: list[str] = []
        for _, line in read_lines(handle, name):
            batch.append(line)
            if len(batch) >= chunk:
                yield batch
                batch = []
        if batch:
            yield batch
