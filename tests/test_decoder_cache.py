"""The decoder cache of recurrent runs (``decoder_cache``): the same translations as the Keras path,
written on first use, and never used when it is damaged, stale, or holds operations we do not run."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nmtcli.cli import app
from nmtcli.errors import ModelError
from nmtcli.run_folder import DECODER_RECORD, RunFolder

LINES = [
    "red cat.",
    "big dog runs.",
    "small blue cat eats.",
    "",
    "zzz unknown \u00e9 words",
    "green dog sleeps.",
    "dog " * 80,  # cut to max_source_tokens
]


def nmt(*args, input: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


@pytest.fixture(scope="module", params=["gru-attention", "lstm"])
def run_dir(request, tiny_run_factory) -> Path:
    return tiny_run_factory(request.param)


@pytest.fixture
def run_copy(run_dir, tmp_path) -> Path:
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    return copy


def keras_translator(run_dir: Path):
    """A translator on the Keras path: the model built from ``model.keras``, decoders traced here."""
    from nmtcli.translator import Translator

    run = RunFolder(run_dir)
    config = run.config().model
    source, target = run.load_vectorizers(config.level)
    return Translator(run.load_model(), source, target, config, run.lowercase, run_dir)


def rewrite_record(folder: Path) -> None:
    """Make the record's checksums match the files again, as someone editing the cache on purpose would."""
    record = json.loads((folder / DECODER_RECORD).read_text())
    for name in record["files"]:
        record["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / DECODER_RECORD).write_text(json.dumps(record))


def test_cached_decoding_equals_the_keras_path(run_dir) -> None:
    from nmtcli.translator import Translator

    cached = Translator.load(run_dir)
    assert cached.decoders is not None and cached._model is None  # nothing built, nothing traced
    reference = keras_translator(run_dir)
    encoded = [cached.source.encode(line)[: cached.max_source_tokens] for line in LINES if line]
    assert cached.translate_ids(encoded) == reference.translate_ids(encoded)
    assert cached.translate(LINES) == reference.translate(LINES)
    assert cached.translate(LINES, batch_size=2, max_length=3) == reference.translate(
        LINES, batch_size=2, max_length=3
    )
    assert cached._model is None
    if cached.has_attention:
        ours, theirs = cached.attend(LINES[:3]), reference.attend(LINES[:3])
        assert [a.target_tokens for a in ours] == [a.target_tokens for a in theirs]
        assert all((a.weights == b.weights).all() for a, b in zip(ours, theirs, strict=True))
    else:
        with pytest.raises(ModelError, match="no attention"):
            cached.attend(LINES[:1])
    assert cached._model is None
    # Beam search is not cached: the Keras model is loaded then, and decodes as the Keras path does.
    assert cached.translate(LINES, beam_size=3) == reference.translate(LINES, beam_size=3)
    assert cached._model is not None


def test_written_on_first_use_then_read(run_copy, caplog) -> None:
    from nmtcli.translator import Translator

    folder = RunFolder(run_copy).decoder_dir
    shutil.rmtree(folder)
    with caplog.at_level(logging.INFO, logger="nmtcli"):
        first = Translator.load(run_copy)
    assert "writing the traced decoder" in caplog.text and "Traceback" not in caplog.text
    assert first._model is not None and (folder / DECODER_RECORD).is_file()
    record = json.loads((folder / DECODER_RECORD).read_text())
    assert record["model_sha256"] == RunFolder(run_copy).model_digest()
    again = Translator.load(run_copy)
    assert again._model is None
    assert again.translate(LINES) == first.translate(LINES)


def test_ensure_cached_keeps_a_cache_that_matches(run_copy) -> None:
    from nmtcli.decoder_cache import ensure_cached

    record = RunFolder(run_copy).decoder_dir / DECODER_RECORD
    before = record.stat().st_mtime_ns
    assert ensure_cached(run_copy) == RunFolder(run_copy).decoder_dir
    assert record.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "damage", ["flip-weights", "truncate-graph", "garbage-record", "delete-index", "list-outside", "symlink"]
)
def test_a_damaged_cache_is_ignored_and_written_again(run_copy, tmp_path, damage, caplog) -> None:
    from nmtcli.decoder_cache import StaleCache, read
    from nmtcli.translator import Translator

    expected = keras_translator(run_copy).translate(LINES)
    run = RunFolder(run_copy)
    folder = run.decoder_dir
    data_file = next((folder / "variables").glob("variables.data-*"))
    if damage == "flip-weights":
        data = bytearray(data_file.read_bytes())
        data[len(data) // 2] ^= 0x40
        data_file.write_bytes(bytes(data))
    elif damage == "truncate-graph":
        graph = (folder / "saved_model.pb").read_bytes()
        (folder / "saved_model.pb").write_bytes(graph[: len(graph) // 3])
    elif damage == "garbage-record":
        (folder / DECODER_RECORD).write_bytes(b"\xff\x00{not json")
    elif damage == "delete-index":
        (folder / "variables" / "variables.index").unlink()
    elif damage == "list-outside":
        record = json.loads((folder / DECODER_RECORD).read_text())
        record["files"]["../config.json"] = "0" * 64
        (folder / DECODER_RECORD).write_text(json.dumps(record))
    else:  # the cache folder points outside the run: never read
        shutil.move(folder, tmp_path / "elsewhere")
        folder.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StaleCache):
        read(run)
    with caplog.at_level(logging.INFO, logger="nmtcli"):
        translator = Translator.load(run_copy)
    assert "tracing the decoder again" in caplog.text
    assert translator.translate(LINES) == expected
    if damage == "symlink":  # the link is replaced by the run's own folder; what it pointed to stays
        assert (tmp_path / "elsewhere" / DECODER_RECORD).is_file()
    assert not folder.is_symlink()
    read(run)  # written again, in place


def test_a_cache_of_older_weights_is_not_used(run_copy, caplog) -> None:
    """Weights retrained (or a resumed training's new best epoch): the cache names another
    model.keras, so it is traced again from the new one."""
    import numpy as np

    from nmtcli.decoder_cache import OutdatedCache, read
    from nmtcli.translator import Translator

    run = RunFolder(run_copy)
    before = Translator.load(run_copy).translate(LINES)
    model = run.load_model()
    model.set_weights([np.roll(w, 1) for w in model.get_weights()])
    run.save_model(model)
    with pytest.raises(OutdatedCache, match="traced from another model.keras"):
        read(run)
    with caplog.at_level(logging.INFO, logger="nmtcli"):
        after = Translator.load(run_copy)
    # Not a damaged cache: traced again without a warning.
    assert "writing the traced decoder" in caplog.text and "WARNING" not in caplog.text
    assert after.translate(LINES) == keras_translator(run_copy).translate(LINES)
    assert after.translate(LINES) != before
    assert Translator.load(run_copy)._model is None  # the new cache is used from now on


def test_a_graph_with_other_operations_is_refused_even_with_matching_checksums(run_copy, tmp_path) -> None:
    """A cache edited on purpose, its record's checksums made to match: its graph writes a file when
    called. It is never loaded; the decoder is traced again and the file is never written."""
    import tensorflow as tf

    from nmtcli.decoder_cache import StaleCache, check_graph, read
    from nmtcli.translator import Translator

    target = tmp_path / "written-by-the-graph"

    class Hostile(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([], tf.int32)])
        def greedy(self, source, max_length):
            tf.io.write_file(str(target), "owned")
            return source

    run = RunFolder(run_copy)
    folder = run.decoder_dir
    shutil.rmtree(folder / "variables")
    (folder / "fingerprint.pb").unlink()
    saved = tmp_path / "hostile"
    options = tf.saved_model.SaveOptions(experimental_skip_saver=True)
    tf.saved_model.save(Hostile(), str(saved), options=options)
    shutil.copyfile(saved / "saved_model.pb", folder / "saved_model.pb")
    record = json.loads((folder / DECODER_RECORD).read_text())
    record["files"] = {"saved_model.pb": ""}
    (folder / DECODER_RECORD).write_text(json.dumps(record))
    rewrite_record(folder)
    with pytest.raises(StaleCache, match="WriteFile"):
        check_graph((folder / "saved_model.pb").read_bytes(), folder)
    with pytest.raises(StaleCache, match="WriteFile"):
        read(run)
    assert Translator.load(run_copy).translate(LINES) == keras_translator(run_copy).translate(LINES)
    assert not target.exists()
    read(run)


def test_a_folder_that_cannot_hold_the_cache_still_translates(run_copy, monkeypatch, caplog) -> None:
    """Writing fails (a read-only disk, a full one): a warning, and the decoder traced for this call."""
    from nmtcli import decoder_cache
    from nmtcli.translator import Translator

    def failing_write(run, module):
        raise ModelError(f"{run.decoder_dir}: cannot write the decoder cache (Read-only file system)")

    shutil.rmtree(RunFolder(run_copy).decoder_dir)
    monkeypatch.setattr(decoder_cache, "write", failing_write)
    with caplog.at_level(logging.INFO, logger="nmtcli"):
        translator = Translator.load(run_copy)
    assert "Read-only file system" in caplog.text
    assert translator.translate(LINES) == keras_translator(run_copy).translate(LINES)
    assert not RunFolder(run_copy).decoder_dir.exists()


def test_a_file_where_the_cache_goes_is_left_alone(run_copy) -> None:
    from nmtcli.translator import Translator

    folder = RunFolder(run_copy).decoder_dir
    shutil.rmtree(folder)
    folder.write_text("mine")
    assert Translator.load(run_copy).translate(LINES) == keras_translator(run_copy).translate(LINES)
    assert folder.read_text() == "mine"


def test_read_only_run_folder_translates_without_writing(run_copy) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes to read-only folders (the test above covers a failing write)")
    shutil.rmtree(RunFolder(run_copy).decoder_dir)
    os.chmod(run_copy, 0o555)
    try:
        result = nmt("translate", "-m", run_copy, input="red cat.\n")
    finally:
        os.chmod(run_copy, 0o755)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1 and "Traceback" not in result.output
    assert not RunFolder(run_copy).decoder_dir.exists()


def test_command_line_with_a_damaged_cache_says_so_in_one_line(run_copy) -> None:
    expected = nmt("translate", "-m", run_copy, input="\n".join(LINES[:3]) + "\n")
    assert expected.exit_code == 0 and expected.stderr == "", expected.output
    (RunFolder(run_copy).decoder_dir / "saved_model.pb").write_bytes(b"\x00garbage")
    result = nmt("translate", "-m", run_copy, input="\n".join(LINES[:3]) + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == expected.stdout
    assert "Traceback" not in result.output
    warnings = [line for line in result.stderr.splitlines() if "does not match" in line]
    assert len(warnings) == 1 and warnings[0].startswith("nmt: "), result.stderr


def test_tensorflow_loads_without_matplotlib_and_drawing_still_works() -> None:
    """``runtime.quiet_import`` keeps Keras from importing matplotlib (start-up); matplotlib imports
    normally afterwards."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from nmtcli.runtime import quiet_import\n"
        "quiet_import()\n"
        "print('matplotlib' in sys.modules)\n"
        "import matplotlib.pyplot\n"
        "print(matplotlib.pyplot.figure is not None)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True"]
