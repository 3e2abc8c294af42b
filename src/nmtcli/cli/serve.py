"""``nmt serve [RUN]``: the HTTP JSON API of ``nmtcli.serve``, keeping one model loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError
from ..serve import DEFAULT_HOST, DEFAULT_PORT, ServeLimits
from . import render
from .options import (
    BatchOpt,
    ComputeTypeOpt,
    EngineOpt,
    LengthPenaltyOpt,
    MaxLengthOpt,
    ModelOpt,
    QuietOpt,
    RunArg,
    WorkspaceOpt,
    one_run,
)

DEFAULTS = ServeLimits()  # the library owns the bounds' defaults


def serve(
    run: RunArg = None,
    model: ModelOpt = None,
    workspace: WorkspaceOpt = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; 0.0.0.0 opens the server to the network.")
    ] = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option("--port", "-p", help="TCP port; 0 picks a free one.", min=0, max=65535)
    ] = DEFAULT_PORT,
    engine: EngineOpt = "auto",
    compute_type: ComputeTypeOpt = "float32",
    max_lines: Annotated[
        int, typer.Option("--max-lines", help="Most lines per request.")
    ] = DEFAULTS.max_lines,
    max_chars: Annotated[
        int, typer.Option("--max-chars", help="Most characters per line.")
    ] = DEFAULTS.max_chars,
    max_body: Annotated[
        int, typer.Option("--max-body", help="Most bytes in a request body.")
    ] = DEFAULTS.max_body,
    max_beam_size: Annotated[
        int, typer.Option("--max-beam-size", help="Largest beam_size a request may ask for.")
    ] = DEFAULTS.max_beam_size,
    batch_window_ms: Annotated[
        float,
        typer.Option(
            "--batch-window-ms",
            help="How long the first request of a burst waits for others to decode with it (milliseconds).",
        ),
    ] = DEFAULTS.batch_window_ms,
    batch_size: BatchOpt = 64,
    max_length: MaxLengthOpt = None,
    beam_size: Annotated[
        int, typer.Option("--beam-size", help="Beam size of requests that do not choose one; 1 = greedy.")
    ] = 1,
    length_penalty: LengthPenaltyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Serve a model over HTTP: POST /translate, GET /health, and a form at /.

    POST /translate takes {"q": ["...", ...], "beam_size": K} and answers {"translations": [...]}.
    With NMT_API_KEY set, /translate needs the header 'Authorization: Bearer <key>'.
    """
    from ..config import DecodingConfig
    from ..serve import address, api_key_from_environment, check_installed, listen

    limits = ServeLimits(
        max_lines=max_lines,
        max_chars=max_chars,
        max_body=max_body,
        max_beam_size=max_beam_size,
        batch_window_ms=batch_window_ms,
    )
    if beam_size > max_beam_size:
        raise ConfigError(f"--beam-size {beam_size} is above --max-beam-size {max_beam_size}")
    decoding = DecodingConfig(batch_size, max_length, beam_size, length_penalty)
    api_key = api_key_from_environment()
    # Before TensorFlow loads: a wrong path fails at once.
    run_dir = one_run(run, model, workspace, None if quiet else render.notice)
    from ..engines import engine_for, open_translator

    engine = engine_for(run_dir, engine)  # a recurrent run on ctranslate2 fails before the port is taken
    check_installed()
    sock = listen(host, port)  # a taken port fails before the model loads, too
    try:
        with render.library_notices(quiet):
            translator = open_translator(run_dir, engine, compute_type)
        app = _app(translator, run_dir, limits, decoding, api_key)
        if not quiet:
            render.notice(
                f"serving {run_dir} on {address(sock)} "
                f"({'API key required' if api_key else 'no API key'}; Ctrl-C stops)"
            )
        from ..serve import run_server

        run_server(app, sock, log_level="warning" if quiet else "info", access_log=not quiet)
    finally:
        sock.close()


def _app(translator, run_dir: Path, limits, decoding, api_key: str | None):
    from ..run_folder import RunFolder
    from ..serve import create_app

    model = RunFolder(run_dir).config().model
    info = {"run": run_dir.name, "arch": model.arch, "level": model.level, "engine": translator.engine}
    return create_app(translator, limits, decoding, info, api_key)
