"""The `nmt` command line, driven in-process with Typer's CliRunner.

Every command gets ``--workspace`` explicitly, so nothing depends on the working directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nmtcli.cli import app

TINY_TRAIN = [
    "--arch",
    "lstm",
    "--level",
    "word",
    "--embedding-dim",
    "8",
    "--units",
    "16",
    "--epochs",
    "2",
    "--batch-size",
    "16",
    "--learning-rate",
    "0.01",
    "--patience",
    "0",
]
SPLIT = ["--valid-size", "10", "--test-size", "10", "--seed", "1"]


def nmt(*args, input: str | bytes | None = None):
    """Run ``nmt ARGS`` in-process; stdout and stderr come back separately."""
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def assert_ok(result) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"


def assert_error(result, *fragments: str) -> str:
    """Exit code 1 from the error handler: one line on stderr, nothing on stdout, no traceback."""
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an uncaught error
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nmt: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert result.stdout == ""
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_corpus) -> dict:
    """A workspace where `nmt prepare` and `nmt train --json` ran; the train summary, parsed."""
    workspace = tmp_path_factory.mktemp("cli") / "ws"
    assert_ok(nmt("prepare", tiny_corpus, "--workspace", workspace, *SPLIT))
    result = nmt("train", "--workspace", workspace, *TINY_TRAIN, "--json")
    assert_ok(result)
    summary = json.loads(result.stdout)
    summary["workspace"] = workspace
    summary["stderr"] = result.stderr
    return summary


@pytest.fixture(scope="module")
def workspace(trained) -> Path:
    return trained["workspace"]


@pytest.fixture(scope="module")
def run_dir(trained) -> Path:
    return Path(trained["run"])


@pytest.fixture(scope="module")
def library_translations(run_dir):
    """What the library says for given lines, to compare the command's output with."""
    from nmtcli.translator import Translator

    translator = Translator.load(run_dir)
    return translator.translate


# --------------------------------------------------------------------------------------------------
# Help and version


def test_help_lists_the_commands() -> None:
    result = nmt("--help")
    assert_ok(result)
    for command in ("prepare", "train", "evaluate", "translate"):
        assert command in result.stdout
    for command in ("prepare", "train", "evaluate", "translate"):
        assert_ok(nmt(command, "--help"))


def test_version() -> None:
    from nmtcli import __version__

    result = nmt("--version")
    assert_ok(result)
    assert result.stdout.strip() == f"nmtcli {__version__}"


# --------------------------------------------------------------------------------------------------
# prepare


def test_prepare_prints_a_summary_and_writes_the_data_folder(tmp_path, tiny_corpus, tiny_pairs) -> None:
    workspace = tmp_path / "ws"
    result = nmt("prepare", tiny_corpus, "--workspace", workspace, *SPLIT)
    assert_ok(result)
    assert "pairs read" in result.stdout and "pairs kept" in result.stdout
    assert str(len(tiny_pairs)) in result.stdout
    assert "word vocab source / target" in result.stdout
    data = workspace / "data"
    for name in (
        "train.tsv",
        "valid.tsv",
        "test.tsv",
        "manifest.json",
        "vocab/source.word.txt",
        "vocab/target.char.txt",
    ):
        assert (data / name).is_file(), name
    rows = sum(
        len((data / f"{s}.tsv").read_text(encoding="utf-8").splitlines()) for s in ("train", "valid", "test")
    )
    assert rows == len(tiny_pairs)


def test_prepare_json_is_valid_json(tmp_path, tiny_corpus, tiny_pairs) -> None:
    out = tmp_path / "elsewhere"
    result = nmt("prepare", tiny_corpus, "--workspace", tmp_path / "ws", "--output", out, *SPLIT, "--json")
    assert_ok(result)
    manifest = json.loads(result.stdout)
    assert manifest["output"] == str(out)
    assert manifest["counts"]["read"] == manifest["counts"]["kept"] == len(tiny_pairs)
    assert manifest["counts"]["valid_sources"] == manifest["counts"]["test_sources"] == 10
    assert (out / "manifest.json").is_file()
    assert not (tmp_path / "ws").exists()


# --------------------------------------------------------------------------------------------------
# train and evaluate


def test_train_writes_a_run_and_reports_progress_on_stderr(trained, workspace, run_dir) -> None:
    assert run_dir.parent == workspace / "runs"
    assert (run_dir / "model.keras").is_file()
    assert (workspace / "runs" / "LATEST").read_text(encoding="utf-8").strip() == run_dir.name
    assert trained["epochs"] == 2 and trained["best_epoch"] in (1, 2)
    assert trained["parameters"] > 0
    assert "epoch 1/2" in trained["stderr"] and "epoch 2/2" in trained["stderr"]


def test_evaluate_json(workspace, run_dir) -> None:
    result = nmt("evaluate", "--workspace", workspace, "--json")
    assert_ok(result)
    scores = json.loads(result.stdout)
    assert set(scores["scores"]) == {"bleu", "chrf"}
    for name in ("bleu", "chrf"):
        assert 0 <= scores["scores"][name] <= 100
        assert "nrefs:" in scores["signatures"][name]
    assert scores["perplexity"] > 1
    assert scores["model"] == run_dir.name
    assert scores["sentences"] == 10
    assert scores["nmtcli_signature"].startswith("nmtcli:")


def test_evaluate_ter_prints_a_table_and_signatures(workspace) -> None:
    result = nmt("evaluate", "--workspace", workspace, "--ter")
    assert_ok(result)
    assert "TER" in result.stdout and "BLEU" not in result.stdout
    assert "perplexity" in result.stdout
    signature_lines = [line for line in result.stdout.splitlines() if line.startswith("ter:")]
    assert len(signature_lines) == 1 and "nrefs:" in signature_lines[0]
    assert any(line.startswith("nmtcli: nmtcli:") for line in result.stdout.splitlines())


def test_evaluate_own_files_with_two_references(tmp_path, workspace, run_dir) -> None:
    (tmp_path / "src.txt").write_text("red cat.\ndog.\n", encoding="utf-8")
    (tmp_path / "ref1.txt").write_text("gato rojo.\nperro.\n", encoding="utf-8")
    (tmp_path / "ref2.txt").write_text("rojo gato.\nel perro.\n", encoding="utf-8")
    hypotheses = tmp_path / "hyp.txt"
    result = nmt(
        "evaluate",
        "--workspace",
        workspace,
        "--model",
        run_dir,
        "--source",
        tmp_path / "src.txt",
        "--reference",
        tmp_path / "ref1.txt",
        "--reference",
        tmp_path / "ref2.txt",
        "--output",
        hypotheses,
        "--json",
    )
    assert_ok(result)
    scores = json.loads(result.stdout)
    assert (scores["sentences"], scores["references"]) == (2, 4)
    assert "nrefs:2" in scores["signatures"]["bleu"]
    assert len(hypotheses.read_text(encoding="utf-8").splitlines()) == 2


# --------------------------------------------------------------------------------------------------
# translate


LINES = ["red cat.", "", "big dog runs.", "dog."]


def test_translate_arguments(workspace, library_translations) -> None:
    result = nmt("translate", "--workspace", workspace, *LINES)
    assert_ok(result)
    assert result.stdout.endswith("\n")
    out = result.stdout.split("\n")[:-1]
    assert out == library_translations(LINES)
    assert out[1] == ""


def test_translate_input_file(tmp_path, workspace, library_translations) -> None:
    source = tmp_path / "in.txt"
    source.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    result = nmt("translate", "--workspace", workspace, "--input", source)
    assert_ok(result)
    assert result.stdout.split("\n")[:-1] == library_translations(LINES)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_translate_stdin_gives_one_line_per_input_line(workspace, library_translations, newline) -> None:
    result = nmt("translate", "--workspace", workspace, input=newline.join(LINES) + newline)
    assert_ok(result)
    assert result.stdout.split("\n")[:-1] == library_translations(LINES)


def test_translate_stdin_without_a_final_newline(workspace) -> None:
    result = nmt("translate", "--workspace", workspace, input="red cat.\n\ndog.")
    assert_ok(result)
    assert len(result.stdout.split("\n")[:-1]) == 3


def test_translate_output_file(tmp_path, workspace, run_dir, library_translations) -> None:
    target = tmp_path / "out" / "translations.txt"
    result = nmt(
        "translate", "--model", run_dir, "--workspace", tmp_path / "no-ws", "--output", target, *LINES
    )
    assert_ok(result)
    assert result.stdout == ""
    assert target.read_text(encoding="utf-8") == "".join(line + "\n" for line in library_translations(LINES))
    assert sorted(p.name for p in target.parent.iterdir()) == ["translations.txt"]


def test_translate_max_length(workspace) -> None:
    result = nmt("translate", "--workspace", workspace, "--max-length", "1", *LINES)
    assert_ok(result)
    for line in result.stdout.split("\n")[:-1]:
        assert len(line.split()) <= 1


def test_translate_beam_size(workspace, run_dir) -> None:
    from nmtcli.translator import Translator

    result = nmt("translate", "--workspace", workspace, "--beam-size", "4", "--length-penalty", "1.0", *LINES)
    assert_ok(result)
    expected = Translator.load(run_dir).translate(LINES, beam_size=4, length_penalty=1.0)
    assert result.stdout.split("\n")[:-1] == expected
    assert result.stderr == ""


def test_evaluate_beam_size_is_in_the_signature_and_json(workspace) -> None:
    result = nmt("evaluate", "--workspace", workspace, "--beam-size", "3", "--length-penalty", "0")
    assert_ok(result)
    [line] = [line for line in result.stdout.splitlines() if line.startswith("nmtcli: ")]
    assert "|decode:beam|beam:3|lenpen:0.0|" in line
    result = nmt("evaluate", "--workspace", workspace, "--beam-size", "3", "--json")
    assert_ok(result)
    decoding = json.loads(result.stdout)["decoding"]
    assert (decoding["method"], decoding["beam_size"], decoding["length_penalty"]) == ("beam", 3, 0.6)
    assert decoding["bf16_output"] is False


def test_translate_attention_decodes_with_the_same_bf16_setting(tiny_run) -> None:
    """--attention (a gru-attention model) prints the same translations as plain translate."""
    lines = ["red cat.", "big dog runs."]
    plain = nmt("translate", "--model", tiny_run, "--bf16-output", *lines)
    assert_ok(plain)
    attending = nmt("translate", "--model", tiny_run, "--bf16-output", "--attention", "-", *lines)
    assert attending.exit_code == 0, attending.output
    assert attending.stdout == plain.stdout and len(plain.stdout.splitlines()) == 2


def test_bf16_output_decoding_is_recorded_where_this_cpu_can_run_it(workspace) -> None:
    from nmtcli.models.bf16 import cpu_has_bf16

    result = nmt("evaluate", "--workspace", workspace, "--bf16-output", "--json")
    assert_ok(result)
    decoding = json.loads(result.stdout)["decoding"]
    assert decoding["bf16_output"] is cpu_has_bf16()
    assert ("|output:bf16|" in json.loads(result.stdout)["nmtcli_signature"]) is cpu_has_bf16()
    result = nmt("translate", "--workspace", workspace, "--bf16-output", "Go.", "I am hungry.")
    assert_ok(result)
    assert len(result.stdout.splitlines()) == 2


# --------------------------------------------------------------------------------------------------
# Errors: exit code 1, one line on stderr


def test_prepare_missing_corpus(tmp_path) -> None:
    assert_error(nmt("prepare", tmp_path / "missing.txt", "-w", tmp_path / "ws"), "not found")
    assert not (tmp_path / "ws" / "data").exists()


def test_prepare_corpus_is_a_directory(tmp_path) -> None:
    assert_error(nmt("prepare", tmp_path, "-w", tmp_path / "ws"), "directory")


def test_prepare_empty_corpus(tmp_path) -> None:
    corpus = tmp_path / "empty.tsv"
    corpus.write_bytes(b"")
    assert_error(nmt("prepare", corpus, "-w", tmp_path / "ws"), "empty")


def test_prepare_line_without_a_tab(tmp_path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("red cat.\tgato rojo.\nblue dog. perro azul.\n", encoding="utf-8")
    assert_error(nmt("prepare", corpus, "-w", tmp_path / "ws"), f"{corpus}:2", "--on-bad-line")


def test_prepare_latin1_bytes(tmp_path) -> None:
    corpus = tmp_path / "latin1.tsv"
    corpus.write_bytes("café.\tcafé.\n".encode("latin-1"))
    assert_error(nmt("prepare", corpus, "-w", tmp_path / "ws"), "UTF-8", "--encoding")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--limit", "0"], "--limit"),
        (["--valid-size", "0.99", "--test-size", "0.5"], "valid_size + test_size"),
        (["--max-words", "0"], "--max-words"),
    ],
)
def test_prepare_invalid_options(tmp_path, tiny_corpus, options, fragment) -> None:
    assert_error(nmt("prepare", tiny_corpus, "-w", tmp_path / "ws", *options), fragment)
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--epochs", "0"], "--epochs"),
        (["--units", "-1"], "--units"),
        (["--dropout", "1.0"], "--dropout"),
    ],
)
def test_train_invalid_options(tmp_path, options, fragment) -> None:
    assert_error(nmt("train", "-w", tmp_path / "ws", *options), fragment)
    assert not (tmp_path / "ws").exists()


def test_train_without_arch_or_level_trains_a_subword_transformer(tmp_path, tiny_data) -> None:
    """The default model end to end: `nmt train` given only sizes (small, to stay fast) trains a
    transformer on the subword vocabulary with the transformer's training defaults, and it translates."""
    from nmtcli.run_folder import RunFolder

    sizes = ["--units", "16", "--layers", "1", "--heads", "2", "--ff-dim", "32", "--dropout", "0"]
    result = nmt("train", "-d", tiny_data, "-w", tmp_path / "ws", *sizes, "--epochs", "1", "--json", "-q")
    assert_ok(result)
    run_dir = Path(json.loads(result.stdout)["run"])
    assert run_dir.name.endswith("-transformer-subword"), run_dir.name
    config = RunFolder(run_dir).config()
    assert (config.model.arch, config.model.level, config.model.units) == ("transformer", "subword", 16)
    # The prepared subword model is joint by default, so source, target and output share one matrix.
    assert config.model.shared_embeddings and config.model.source_vocab_size == config.model.target_vocab_size
    training = config.training
    assert (training.label_smoothing, training.warmup_steps, training.batch_tokens) == (0.1, 1000, 2500)
    info = CliRunner().invoke(app, ["info", str(run_dir)], env={"COLUMNS": "200"})
    assert_ok(info)
    assert "pre-norm Transformer" in info.stdout and "subword" in info.stdout
    # The card names a transformer's own sizes and its token batches.
    assert "16 / 1+1 / 2 / 32, dropout 0.0, one embedding matrix shared" in info.stdout
    assert "batches of ~2,500 tokens" in info.stdout and "warmup 1,000 steps" in info.stdout
    translated = nmt("translate", "-m", run_dir, "red cat.")
    assert_ok(translated)
    assert len(translated.stdout.splitlines()) == 1


def test_train_without_prepared_data(tmp_path) -> None:
    assert_error(nmt("train", "-w", tmp_path / "ws", *TINY_TRAIN), "nmt prepare")


def test_translate_without_a_trained_model(tmp_path) -> None:
    assert_error(nmt("translate", "-w", tmp_path / "ws", "red cat."), "no trained model")


def test_translate_model_folder_without_config(tmp_path) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    assert_error(nmt("translate", "--model", folder, "-w", tmp_path / "ws", "red cat."), "config.json")


def test_translate_model_folder_of_an_unknown_format(tmp_path, run_dir) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    config = json.loads((copy / "config.json").read_text(encoding="utf-8"))
    config["format_version"] = 999
    (copy / "config.json").write_text(json.dumps(config), encoding="utf-8")
    assert_error(nmt("translate", "--model", copy, "-w", tmp_path / "ws", "red cat."), "999")


def test_translate_batch_size_zero(workspace) -> None:
    assert_error(nmt("translate", "-w", workspace, "--batch-size", "0", "red cat."), "batch-size")


@pytest.mark.parametrize("command", ["translate", "evaluate"])
@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--beam-size", "0"], "--beam-size must be an integer >= 1 and <= 64"),
        (["--beam-size", "65"], "--beam-size"),
        (["--beam-size", "4", "--length-penalty", "-1"], "--length-penalty"),
        (["--length-penalty", "nan"], "--length-penalty"),
    ],
)
def test_out_of_range_beam_options(tmp_path, command, options, fragment) -> None:
    # Checked before TensorFlow loads or a model is looked for.
    assert_error(
        nmt(command, "-w", tmp_path / "ws", *options, *(["red cat."] if command == "translate" else [])),
        fragment,
    )


def test_a_beam_size_that_is_not_a_number_is_a_usage_error(tmp_path) -> None:
    result = nmt("translate", "-w", tmp_path / "ws", "--beam-size", "four", "red cat.")
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and "--beam-size" in result.stderr


def test_translate_arguments_and_input_file_together(tmp_path, workspace) -> None:
    source = tmp_path / "in.txt"
    source.write_text("dog.\n", encoding="utf-8")
    assert_error(nmt("translate", "-w", workspace, "--input", source, "red cat."), "not both")


def test_translate_missing_input_file(tmp_path, workspace) -> None:
    assert_error(nmt("translate", "-w", workspace, "--input", tmp_path / "nope.txt"), "not found")


def test_evaluate_source_without_reference(tmp_path, workspace) -> None:
    source = tmp_path / "src.txt"
    source.write_text("red cat.\n", encoding="utf-8")
    assert_error(nmt("evaluate", "-w", workspace, "--source", source), "--reference")


def test_evaluate_references_of_the_wrong_length(tmp_path, workspace) -> None:
    (tmp_path / "src.txt").write_text("red cat.\ndog.\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("gato rojo.\n", encoding="utf-8")
    assert_error(
        nmt(
            "evaluate", "-w", workspace, "--source", tmp_path / "src.txt", "--reference", tmp_path / "ref.txt"
        ),
        "1 lines",
    )


@pytest.mark.parametrize(
    ("args", "flag", "choices"),
    [
        (["train", "--arch", "rnn"], "--arch", ["lstm", "gru-attention"]),
        (["train", "--level", "byte"], "--level", ["word", "char"]),
        (["train", "--optimizer", "sgd"], "--optimizer", ["adam", "rmsprop"]),
        (["train", "--early-stopping-metric", "chrf"], "--early-stopping-metric", ["loss", "bleu"]),
        (["evaluate", "--split", "bogus"], "--split", ["test", "valid"]),
        (["prepare", "x.tsv", "--on-bad-line", "ignore"], "--on-bad-line", ["error", "warn", "skip"]),
    ],
)
def test_a_value_outside_the_choices_is_a_usage_error_naming_them(tmp_path, args, flag, choices) -> None:
    result = nmt(*args, "-w", tmp_path / "ws")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("nmt: error: ") and flag in line and "Value error" not in line
    for choice in choices:
        assert choice in line
    assert not (tmp_path / "ws").exists()


def test_evaluate_on_data_prepared_differently_is_refused(tmp_path, tiny_corpus, workspace) -> None:
    other = tmp_path / "other-data"
    assert_ok(
        nmt(
            "prepare",
            tiny_corpus,
            "--output",
            other,
            "--valid-size",
            "10",
            "--test-size",
            "10",
            "--seed",
            "2",
        )
    )
    assert_error(nmt("evaluate", "-w", workspace, "--data", other), "overlap")


def test_train_on_a_damaged_prepared_split_is_a_one_line_error(tmp_path, workspace) -> None:
    """The training split is read as a stream now: a bad line still stops `nmt train` with its place,
    and the runs already in the workspace stay as they were."""
    copy = tmp_path / "ws"
    shutil.copytree(workspace, copy)
    train_file = copy / "data" / "train.tsv"
    lines = train_file.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = "no tab here\n"
    train_file.write_text("".join(lines), encoding="utf-8")
    before = snapshot(copy / "runs")
    assert_error(nmt("train", "-w", copy, *TINY_TRAIN, "--no-resume"), f"{train_file}:3", "nmt prepare")
    after = snapshot(copy / "runs")
    assert {name: data for name, data in after.items() if name in before} == before


def test_train_into_a_non_empty_output_folder(tmp_path, workspace) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    assert_error(
        nmt("train", "-w", workspace, "--output", out, *TINY_TRAIN), "not empty", "choose another --output"
    )
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_translate_output_under_a_file_is_a_one_line_error(tmp_path, workspace) -> None:
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    assert_error(nmt("translate", "-w", workspace, "--output", tmp_path / "a-file" / "out.txt", "red cat."))


def test_translate_stdin_that_is_not_utf8(workspace) -> None:
    assert_error(nmt("translate", "-w", workspace, input=b"red cat.\ncaf\xe9.\n"), "<stdin>:2")


def test_translate_encoding_error_advises_only_options_translate_has(workspace) -> None:
    line = assert_error(nmt("translate", "-w", workspace, input=b"caf\xe9.\n"))
    help_text = nmt("translate", "--help").stdout
    assert "--batch-size" in help_text and "--max-length" in help_text
    advised = [word.strip(".,;()") for word in line.split() if word.startswith("--")]
    for option in advised:
        assert option in help_text, f"advises {option}, which translate does not accept"


def test_translate_empty_stdin_prints_nothing(workspace) -> None:
    result = nmt("translate", "-w", workspace, input="")
    assert_ok(result)
    assert result.stdout == ""


def test_an_interrupt_exits_130_with_a_short_notice(tmp_path, workspace, monkeypatch) -> None:
    import nmtcli.training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nmtcli.training, "train", interrupted)
    result = nmt("train", "-w", workspace, *TINY_TRAIN)
    assert result.exit_code == 130
    assert result.stderr.strip() == "nmt: interrupted"
    assert "Traceback" not in result.output


def test_evaluate_an_empty_source_file(tmp_path, workspace) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert_error(nmt("evaluate", "-w", workspace, "--source", empty, "--reference", empty))


def test_evaluate_an_empty_test_split(tmp_path, workspace) -> None:
    data = tmp_path / "data"
    shutil.copytree(workspace / "data", data)
    (data / "test.tsv").write_bytes(b"")  # same manifest, so the overlap check passes
    assert_error(nmt("evaluate", "-w", workspace, "--data", data), "test")


def test_prepare_does_not_delete_an_unrelated_output_folder(tmp_path, tiny_corpus) -> None:
    folder = tmp_path / "my-documents"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work", encoding="utf-8")
    result = nmt("prepare", tiny_corpus, "--output", folder, *SPLIT)
    assert (folder / "thesis.txt").is_file(), "prepare deleted a folder it did not write"
    assert_error(result, str(folder))


def test_prepare_does_not_delete_a_file_given_as_output(tmp_path, tiny_corpus) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me", encoding="utf-8")
    result = nmt("prepare", tiny_corpus, "--output", notes, *SPLIT)
    assert notes.is_file() and notes.read_text(encoding="utf-8") == "keep me"
    assert_error(result, str(notes))


def test_a_failed_prepare_leaves_the_data_folder_untouched(tmp_path, tiny_corpus) -> None:
    workspace = tmp_path / "ws"
    assert_ok(nmt("prepare", tiny_corpus, "-w", workspace, *SPLIT))
    before = snapshot(workspace)
    assert "data/manifest.json" in before

    latin1 = tmp_path / "latin1.tsv"
    latin1.write_bytes(b"red cat.\tgato rojo.\ncaf\xe9.\tcaf\xe9.\n")
    assert_error(nmt("prepare", latin1, "-w", workspace))
    # Fails only after reading everything: too few sentences for the requested splits.
    assert_error(
        nmt("prepare", tiny_corpus, "-w", workspace, "--valid-size", "60", "--test-size", "60"), "too few"
    )
    assert_error(nmt("prepare", tiny_corpus, "-w", workspace, "--limit", "0"))

    assert snapshot(workspace) == before
    assert sorted(p.name for p in workspace.iterdir()) == ["data"]


def test_nmt_train_defaults_are_the_config_defaults() -> None:
    """The command's option defaults are read from ModelConfig and TrainConfig, so the two cannot drift."""
    import dataclasses

    import typer.main

    from nmtcli.cli import app
    from nmtcli.config import ModelConfig, TrainConfig

    command = typer.main.get_command(app).commands["train"]
    defaults = {param.name: param.default for param in command.params}
    off_as_zero = {"clipnorm", "reduce_lr_factor", "max_minutes"}  # None in the config, 0 on the command line
    checked = 0
    for config in (ModelConfig, TrainConfig):
        for field in dataclasses.fields(config):
            if field.name in defaults and field.name != "distribute":
                expected = (
                    field.default if field.default is not None or field.name not in off_as_zero else 0.0
                )
                assert defaults[field.name] == expected, field.name
                checked += 1
    assert checked >= 20


# --------------------------------------------------------------------------------------------------
# Help: -h, choices, panels, one way to name a run


COMMANDS = ("prepare", "train", "evaluate", "translate", "export", "plot", "info")


@pytest.mark.parametrize("command", COMMANDS)
def test_dash_h_is_help_everywhere(command) -> None:
    short, long = nmt(command, "-h"), nmt(command, "--help")
    assert_ok(short)
    assert short.stdout == long.stdout and "Usage" in short.stdout


@pytest.mark.parametrize("command", ["evaluate", "translate", "export", "plot", "info"])
def test_every_command_that_takes_a_run_accepts_model_and_m(command) -> None:
    import typer.main

    params = typer.main.get_command(app).commands[command].params
    (option,) = [p for p in params if "--model" in p.opts]
    assert "-m" in option.opts


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("train", ["<lstm|gru-attention|transformer>", "<word|char|subword>", "<adam|rmsprop>"]),
        ("train", ["<loss|bleu>"]),
        ("train", ["<mirrored|multi-worker>", "<default|seed-000|seed-002|seed-003>"]),
        ("evaluate", ["<test|valid|train>"]),
        ("prepare", ["<auto|tsv|csv|aligned>", "<error|warn|skip>"]),
    ],
)
def test_choices_are_shown_in_the_help(command, shown) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "250"})
    assert_ok(result)
    for choices in shown:
        assert choices in result.stdout


def test_train_help_groups_its_options_in_panels() -> None:
    import typer.main

    from nmtcli.cli import train

    params = [p for p in typer.main.get_command(app).commands["train"].params if p.name != "help"]
    assert len(params) >= 30
    panels = {p.rich_help_panel for p in params}
    assert panels == {train.DATA, train.MODEL, train.TRAINING, train.QUALITY, train.SPEED, train.TRACKING}
    text = nmt("train", "--help").stdout
    for panel in panels:
        assert panel.split(":")[0] in text


def test_patience_help_names_the_early_stopping_metric() -> None:
    import typer.main

    (patience,) = [p for p in typer.main.get_command(app).commands["train"].params if p.name == "patience"]
    assert "--early-stopping-metric" in patience.help and "BLEU" in patience.help


def test_info_takes_the_run_as_an_argument_or_with_model(run_dir, tmp_path) -> None:
    by_argument = nmt("info", run_dir, "--json", "-w", tmp_path / "no-ws")
    by_option = nmt("info", "-m", run_dir, "--json", "-w", tmp_path / "no-ws")
    assert_ok(by_argument)
    assert_ok(by_option)
    assert json.loads(by_argument.stdout) == json.loads(by_option.stdout)
    assert_error(nmt("info", run_dir, "--model", run_dir), "not both")


def test_plot_takes_runs_with_model(run_dir, tmp_path) -> None:
    result = nmt("plot", "--model", run_dir, "--terminal", "-w", tmp_path / "no-ws")
    assert_ok(result)
    assert result.stdout == nmt("plot", run_dir, "--terminal", "-w", tmp_path / "no-ws").stdout


# --------------------------------------------------------------------------------------------------
# Failures come before TensorFlow loads


POISON = "raise ImportError('poisoned: TensorFlow was imported')\n"


def nmt_without_tensorflow(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    """``nmt ARGS`` in a child process where importing TensorFlow or Keras fails loudly."""
    for name in ("tensorflow", "keras"):
        (tmp_path / "poison" / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / "poison" / name / "__init__.py").write_text(POISON, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "poison")}
    env.pop("NMT_DEBUG", None)
    code = "import sys; from nmtcli.cli import main; sys.argv[0] = 'nmt'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["translate", "--model", "nope", "Go."], "nope: model folder not found"),
        (["translate", "Go."], "no trained model"),
        (["evaluate"], "no trained model"),
        (["evaluate", "--model", "nope"], "model folder not found"),
        (["export", "nope"], "model folder not found"),
        (["info", "--model", "nope"], "model folder not found"),
        (["train", "--epochs", "1"], "nmt prepare"),
    ],
)
def test_a_wrong_path_fails_before_tensorflow_is_imported(tmp_path, args, fragment) -> None:
    result = nmt_without_tensorflow(tmp_path, *args, "-w", tmp_path / "ws")
    assert result.returncode == 1, result.stderr
    assert "poisoned" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("nmt: error: ") and fragment in line, line


def test_evaluate_checks_the_data_before_tensorflow_is_imported(tmp_path, run_dir) -> None:
    result = nmt_without_tensorflow(tmp_path, "evaluate", "-m", run_dir, "--data", tmp_path / "no-data")
    assert result.returncode == 1, result.stderr
    assert "poisoned" not in result.stderr and "no prepared data" in result.stderr
    assert "--data" in result.stderr  # the library's `data` written as the flag


def test_the_poison_works(tmp_path, run_dir) -> None:
    """The check above would pass vacuously if TensorFlow could be imported anyway."""
    result = nmt_without_tensorflow(tmp_path, "translate", "-m", run_dir, "Go.")
    assert result.returncode != 0 and "poisoned" in result.stderr


# --------------------------------------------------------------------------------------------------
# Library errors speak in settings; the command line shows flags


def test_library_error_messages_name_no_flags() -> None:
    """No ``raise`` outside the cli package writes a ``--flag``; settings go in backquotes."""
    import ast
    import re

    import nmtcli

    package = Path(nmtcli.__file__).parent
    flag = re.compile(r"(?<![\w`-])--[a-z]")
    offenders = []
    for path in package.rglob("*.py"):
        if "cli" in path.relative_to(package).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise):
                for part in ast.walk(node):
                    text = part.value if isinstance(part, ast.Constant) else None
                    # A whole command in backquotes (`nmt train --mlflow`) is an example, not advice.
                    if isinstance(text, str) and flag.search(re.sub(r"`nmt [^`]*`", "", text)):
                        offenders.append(f"{path.name}:{node.lineno}: {text}")
    assert offenders == []


def test_for_command_line_writes_settings_as_the_flags_of_the_command() -> None:
    from nmtcli.errors import ConfigError, CorpusError

    error = CorpusError("x.tsv:2: bad line (pass `on_bad_line` skip to drop such lines); see `nmt prepare`")
    assert str(error).count("`on_bad_line`") == 1  # the library's own words
    assert (
        error.for_command_line()
        == "x.tsv:2: bad line (pass --on-bad-line skip to drop such lines); see `nmt prepare`"
    )
    assert error.for_command_line({"encoding": "--encoding"}) == str(error)  # not an option here: kept
    config = ConfigError("run_dir must name the run folder with `distribute` multi-worker", field="run_dir")
    flags = {"run_dir": "--output", "distribute": "--distribute"}
    assert (
        config.for_command_line(flags) == "--output must name the run folder with --distribute multi-worker"
    )


def test_a_library_error_shows_the_flag_of_the_running_command(tmp_path) -> None:
    corpus = tmp_path / "latin1.tsv"
    corpus.write_bytes("café.\tcafé.\n".encode("latin-1"))
    line = assert_error(nmt("prepare", corpus, "-w", tmp_path / "ws"), "--encoding")
    assert "`" not in line


def test_held_out_refuses_data_prepared_differently(tmp_path, tiny_corpus, workspace, run_dir) -> None:
    """The overlap check is the library's: a Python user gets it without the command line."""
    from nmtcli.corpus import PreparedData
    from nmtcli.errors import DataError

    trained_on = json.loads((run_dir / "data-manifest.json").read_text(encoding="utf-8"))
    same = PreparedData.load(workspace / "data")
    sources, references = same.held_out("test", trained_on, run_dir.name)
    assert len(sources) == len(references) == 10
    other = tmp_path / "other"
    assert_ok(nmt("prepare", tiny_corpus, "-o", other, *SPLIT[:-1], "2"))
    with pytest.raises(DataError, match="overlap"):
        PreparedData.load(other).held_out("test", trained_on, run_dir.name)
    assert PreparedData.load(other).held_out("test", None, run_dir.name)[0]  # no manifest: not checked


# --------------------------------------------------------------------------------------------------
# Interactive use


def test_translate_on_a_terminal_prints_a_hint_on_stderr(tmp_path, run_dir) -> None:
    import pty

    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NMT_DEBUG"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from nmtcli.cli import main; sys.argv[0] = 'nmt'; main()",
            "translate",
            "-m",
            str(run_dir),
        ],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
    )
    os.close(follower)
    os.write(leader, b"red cat.\n\x04")
    out, err = process.communicate(timeout=300)
    os.close(leader)
    assert process.returncode == 0, err
    from nmtcli.cli.translate import TTY_HINT

    assert err.decode().splitlines()[0] == f"nmt: {TTY_HINT}"
    assert len(out.decode().splitlines()) == 1


def test_translate_from_a_pipe_prints_no_hint(workspace) -> None:
    result = nmt("translate", "-w", workspace, input="red cat.\n")
    assert_ok(result)
    assert result.stderr == ""


def test_nmt_prepare_defaults_are_the_config_defaults() -> None:
    import dataclasses

    import typer.main

    from nmtcli.cli.options import ZERO_IS_NONE
    from nmtcli.config import PrepareConfig

    command = typer.main.get_command(app).commands["prepare"]
    defaults = {param.name: param.default for param in command.params}
    checked = 0
    for field in dataclasses.fields(PrepareConfig):
        if field.name in defaults:
            shown = defaults[field.name]
            assert (shown or None if field.name in ZERO_IS_NONE else shown) == field.default, field.name
            checked += 1
    assert checked == len(dataclasses.fields(PrepareConfig))
