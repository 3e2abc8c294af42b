"""Scripting conventions: --json gives only JSON on stdout, --quiet leaves stderr empty on success,
documented exit codes, shell completion."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import write_tsv
from nmtcli.cli import app

SPLIT = ["--valid-size", "10", "--test-size", "10", "--seed", "1"]
TINY_TRAIN = ["--arch", "gru-attention", "--level", "word", "--embedding-dim", "8", "--units", "8"]
TINY_TRAIN += ["--epochs", "1"]
TINY_TRAIN += ["--batch-size", "32", "--patience", "0"]
NMT = shutil.which("nmt", path=str(Path(sys.executable).parent)) or "nmt"


def nmt(*args, input: str | None = None, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input, env=env, prog_name="nmt")


def assert_quiet_success(result) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert result.stderr == ""


# --------------------------------------------------------------------------------------------------
# --quiet and --json, command by command


def test_prepare_quiet_json(tmp_path, tiny_corpus, tiny_pairs) -> None:
    result = nmt("prepare", tiny_corpus, "-o", tmp_path / "data", *SPLIT, "--json", "--quiet")
    assert_quiet_success(result)
    assert json.loads(result.stdout)["counts"]["kept"] == len(tiny_pairs)


def test_prepare_quiet_still_prints_the_table_on_stdout(tmp_path, tiny_corpus) -> None:
    result = nmt("prepare", tiny_corpus, "-o", tmp_path / "data", *SPLIT, "-q")
    assert_quiet_success(result)
    assert "pairs kept" in result.stdout


def test_prepare_quiet_keeps_warnings(tmp_path, tiny_pairs) -> None:
    corpus = tmp_path / "corpus.tsv"
    write_tsv(corpus, tiny_pairs)
    with open(corpus, "a", encoding="utf-8") as handle:
        handle.write("a line without a tab\n")
    result = nmt("prepare", corpus, "-o", tmp_path / "data", *SPLIT, "--on-bad-line", "warn", "-q", "--json")
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)
    assert result.stderr.startswith("nmt: warning: ") and len(result.stderr.splitlines()) == 1


def test_train_quiet_json(tmp_path, tiny_data) -> None:
    result = nmt("train", "-d", tiny_data, "-o", tmp_path / "run", *TINY_TRAIN, "--json", "--quiet")
    assert_quiet_success(result)
    summary = json.loads(result.stdout)
    assert summary["run"] == str(tmp_path / "run") and summary["epochs"] == 1
    assert (tmp_path / "run" / "model.keras").is_file()


def test_evaluate_quiet_json(tiny_run) -> None:
    result = nmt("evaluate", "-m", tiny_run, "--json", "-q")
    assert_quiet_success(result)
    assert set(json.loads(result.stdout)["scores"]) == {"bleu", "chrf"}


def test_evaluate_quiet_table(tiny_run) -> None:
    result = nmt("evaluate", "-m", tiny_run, "-q")
    assert_quiet_success(result)
    assert "BLEU" in result.stdout


def test_translate_quiet(tiny_run) -> None:
    result = nmt("translate", "-m", tiny_run, "-q", input="red cat.\ndog.\n")
    assert_quiet_success(result)
    assert len(result.stdout.splitlines()) == 2


def test_a_real_process_prints_only_json_on_stdout_and_nothing_on_stderr(tiny_run, tmp_path) -> None:
    # In a child process, so that anything TensorFlow writes straight to file descriptors 1 and 2
    # (C++ start-up notices) would show too; CliRunner only sees Python's sys.stdout and sys.stderr.
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "NMT_DEBUG")}
    result = subprocess.run(
        [NMT, "evaluate", "-m", str(tiny_run), "--json", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert json.loads(result.stdout)["sentences"] == 10


# --------------------------------------------------------------------------------------------------
# Exit codes: 0 ok, 1 error, 2 usage, 130 interrupted (the last is tested in test_cli.py)


def test_no_command_shows_help_once_and_exits_2() -> None:
    result = nmt()
    assert result.exit_code == 2
    assert result.stdout.count("Usage") == 1 and "translate" in result.stdout
    assert result.stdout.strip() == nmt("--help").stdout.strip()


def test_a_real_bare_nmt_prints_the_help_once(tmp_path) -> None:
    result = subprocess.run([NMT], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout.count("Usage") == 1 and result.stderr == ""


@pytest.mark.parametrize(
    "args",
    [["translate", "--no-such-option"], ["evaluate", "--batch-size", "many"], ["no-such-command"]],
)
def test_usage_errors_exit_2(args) -> None:
    result = nmt(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("nmt: error: ") and len(result.stderr.splitlines()) == 1


def test_errors_exit_1(tmp_path) -> None:
    result = nmt("translate", "-w", tmp_path / "empty-workspace", "red cat.")
    assert result.exit_code == 1
    assert result.stderr.startswith("nmt: error: ")


# --------------------------------------------------------------------------------------------------
# Shell completion


def test_completion_script_for_bash(monkeypatch) -> None:
    # Typer finds the shell by walking up the process tree (shellingham), which finds none when
    # pytest's parent is not a shell (`bash -c '... && pytest'` execs pytest): say it is bash.
    import typer.completion

    monkeypatch.setattr(typer.completion, "_get_shell_name", lambda: "bash")
    result = nmt("--show-completion")
    assert result.exit_code == 0, result.output
    assert "_NMT_COMPLETE=complete_bash" in result.stdout and "complete " in result.stdout


@pytest.mark.parametrize(
    ("words", "expected"),
    [("nmt tr", ["train", "translate"]), ("nmt translate --att", ["--attention"])],
)
def test_completion_of_commands_and_options(words, expected) -> None:
    env = {"_NMT_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
    result = nmt(env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == expected
