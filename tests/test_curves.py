"""`nmt plot` and the curves library: PNGs of real tiny runs, overlays, the terminal table, bad histories."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nmtcli.cli import app
from nmtcli.curves import bar, read_histories, read_history, render_png, sparkline
from nmtcli.errors import ModelError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def nmt(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_error(result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nmt: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG header; the image must also decode."""
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (height, width)
    assert pixels[..., :3].std() > 0.05, "a blank picture"
    return width, height


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """A writable copy of the tiny GRU run."""
    return Path(shutil.copytree(tiny_run, tmp_path / tiny_run.name))


def write_history(run_dir: Path, rows: list[dict], columns: list[str] | None = None) -> None:
    columns = columns or list(rows[0])
    with open(run_dir / "history.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def history_json(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "history.json").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------
# Reading


def test_history_is_read_by_column_name(tiny_run) -> None:
    history = read_history(tiny_run)
    expected = history_json(tiny_run)
    assert history.epochs == [row["epoch"] for row in expected]
    assert history.series("val_cross_entropy") == pytest.approx(
        [row["val_cross_entropy"] for row in expected]
    )
    # The tiny run stops early on validation cross-entropy (the default).
    best = min(expected, key=lambda row: (row["val_cross_entropy"], row["epoch"]))["epoch"]
    assert history.monitor == "val_cross_entropy" and history.best_epoch == best
    # Keras' objective is recorded but not drawn: the cross-entropy is the loss users see.
    assert history.has("objective") and history.metrics() == ["cross_entropy", "perplexity", "bleu"]


def test_missing_validation_cells_become_none_and_the_best_epoch_follows_training_loss(tmp_path) -> None:
    write_history(
        tmp_path,
        [
            {"epoch": 1, "cross_entropy": 2.0, "val_cross_entropy": "", "seconds": 1.0},
            {"epoch": 2, "cross_entropy": 1.5, "val_cross_entropy": "", "seconds": 1.0},
            {"epoch": 3, "cross_entropy": 1.7, "val_cross_entropy": "", "seconds": 1.0},
        ],
    )
    history = read_history(tmp_path)
    assert history.series("val_cross_entropy") == [None, None, None]
    assert history.monitor == "cross_entropy" and history.best_epoch == 2
    assert history.metrics() == ["cross_entropy"]


def test_a_history_of_an_earlier_version_is_read_with_todays_names(tmp_path) -> None:
    """Before the cross-entropy was the loss shown, Keras' objective was written as loss/val_loss."""
    write_history(
        tmp_path,
        [
            {"epoch": 1, "loss": 2.0, "val_loss": 2.2, "seconds": 1.0},
            {"epoch": 2, "loss": 1.5, "val_loss": 2.0, "seconds": 1.0},
            {"epoch": 3, "loss": 1.2, "val_loss": 2.1, "seconds": 1.0},
        ],
    )
    history = read_history(tmp_path)
    assert history.columns == ["epoch", "objective", "val_objective", "seconds"]
    assert history.series("val_objective") == [2.2, 2.0, 2.1]
    # Without cross-entropy columns the objective is all there is: drawn, and it picks the best epoch.
    assert history.monitor == "val_objective" and history.best_epoch == 2
    assert history.metrics() == ["objective"]


def test_columns_other_helpers_add_are_read_when_numeric_and_skipped_when_text(tmp_path) -> None:
    (tmp_path / "history.csv").write_text(
        "epoch,loss,val_bleu,note\n1,2.0,3.5,warm-up\n2,1.5,,fine\n", encoding="utf-8"
    )
    history = read_history(tmp_path)
    assert history.columns == ["epoch", "objective", "val_bleu"]
    assert history.series("val_bleu") == [3.5, None]
    assert history.metrics() == ["objective", "bleu"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("epoch,loss\n1,0.5\n2,lots\n", "line 3: loss is not a number ('lots')"),
        ("loss,val_loss\n0.5,0.6\n", "no 'epoch' column"),
        ("epoch,loss\n1,0.5,0.7\n", "line 2: more values than columns"),
        ("epoch,loss\n,0.5\n", "line 2: no epoch number"),
        ("epoch,loss\n1.5,0.5\n", "line 2: no epoch number"),
    ],
)
def test_a_damaged_history_is_one_clear_error(tmp_path, content, fragment) -> None:
    (tmp_path / "history.csv").write_text(content, encoding="utf-8")
    with pytest.raises(ModelError, match="history.csv") as caught:
        read_history(tmp_path)
    assert fragment in str(caught.value)


def test_sparkline_and_bar() -> None:
    assert sparkline([3.0, 2.0, 1.0]) == "█▅▁"
    assert sparkline([1.0, None, 1.0]) == "▁ ▁"
    assert len(sparkline([float(i) for i in range(100)], width=30)) == 30
    assert bar(1.0, 1.0, width=10) == "█" * 10
    assert bar(0.5, 1.0, width=10) == "█" * 5
    assert bar(None, 1.0) == ""


# --------------------------------------------------------------------------------------------------
# Pictures


def test_png_of_a_trained_run(tiny_run, tmp_path) -> None:
    path = render_png(read_histories([tiny_run]), tmp_path / "curves.png")
    width, height = png_size(path)
    assert 900 <= width <= 2000 and 350 <= height <= 1200  # two panels side by side, readable


def test_nmt_plot_writes_curves_png_into_the_run(run_copy) -> None:
    result = nmt("plot", run_copy)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"curves saved to {run_copy / 'curves.png'}"
    png_size(run_copy / "curves.png")
    assert not [p for p in run_copy.iterdir() if p.name.startswith(".curves.png")]  # no temporary left


def test_nmt_plot_defaults_to_the_workspace_latest_run(tiny_run, tmp_path) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(tiny_run.parent.parent, workspace)
    result = nmt("plot", "--workspace", workspace)
    assert result.exit_code == 0, result.output
    png_size(workspace / "runs" / tiny_run.name / "curves.png")


def test_two_runs_overlay_in_one_picture(tiny_run_factory, tmp_path) -> None:
    runs = [tiny_run_factory("gru-attention"), tiny_run_factory("lstm")]
    single = render_png(read_histories(runs[:1]), tmp_path / "one.png")
    result = nmt("plot", *runs, "--output", tmp_path / "both.png")
    assert result.exit_code == 0, result.output
    width, height = png_size(tmp_path / "both.png")
    assert width == png_size(single)[0] and height > png_size(single)[1]  # one more legend line
    assert_one_error(nmt("plot", *runs), "--output")


def test_one_epoch_without_validation_still_plots(run_copy, tmp_path) -> None:
    write_history(run_copy, [{"epoch": 1, "loss": 2.5, "perplexity": 12.18, "val_loss": "", "seconds": 3}])
    result = nmt("plot", run_copy, "--output", tmp_path / "one.svg")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "one.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
    png_size(render_png(read_histories([run_copy]), tmp_path / "one.png"))
    table = nmt("plot", run_copy, "--terminal")
    assert table.exit_code == 0 and "1*" in table.stdout and "2.5000" in table.stdout


def test_an_unknown_picture_type_is_refused(tiny_run, tmp_path) -> None:
    assert_one_error(nmt("plot", tiny_run, "-o", tmp_path / "curves.bmpx"), ".png, .svg or .pdf")
    assert not (tmp_path / "curves.bmpx").exists()


# --------------------------------------------------------------------------------------------------
# Terminal


def test_terminal_table_shows_every_epoch_and_its_values(tiny_run) -> None:
    result = nmt("plot", tiny_run, "--terminal")
    assert result.exit_code == 0, result.output
    rows = history_json(tiny_run)
    best = read_history(tiny_run).best_epoch
    for row in rows:
        assert f"{row['cross_entropy']:.4f}" in result.stdout
        assert f"{row['val_cross_entropy']:.4f}" in result.stdout
        assert f"{row['val_perplexity']:.2f}" in result.stdout
    assert f"{best}*" in result.stdout and "█" in result.stdout
    assert "objective" not in result.stdout and "loss" not in result.stdout  # one name for the loss
    assert f"{len(rows)} epoch(s), best {best}" in result.stdout
    assert result.stderr == ""


def test_long_runs_are_thinned_and_extra_columns_shown(run_copy) -> None:
    rows = [
        {"epoch": e, "loss": 5 / e, "val_loss": 5 / e + 0.1, "val_bleu": 2 * e, "seconds": 1}
        for e in range(1, 61)
    ]
    write_history(run_copy, rows)
    result = nmt("plot", run_copy, "--terminal")
    assert result.exit_code == 0, result.output
    assert "val bleu" in result.stdout and "120.00" in result.stdout
    assert "showing" in result.stdout and "of 60 epochs" in result.stdout
    assert "60*" in result.stdout  # the best epoch is always shown


def test_without_matplotlib_the_terminal_table_and_an_install_hint(run_copy, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    result = nmt("plot", run_copy)
    assert result.exit_code == 0, result.output
    assert "pip install 'nmtcli[plot]'" in result.stderr
    assert "epoch" in result.stdout and "val cross entropy" in result.stdout
    assert not (run_copy / "curves.png").exists()


def test_missing_or_damaged_history_is_one_error_line(run_copy) -> None:
    (run_copy / "history.csv").write_bytes(b"epoch,loss\n1,\xff\xfe\n")
    assert_one_error(nmt("plot", run_copy), "history.csv", "not UTF-8")
    (run_copy / "history.csv").write_text("epoch,loss,val_loss\n", encoding="utf-8")
    assert_one_error(nmt("plot", run_copy), "no epochs recorded yet")
    (run_copy / "history.csv").unlink()
    assert_one_error(nmt("plot", run_copy), "no history.csv yet")


def test_help_imports_neither_matplotlib_nor_tensorflow() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from nmtcli.cli import app\n"
        "for command in ('plot', 'info'):\n"
        "    assert CliRunner().invoke(app, [command, '--help']).exit_code == 0\n"
        "heavy = [m for m in ('matplotlib', 'tensorflow', 'keras', 'pydot') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
