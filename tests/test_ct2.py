"""The CTranslate2 engine (``ct2``, ``engines``): conversion, the same translations as TensorFlow, the
cached copy in the run folder and what happens when it is damaged, n-best lists, engine choice, and
the command line without TensorFlow."""

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
from nmtcli.errors import ModelError
from nmtcli.run_folder import CT2_RECORD, RunFolder

SOURCES = [
    "cat sleeps.",
    "the red dog eats.",
    "small green bird",
    "",
    "   ",
    "zzz qqq \u00e9\u00e8 \u4e2d\u6587 unknown",
    "big " * 80,  # longer than max_source_tokens: cut
    "Where is the station?",
    "the cat eats the big fish and the small bird sleeps.",
]


def nmt(*args, input: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def random_transformers(tiny_run_factory, tmp_path_factory):
    """``get(level) -> run folder``: a copy of the tiny transformer run at ``level`` with noise added
    to its fresh weights: outputs of many varied tokens (byte pieces among them at subword level), so
    that every step of the two engines is compared (the trained tiny model mostly says "."). Its
    CTranslate2 copy is written once here."""
    import keras
    import numpy as np

    from nmtcli.ct2 import ensure_cached
    from nmtcli.models import build_model

    made: dict[str, Path] = {}

    def get(level: str) -> Path:
        if level not in made:
            run_dir = tmp_path_factory.mktemp(f"ct2-{level}") / "run"
            shutil.copytree(tiny_run_factory("transformer", level), run_dir)
            run = RunFolder(run_dir)
            model = build_model(run.config().model)
            model.build()
            rng = np.random.default_rng(3)
            noise = [rng.normal(0.0, 0.5, w.shape).astype("float32") for w in model.get_weights()]
            model.set_weights([w + n for w, n in zip(model.get_weights(), noise, strict=True)])
            run.save_model(model)
            keras.backend.clear_session()
            assert ensure_cached(run_dir) == run.ctranslate2_dir
            made[level] = run_dir
        return made[level]

    return get


@pytest.fixture(scope="module")
def random_transformer(random_transformers) -> Path:
    """The subword one of ``random_transformers`` (a joint vocabulary: one shared embedding matrix)."""
    return random_transformers("subword")


def tf_translator(run_dir):
    from nmtcli.translator import Translator

    return Translator.load(run_dir)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"beam_size": 4},
        {"beam_size": 4, "length_penalty": 0.0},
        {"beam_size": 3, "length_penalty": 1.5},
        {"max_length": 3},
        {"beam_size": 5, "max_length": 6},
        {"batch_size": 2, "beam_size": 2},
    ],
)
def test_float32_translations_equal_tensorflow(random_transformer, options):
    from nmtcli.ct2 import CT2Translator

    ct2 = CT2Translator.load(random_transformer)
    expected = tf_translator(random_transformer).translate(SOURCES, **options)
    if "max_length" not in options:
        assert sum(len(line) for line in expected) > 5 * len(SOURCES)  # long, varied outputs
    assert ct2.translate(SOURCES, **options) == expected


@pytest.mark.parametrize("level", ["word", "char"])
@pytest.mark.parametrize("options", [{}, {"beam_size": 4, "length_penalty": 0.6}])
def test_word_and_char_transformers_translate_as_tensorflow(random_transformers, level, options):
    """Separate source and target vocabularies: two embedding matrices and an output layer of its
    own, converted to CTranslate2 through the same spec as the shared subword one.

    Beam search at a length penalty where both engines' normalisations keep the same hypotheses on
    these random models' long, looping outputs: at the Transformer's default, 2.0, CTranslate2's
    ``length ** 2`` may drop a hypothesis ours ranks first (ct2.py; on spa-eng's test split 16 of
    5,145 lines differ at 2.0, docs/benchmarks.md)."""
    from nmtcli.ct2 import CT2Translator
    from nmtcli.evaluation import token_cross_entropy

    run_dir = random_transformers(level)
    tf_side = tf_translator(run_dir)
    assert not tf_side.config.shared_embeddings
    ct2 = CT2Translator.load(run_dir)
    expected = tf_side.translate(SOURCES, **options)
    assert sum(len(line) for line in expected) > 5 * len(SOURCES)
    assert ct2.translate(SOURCES, **options) == expected
    pairs = [("cat sleeps.", "gato duerme."), ("the red dog eats.", "el perro rojo come.")]
    assert ct2.cross_entropy(pairs) == pytest.approx(token_cross_entropy(tf_side, pairs), rel=1e-5)


def test_stream_marks_cut_lines_and_keeps_order(random_transformer):
    from nmtcli.ct2 import CT2Translator

    ct2 = CT2Translator.load(random_transformer)
    results = list(ct2.translate_stream(SOURCES, chunk_size=2))
    assert [r.source for r in results] == SOURCES
    assert [r.truncated for r in results] == [line.startswith("big ") for line in SOURCES]
    assert results[3].translation == results[4].translation == ""
    assert ct2.max_source_tokens == tf_translator(random_transformer).max_source_tokens


def test_cross_entropy_equals_tensorflow(random_transformer):
    from nmtcli.ct2 import CT2Translator
    from nmtcli.evaluation import token_cross_entropy

    pairs = [("cat sleeps.", "gato duerme."), ("the red dog eats.", "el perro rojo come."), ("", "nada")]
    expected = token_cross_entropy(tf_translator(random_transformer), pairs)
    assert CT2Translator.load(random_transformer).cross_entropy(pairs) == pytest.approx(expected, rel=1e-5)


def test_n_best(random_transformer):
    from nmtcli.ct2 import CT2Translator
    from nmtcli.errors import ConfigError

    ct2 = CT2Translator.load(random_transformer)
    results = list(ct2.translate_stream(SOURCES, beam_size=4, n_best=3))
    best = ct2.translate(SOURCES, beam_size=4)
    for result, translation, line in zip(results, best, SOURCES, strict=True):
        assert result.translation == translation
        if line.strip():
            assert len(result.hypotheses) == 3 and result.hypotheses[0] == translation
    assert any(len(set(result.hypotheses)) > 1 for result in results)
    with pytest.raises(ConfigError, match="beam of at least 3"):
        list(ct2.translate_stream(SOURCES, beam_size=2, n_best=3))


def test_cli_n_best_is_one_tab_separated_line_per_input(random_transformer):
    result = nmt(
        "translate", "-m", random_transformer, "--n-best", "3", "-q", input="cat sleeps.\n\nsmall bird\n"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert len(lines[0].split("\t")) == 3 and len(lines[2].split("\t")) == 3
    single = nmt("translate", "-m", random_transformer, "--beam-size", "3", "-q", "cat sleeps.")
    assert single.stdout.splitlines()[0] == lines[0].split("\t")[0]


def test_engine_choice(random_transformer, tiny_run):
    from nmtcli.engines import engine_for

    assert engine_for(random_transformer) == "ctranslate2"
    assert engine_for(random_transformer, "tensorflow") == "tensorflow"
    assert engine_for(tiny_run) == "tensorflow"
    with pytest.raises(ModelError, match="transformer models only"):
        engine_for(tiny_run, "ctranslate2")


def test_recurrent_run_with_ctranslate2_is_one_line(tiny_run):
    for command in (["translate", "Go."], ["evaluate"]):
        result = nmt(*command, "-m", tiny_run, "--engine", "ctranslate2")
        assert result.exit_code == 1
        assert result.stderr.startswith("nmt: error: ") and "transformer models only" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    result = nmt("export", tiny_run, "--format", "ctranslate2")
    assert result.exit_code == 1 and "no CTranslate2 form" in result.stderr
    assert nmt("translate", "-m", tiny_run, "--n-best", "2", "Go.").exit_code == 1


def test_ctranslate2_path_never_imports_tensorflow(random_transformer, tmp_path):
    """The whole command in a fresh interpreter: translate (greedy, beam, n-best) and evaluate."""
    references = tmp_path / "ref.txt"
    sources = tmp_path / "src.txt"
    sources.write_text("cat sleeps.\nsmall bird\n")
    references.write_text("gato duerme.\npajaro chico\n")
    script = f"""
import sys
from nmtcli.cli import app
for args in (["translate", "-m", {str(random_transformer)!r}, "cat sleeps.", "--n-best", "2"],
             ["evaluate", "-m", {str(random_transformer)!r}, "--source", {str(sources)!r},
              "--reference", {str(references)!r}, "--json"]):
    app(args, standalone_mode=False)
print("TF" if any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules) else "NO-TF")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("NO-TF")
    assert '"engine": "ctranslate2"' in done.stdout and '"perplexity"' in done.stdout


def _ct2_translate(run_dir, *extra):
    return nmt("translate", "-m", run_dir, "cat sleeps.", "the red dog eats.", *extra)


@pytest.fixture
def run_copy(random_transformer, tmp_path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(random_transformer, run_dir)
    return run_dir


@pytest.mark.parametrize(
    "damage", ["flip-model", "garbage-record", "delete-vocabulary", "fifo", "symlink-out"]
)
def test_damaged_copy_is_converted_again(random_transformer, run_copy, tmp_path, damage):
    expected = _ct2_translate(random_transformer, "--engine", "tensorflow").stdout
    folder = RunFolder(run_copy).ctranslate2_dir
    if damage == "flip-model":
        data = bytearray((folder / "model.bin").read_bytes())
        data[-10] ^= 0xFF
        (folder / "model.bin").write_bytes(bytes(data))
    elif damage == "garbage-record":
        (folder / CT2_RECORD).write_bytes(b"\xff\x00{not json")
    elif damage == "delete-vocabulary":
        (folder / "shared_vocabulary.json").unlink()
    elif damage == "fifo":
        (folder / "model.bin").unlink()
        os.mkfifo(folder / "model.bin")
    else:  # the copy's folder points outside the run: never read
        shutil.move(folder, tmp_path / "elsewhere")
        folder.symlink_to(tmp_path / "elsewhere")
    result = _ct2_translate(run_copy)
    assert result.exit_code == 0, result.output
    assert result.stdout == expected
    assert "Traceback" not in result.output
    assert "converting the model again" in result.stderr or damage == "delete-vocabulary"
    assert not folder.is_symlink() and (folder / CT2_RECORD).is_file()
    # Converted again in place: the next call reads it without a word.
    again = _ct2_translate(run_copy)
    assert again.stdout == expected and again.stderr == ""


def test_copy_of_an_older_model_is_replaced(run_copy):
    import numpy as np

    from nmtcli.ct2 import CT2Translator

    run = RunFolder(run_copy)
    before = CT2Translator.load(run_copy).translate(SOURCES)
    model = run.load_model()
    model.set_weights([np.roll(w, 1) for w in model.get_weights()])
    run.save_model(model)
    after = CT2Translator.load(run_copy).translate(SOURCES)
    assert after == tf_translator(run_copy).translate(SOURCES)
    assert after != before


def test_read_only_run_folder_translates_from_a_temporary_copy(run_copy):
    if os.geteuid() == 0:
        pytest.skip("root writes to read-only folders")
    shutil.rmtree(RunFolder(run_copy).ctranslate2_dir)
    os.chmod(run_copy, 0o555)
    try:
        result = _ct2_translate(run_copy)
    finally:
        os.chmod(run_copy, 0o755)
    assert result.exit_code == 0, result.output
    assert "converted for this call" in result.stderr
    assert not RunFolder(run_copy).ctranslate2_dir.exists()


def test_unwritable_copy_folder_translates_from_a_temporary_copy(run_copy):
    """A file where the copy's folder should be (not ours to delete): a temporary conversion."""
    folder = RunFolder(run_copy).ctranslate2_dir
    shutil.rmtree(folder)
    folder.write_text("not a folder")
    result = _ct2_translate(run_copy)
    assert result.exit_code == 0, result.output
    assert "converted for this call" in result.stderr and folder.read_text() == "not a folder"


def test_export_ctranslate2(random_transformer, tmp_path):
    import ctranslate2

    out = tmp_path / "exported"
    result = nmt(
        "export", random_transformer, "--format", "ctranslate2", "--quantization", "int8", "-o", out, "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["quantization"] == "int8"
    record = json.loads((out / CT2_RECORD).read_text())
    assert record["quantization"] == "int8" and {"model.bin", "source.model", "target.model"} <= set(
        record["files"]
    )
    translator = ctranslate2.Translator(str(out))
    assert translator.translate_batch([["<unk>"]], max_decoding_length=3)[0].hypotheses
    # Replacing our own export is fine; a folder of other files is left alone.
    assert nmt("export", random_transformer, "--format", "ctranslate2", "-o", out).exit_code == 0
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    refused = nmt("export", random_transformer, "--format", "ctranslate2", "-o", tmp_path / "other")
    assert refused.exit_code == 1 and (tmp_path / "other" / "keep.txt").read_text() == "mine"
    assert nmt("export", random_transformer, "--quantization", "int8").exit_code == 1


def test_int8_compute_type_translates(random_transformer):
    from nmtcli.ct2 import CT2Translator

    int8 = CT2Translator.load(random_transformer, "int8")
    assert len(int8.translate(SOURCES)) == len(SOURCES)
    result = nmt("evaluate", "-m", random_transformer, "--compute-type", "int8", "--json", "-q")
    assert result.exit_code == 0, result.output
    assert "|engine:ctranslate2-int8|" in json.loads(result.stdout)["nmtcli_signature"]


def test_rerank_uses_gnmt_length_penalty():
    from nmtcli.ct2 import rerank

    # CTranslate2 scores: log p / n ** alpha (n with the end token).
    short, long = ["a", "<end>"], ["a", "b", "c", "<end>"]
    alpha = 1.0
    scores = [-2.0 / 2, -2.6 / 4]  # log p: -2.0 and -2.6
    # GNMT: -2.0 / (7 / 6) = -1.71 against -2.6 / (9 / 6) = -1.73: the short one wins, while
    # CTranslate2's own normalisation prefers the long one.
    assert rerank([long, short], [scores[1], scores[0]], alpha)[0] == ["a"]
    # A hypothesis cut at the step limit ranks after every ended one.
    assert rerank([["x", "y"], short], [-0.1, -5.0], 0.6)[0] == ["a"]


def test_nmt_train_writes_the_copy_of_a_transformer_run(tiny_data, tmp_path):
    from nmtcli.ct2 import read_cached

    result = nmt(
        "train", "--data", tiny_data, "-w", tmp_path, "--arch", "transformer", "--level", "subword",
        "--units", "16", "--layers", "1", "--ff-dim", "16", "--epochs", "1", "--bleu-sample", "0",
        "-q", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = RunFolder(json.loads(result.stdout)["run"])
    record, _ = read_cached(run)  # made from the model.keras that checksums.json names
    assert record["quantization"] == "float32"
