"""RunFolder: the one owner of a run folder's files. Its formats (config, history with old column names,
status, evaluation records) and the checks a translator relies on when it loads a folder (cases 29-35
of docs/reliability.md: checksums, paths inside the folder, Keras safe mode)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import nmtcli.files
from nmtcli.config import ModelConfig, TrainConfig
from nmtcli.errors import ModelError
from nmtcli.files import sha256_file
from nmtcli.history import FIELDS, History
from nmtcli.run_folder import MODEL_FORMAT_VERSION, RunFolder
from test_reliability import EARLIER_OUTPUT, failed_translate, write


@pytest.fixture
def output(tmp_path) -> Path:
    """An earlier ``--output`` file, alone in its folder."""
    (tmp_path / "out").mkdir()
    return write(tmp_path / "out" / "translations.txt", EARLIER_OUTPUT)


@pytest.fixture
def model_copy(tmp_path, tiny_run) -> Path:
    """A copy of the tiny run folder, to damage."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


# --------------------------------------------------------------------------------------------------
# Formats


def test_config_round_trips_as_typed_settings(tmp_path) -> None:
    run = RunFolder(tmp_path)
    model, training = (
        ModelConfig(units=12),
        TrainConfig(epochs=3, early_stopping_metric="bleu", bleu_sample=4),
    )
    run.write_config(model, training, tmp_path / "data")
    config = run.config()
    assert (config.model, config.training) == (model, training)
    assert config.data == str((tmp_path / "data").resolve())
    assert config.format_version == MODEL_FORMAT_VERSION
    assert run.has_settings(RunFolder.settings_of(model, training, tmp_path / "data"))
    assert not run.has_settings(RunFolder.settings_of(model, TrainConfig(), tmp_path / "data"))
    assert run.early_stopping_metric() == "bleu"


def test_a_config_of_another_format_or_with_bad_settings_is_one_model_error(tmp_path) -> None:
    run = RunFolder(tmp_path)
    with pytest.raises(ModelError, match="not an nmtcli model folder"):
        run.config()
    (tmp_path / "config.json").write_text('{"format_version": 2}', encoding="utf-8")
    with pytest.raises(ModelError, match="model folder format 2 is not supported"):
        run.config()
    bad = {"format_version": 1, "model": {**ModelConfig().to_dict(), "units": 0}, "training": {}}
    (tmp_path / "config.json").write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(ModelError, match="invalid model configuration"):
        run.config()


def test_history_round_trips_through_history_csv(tmp_path) -> None:
    run = RunFolder(tmp_path)
    assert run.history().rows == []
    rows = [
        {
            "epoch": 1,
            "objective": 2.5,
            "cross_entropy": 2.25,
            "perplexity": 9.49,
            "val_bleu": None,
            "seconds": 1.5,
        },
        {
            "epoch": 2,
            "objective": 2.0,
            "cross_entropy": 1.75,
            "perplexity": 5.75,
            "val_bleu": None,
            "seconds": 1.25,
        },
    ]
    run.write_history(History(rows))
    read = run.history()
    assert read.columns == list(FIELDS)
    assert [{k: row[k] for k in rows[0]} for row in read.rows] == rows
    assert json.loads((tmp_path / "history.json").read_text(encoding="utf-8"))[1]["cross_entropy"] == 1.75
    assert read.best_epoch() == 2


def test_lowercase_comes_from_the_data_manifest(tmp_path) -> None:
    run = RunFolder(tmp_path)
    assert run.lowercase is False and run.manifest() is None
    (tmp_path / "data-manifest.json").write_text('{"settings": {"lowercase": true}}', encoding="utf-8")
    assert run.lowercase is True
    (tmp_path / "data-manifest.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ModelError, match="should be an object"):
        run.lowercase  # noqa: B018


def test_status_tells_training_from_interrupted_by_the_lock(tmp_path) -> None:
    run = RunFolder(tmp_path)
    assert run.status() == "unknown"
    run.mark_running()
    assert run.status() == "interrupted" and run.is_unfinished()
    lock = run.lock()
    assert lock is not None and run.lock() is None  # one holder at a time
    assert run.status() == "training"
    lock.release()
    assert run.status() == "interrupted"
    run.mark_complete()
    assert run.status() == "complete" and run.is_complete() and not run.is_unfinished()


def test_evaluation_records_keep_other_keys_and_refuse_to_overwrite_a_damaged_file(tmp_path) -> None:
    run = RunFolder(tmp_path)
    assert run.evaluations() == {}
    run.record_evaluation("test", {"scores": {"bleu": 1.0}})
    run.record_evaluation("valid", {"scores": {"bleu": 2.0}})
    assert set(run.evaluations()) == {"test", "valid"}
    (tmp_path / "evaluation.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ModelError, match="left as it is"):
        run.record_evaluation("test", {})
    assert (tmp_path / "evaluation.json").read_text(encoding="utf-8") == "[]"


def test_an_mlflow_record_must_name_a_store_and_a_run(tmp_path) -> None:
    run = RunFolder(tmp_path)
    assert run.mlflow_record() is None
    run.write_mlflow_record({"tracking_uri": "sqlite:///x.db", "run_id": "abc"})
    assert run.mlflow_record() == {"tracking_uri": "sqlite:///x.db", "run_id": "abc"}
    (tmp_path / "mlflow.json").write_text('{"run_id": 3}', encoding="utf-8")
    with pytest.raises(ModelError, match="not an nmtcli MLflow record"):
        run.mlflow_record()


def test_the_source_names_run_folder_files_only_in_run_folder() -> None:
    """One owner: no other module spells the run folder's file names."""
    package = Path(nmtcli.files.__file__).parent
    owned = (
        '"config.json"',
        '"state.json"',
        '"history.json"',
        '"history.csv"',
        '"evaluation.json"',
        '"checksums.json"',
        '"data-manifest.json"',
        '"mlflow.json"',
        '"curves.png"',
        '".lock"',
    )
    for path in package.rglob("*.py"):
        if path.name == "run_folder.py":
            continue
        text = path.read_text(encoding="utf-8")
        if path.name == "model_files.py":  # model.keras is a zip of members Keras names, config.json too
            text = text.replace('KERAS_MEMBERS = ("metadata.json", "config.json", "model.weights.h5")', "")
        assert not [name for name in owned if name in text], path.name


# --------------------------------------------------------------------------------------------------
# Untrusted or damaged model folders (moved from test_reliability.py; docs/reliability.md cases 29-35)


def test_a_model_folder_from_an_incompatible_version(model_copy, output) -> None:
    config = json.loads((model_copy / "config.json").read_text(encoding="utf-8"))
    config["format_version"] = 999
    (model_copy / "config.json").write_text(json.dumps(config), encoding="utf-8")
    line = failed_translate(model_copy, output, "red cat.")
    assert line.startswith(f"nmt: error: {model_copy}: model folder format 999 is not supported")


def test_a_truncated_model_file_fails_its_checksum(model_copy, output) -> None:
    model = model_copy / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    line = failed_translate(model_copy, output, "red cat.")
    assert line == (
        f"nmt: error: {model}: does not match checksums.json; "
        "the model folder was changed or damaged since training"
    )


def test_a_truncated_model_file_with_matching_checksums_cannot_load(model_copy, output) -> None:
    model = model_copy / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    RunFolder(model_copy).write_checksums([sha256_file(model)])  # damaged before the checksums were written
    assert failed_translate(model_copy, output, "red cat.").startswith(
        f"nmt: error: {model}: not a Keras model file ("
    )


def test_a_vocabulary_with_two_tokens_swapped_is_refused(model_copy, output) -> None:
    vocab = model_copy / "vocab" / "target.txt"
    original = vocab.read_bytes()
    tokens = original.decode("utf-8").split("\n")
    tokens[4], tokens[5] = tokens[5], tokens[4]  # two real tokens, after the specials
    vocab.write_bytes("\n".join(tokens).encode("utf-8"))
    assert len(vocab.read_bytes()) == len(original) and vocab.read_bytes() != original
    line = failed_translate(model_copy, output, "red cat.")
    assert line == (
        f"nmt: error: {vocab}: does not match checksums.json; "
        "the model folder was changed or damaged since training"
    )


def test_a_model_folder_without_checksums(model_copy, output) -> None:
    (model_copy / "checksums.json").unlink()
    line = failed_translate(model_copy, output, "red cat.")
    assert line == f"nmt: error: {model_copy}: no checksums.json; not a complete nmtcli model folder"


@pytest.mark.parametrize("name", ["vocab/source.txt", "vocab", "model.keras", "config.json"])
def test_a_symlink_pointing_outside_the_model_folder_is_refused(tmp_path, model_copy, output, name) -> None:
    # The outside copy is identical, so only where it lies can make it refused.
    inside = model_copy / name
    outside = tmp_path / "elsewhere" / inside.name
    outside.parent.mkdir()
    shutil.move(inside, outside)
    inside.symlink_to(outside)
    line = failed_translate(model_copy, output, "red cat.")
    shown = model_copy / ("vocab/source.txt" if name == "vocab" else name)
    assert line == f"nmt: error: {shown}: points outside the model folder; refusing to read it"


def test_checksums_pointing_outside_the_model_folder_are_refused(tmp_path, model_copy, output) -> None:
    outside = tmp_path / "checksums.json"
    shutil.move(model_copy / "checksums.json", outside)
    (model_copy / "checksums.json").symlink_to(outside)
    assert "points outside the model folder" in failed_translate(model_copy, output, "red cat.")


def test_a_model_with_code_in_it_is_refused_by_safe_mode(monkeypatch, model_copy, output) -> None:
    """An attacker who controls the whole folder rewrites checksums.json too: safe mode still refuses
    to deserialize Python code (a Lambda layer) from model.keras."""
    import keras

    import nmtcli.run_folder

    inputs = keras.Input((3,))
    outputs = keras.layers.Lambda(lambda x: x * 2, output_shape=(3,))(inputs)
    model = model_copy / "model.keras"
    model.unlink()
    keras.Model(inputs, outputs).save(model)
    RunFolder(model_copy).write_checksums([sha256_file(model)])
    # The checks before Keras (reliability case 57) refuse it already: it is not the run's architecture.
    line = failed_translate(model_copy, output, "red cat.")
    assert line.startswith(f"nmt: error: {model}: holds a Functional model but the run's config.json says")
    # Were those checks passed, Keras safe mode would refuse it.
    monkeypatch.setattr(nmtcli.run_folder, "check_keras_archive", lambda *args: None)
    line = failed_translate(model_copy, output, "red cat.")
    assert (
        line == f"nmt: error: {model}: the model contains code (such as a Lambda layer); nmtcli never runs it"
    )


def test_loading_a_model_folder_never_unpickles(monkeypatch, tiny_run) -> None:
    import pickle

    from nmtcli.translator import Translator

    def refuse(*args, **kwargs):
        raise AssertionError("a model folder was unpickled")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    assert len(Translator.load(tiny_run).translate(["red cat.", "dog."])) == 2


def test_the_source_loads_models_only_in_safe_mode() -> None:
    package = Path(nmtcli.files.__file__).parent
    code = {path.name: path.read_text(encoding="utf-8") for path in package.rglob("*.py")}
    for name, text in code.items():
        for unsafe in ("import pickle", "from pickle", "allow_pickle=True", "safe_mode=False", "unsafe_"):
            assert unsafe not in text, (name, unsafe)
    loads = [
        line for text in code.values() for line in text.splitlines() if "keras.saving.load_model(" in line
    ]
    assert loads and all("safe_mode=True" in line for line in loads), loads


def test_a_history_that_is_a_device_or_huge_is_never_read_whole(tmp_path) -> None:
    """``history.csv`` linked to /dev/zero reads as no history; one over the size cap is one error."""
    import nmtcli.run_folder as run_folder

    (tmp_path / "history.csv").symlink_to("/dev/zero")
    assert RunFolder(tmp_path).history().rows == []
    (tmp_path / "history.csv").unlink()
    (tmp_path / "history.csv").write_text("epoch,cross_entropy\n" + "1,2.5\n" * 10, encoding="utf-8")
    assert len(RunFolder(tmp_path).history().rows) == 10
    cap = run_folder.MAX_JSON_BYTES
    try:
        run_folder.MAX_JSON_BYTES = 64
        with pytest.raises(ModelError, match="history.csv"):
            RunFolder(tmp_path).history()
    finally:
        run_folder.MAX_JSON_BYTES = cap
