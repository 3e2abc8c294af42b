"""The `nmt` command: a thin layer that parses options, calls the library and prints.

This module assembles the commands (one module each) and turns errors into exit codes in one place,
``NmtGroup``: ``NmtError`` and ``OSError`` become one line on stderr and exit code 1 (``NMT_DEBUG=1``
shows the traceback), usage errors exit 2, Ctrl-C 130. TensorFlow is imported only inside the
commands that need it, after every path has been checked, so ``nmt --help`` and a mistyped path
answer at once.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

try:  # recent Typer releases carry their own copy of Click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older Typer on Click
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from .. import __version__
from ..errors import NmtError
from . import evaluate, export, info, plot, prepare, runs, serve, train, translate

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _fail(message: str, code: int = EXIT_ERROR) -> None:
    typer.echo(f"nmt: error: {message}", err=True)
    raise typer.Exit(code)


# Library argument names that the commands spell differently.
LIBRARY_NAMES = {"run_dir": "output", "data_dir": "data"}


def _command_flags(group: TyperGroup, ctx) -> dict[str, str]:
    """Setting name -> flag for the options of the command being run (its longest spelling), for
    ``NmtError.for_command_line``."""
    command = group.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None
    flags = {}
    for param in command.params if command is not None else []:
        long_names = [opt for opt in param.opts if opt.startswith("--")]
        if long_names and param.name:
            flags[param.name] = max(long_names, key=len)
    for library_name, option in LIBRARY_NAMES.items():
        if option in flags:
            flags.setdefault(library_name, flags[option])
    return flags


class NmtGroup(TyperGroup):
    """Maps the project's errors to one line on stderr and a non-zero exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:
            # Typer's rich help prints itself while the error is made; a plain one only returns text.
            text = exc.format_message()
            if text.strip():
                typer.echo(text)
            sys.exit(EXIT_USAGE)
        except UsageError as exc:
            # A value of the wrong type, an unknown option, a missing argument: one line, not a box.
            command = exc.ctx.command_path if exc.ctx else "nmt"
            message = exc.format_message().replace("Value error, ", "")  # pydantic's words, not ours
            typer.echo(f"nmt: error: {message} (see '{command} --help')", err=True)
            sys.exit(EXIT_USAGE)
        except ClickException as exc:
            typer.echo(f"nmt: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("nmt: aborted", err=True)
            sys.exit(EXIT_ERROR)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NmtError as exc:
            if os.environ.get("NMT_DEBUG"):
                raise
            _fail(exc.for_command_line(_command_flags(self, ctx)))
        except OSError as exc:
            if os.environ.get("NMT_DEBUG"):
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{where}{exc.strerror or exc}")
        except KeyboardInterrupt as exc:
            from ..interrupts import exit_now

            exit_now(exc)  # ends the process when main() installed the signal handlers
            typer.echo("nmt: interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None


app = typer.Typer(
    cls=NmtGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Train and run neural machine translation models on your own parallel corpus.\n\n"
    "Quick start: nmt prepare spa.txt && nmt train && nmt evaluate && echo 'Go.' | nmt translate",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nmtcli {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    """Train and run neural machine translation models on your own parallel corpus."""


app.command()(prepare.prepare)
app.command()(train.train)
app.command()(evaluate.evaluate)
app.command()(translate.translate)
app.command("export")(export.export_model)
app.command()(plot.plot)
app.command()(info.info)
app.command()(runs.runs)
app.command()(serve.serve)


def main() -> None:
    from ..interrupts import install

    install()  # Ctrl-C and SIGTERM end a command within seconds, whatever TensorFlow is doing
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
