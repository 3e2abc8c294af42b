"""`nmt info`, the model card library, evaluation records and the `--plot-model` picture."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nmtcli.cli import app
from nmtcli.model_card import count_parameters, model_card, plot_model_requirements

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def nmt(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_error(result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nmt: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """A writable copy of the tiny GRU run."""
    return Path(shutil.copytree(tiny_run, tmp_path / tiny_run.name))


# --------------------------------------------------------------------------------------------------
# The card


@pytest.mark.parametrize("arch", ["gru-attention", "lstm"])
def test_info_json_matches_the_folder(tiny_run_factory, arch) -> None:
    run = tiny_run_factory(arch)
    result = nmt("info", run, "--json")
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    config, history = read(run / "config.json"), read(run / "history.json")
    manifest = read(run / "data-manifest.json")

    assert card["name"] == run.name and card["status"] == "complete"
    assert {k: card["model"][k] for k in config["model"]} == config["model"]
    assert card["training"] == config["training"]
    best = min(history, key=lambda row: (row["val_cross_entropy"], row["epoch"]))
    assert card["history"]["epochs"] == len(history)
    assert card["history"]["best_epoch"] == best["epoch"]
    assert card["history"]["best"]["val_cross_entropy"] == pytest.approx(best["val_cross_entropy"])
    assert card["history"]["perplexity"] == pytest.approx(best["val_perplexity"])
    assert card["history"]["best"]["val_perplexity"] == pytest.approx(best["val_perplexity"])
    assert card["history"]["train_seconds"] == pytest.approx(sum(r["seconds"] for r in history), abs=0.06)
    assert card["data"]["counts"] == manifest["counts"]
    assert card["data"]["corpus"] == manifest["corpus"]
    assert card["data"]["prepared"] == config["data"]
    assert card["versions"]["trained_with"] == {
        "nmtcli": config["nmtcli_version"],
        "keras": config["keras_version"],
    }
    assert set(card["versions"]["installed"]) == {"nmtcli", "tensorflow", "keras", "python"}
    assert card["evaluation"] == {} and card["model_picture"] is None

    import keras

    from nmtcli.run_folder import RunFolder

    assert card["model"]["parameters"] == RunFolder(run).load_model().count_params()
    assert card["versions"]["installed"]["keras"] == keras.__version__


def test_parameter_count_ignores_optimizer_state(tmp_path) -> None:
    from nmtcli.config import ModelConfig
    from nmtcli.models import build_model

    model = build_model(
        ModelConfig(
            arch="gru-attention",
            source_vocab_size=11,
            target_vocab_size=13,
            embedding_dim=4,
            units=6,
            dropout=0.2,
        )
    )
    model.build()
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp_path / "m.keras")
    assert count_parameters(tmp_path / "m.keras") == model.count_params()


def test_info_text_shows_the_card(tiny_run) -> None:
    result = nmt("info", tiny_run)
    assert result.exit_code == 0, result.output
    card = model_card(tiny_run)
    best = card["history"]["best"]
    for fragment in (
        f"Model card: {tiny_run.name}",
        "gru-attention",
        f"{card['model']['parameters']:,}",
        "best epoch",
        f"{card['history']['best_epoch']}: val cross-entropy {best['val_cross_entropy']:.4f}",
        f"{card['data']['counts']['train']} train",
        "tensorflow",
        "bf16 output layer where the CPU has it",  # the default training setting
    ):
        assert fragment in result.stdout, fragment
    assert result.stderr == ""


def test_info_on_a_run_that_has_not_finished_an_epoch(run_copy) -> None:
    for name in ("model.keras", "history.csv", "history.json"):
        (run_copy / name).unlink()
    (run_copy / "state.json").write_text('{"status": "running"}', encoding="utf-8")
    card = model_card(run_copy)
    assert card["status"] == "interrupted"  # its lock is free: nobody is training it
    assert card["model"]["parameters"] is None and card["history"] is None
    result = nmt("info", run_copy)
    assert result.exit_code == 0, result.output
    assert "none finished of 4" in result.stdout and "no model.keras yet" in result.stdout


def test_info_errors_are_one_line(tmp_path, run_copy) -> None:
    assert_one_error(nmt("info", tmp_path), "not an nmtcli model folder")
    assert_one_error(nmt("info", tmp_path / "nowhere"), "model folder not found")
    (run_copy / "model.keras").write_bytes(b"not a zip file")
    assert_one_error(nmt("info", run_copy), "model.keras: cannot read the weights")
    (run_copy / "config.json").write_text(
        '{"format_version": 1, "model": {"arch": "mamba"}}', encoding="utf-8"
    )
    assert_one_error(nmt("info", run_copy), "config.json", "invalid model configuration")
    (run_copy / "config.json").write_text("{", encoding="utf-8")
    assert_one_error(nmt("info", run_copy), "config.json: not valid JSON")


# --------------------------------------------------------------------------------------------------
# Evaluation records


def test_evaluate_records_scores_that_info_shows(run_copy) -> None:
    result = nmt("evaluate", "--model", run_copy, "--split", "valid", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    record = read(run_copy / "evaluation.json")["valid"]
    assert record["scores"] == printed["scores"] and record["perplexity"] == printed["perplexity"]
    assert record["nmtcli_signature"] == printed["nmtcli_signature"] and record["data"] == printed["data"]
    assert "nrefs:" in record["signatures"]["bleu"]

    card = json.loads(nmt("info", run_copy, "--json").stdout)
    assert card["evaluation"]["valid"]["scores"] == printed["scores"]
    text = nmt("info", run_copy).stdout
    assert f"BLEU {printed['scores']['bleu']:.2f}" in text and printed["nmtcli_signature"][:30] in text

    # A record file nmt cannot read is left as it is; the scores are still printed, with a warning.
    (run_copy / "evaluation.json").write_text("[damaged", encoding="utf-8")
    again = nmt("evaluate", "--model", run_copy, "--split", "valid", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["scores"] == printed["scores"]
    assert again.stderr.startswith("nmt: warning: scores not recorded") and "evaluation.json" in again.stderr
    assert (run_copy / "evaluation.json").read_text(encoding="utf-8") == "[damaged"


def test_an_unreadable_evaluation_record_is_kept_and_reported(tmp_path) -> None:
    from nmtcli.errors import ModelError
    from nmtcli.evaluation import EvaluationResult, record_evaluation

    result = EvaluationResult(
        sentences=2,
        references=2,
        scores={"bleu": 12.5},
        single_reference_scores={"bleu": 12.5},
        signatures={"bleu": "nrefs:1"},
        cross_entropy=1.0,
        perplexity=2.718,
        model="m",
        decoding={"method": "greedy", "max_length": "auto", "batch_size": 64},
    )
    record_evaluation(tmp_path, "test", result, "data/test.tsv")
    record_evaluation(tmp_path, "valid", result, "data/valid.tsv")
    assert set(read(tmp_path / "evaluation.json")) == {"test", "valid"}
    (tmp_path / "evaluation.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(ModelError, match="unreadable"):
        record_evaluation(tmp_path, "test", result, "data/test.tsv")
    assert (tmp_path / "evaluation.json").read_text(encoding="utf-8") == "{broken"


# --------------------------------------------------------------------------------------------------
# --plot-model


def test_plot_model_draws_the_layers_or_says_what_to_install(tiny_run, tmp_path) -> None:
    picture = tmp_path / "model.png"
    result = nmt("info", tiny_run, "--plot-model", picture)
    missing = plot_model_requirements()
    if missing:  # no pydot or no Graphviz here: the exact hint, and nothing written
        assert_one_error(result, missing.replace("`plot_model`", "--plot-model"))
        assert not picture.exists()
        return
    assert result.exit_code == 0, result.output
    assert f"model picture saved to {picture}" in result.stdout
    data = picture.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 500 and height > 500  # a graph of a dozen layers, not a single box


def test_plot_model_without_graphviz_says_what_to_install(tiny_run, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` program anywhere on PATH
    line = assert_one_error(nmt("info", tiny_run, "--plot-model", tmp_path / "m.png"), "Graphviz")
    assert "apt-get install graphviz" in line and "brew install graphviz" in line
    assert not (tmp_path / "m.png").exists()


def test_plot_model_without_pydot_says_what_to_install(tiny_run, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pydot", None)  # `import pydot` now fails
    line = assert_one_error(nmt("info", tiny_run, "--plot-model", tmp_path / "m.png"), "pydot")
    assert "pip install pydot" in line


def test_plot_model_refuses_an_unknown_picture_type(tiny_run, tmp_path) -> None:
    assert_one_error(nmt("info", tiny_run, "--plot-model", tmp_path / "m.gif"), ".png, .svg or .pdf")
