"""The model card: what a run folder holds, gathered into one dict and rendered as text.

Everything comes from the folder's own files (``config.json``, ``history.csv``,
``data-manifest.json``, ``evaluation.json``) and the weights file's table of contents, so a card is
drawn without TensorFlow. Only :func:`plot_model_picture` loads the model, to draw its layers with
``keras.utils.plot_model`` (which needs pydot and Graphviz).
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import platform
import shutil
import zipfile
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConfigError, ModelError, NmtError
from .files import atomic_path
from .model_files import read_weights, weights_budget
from .run_folder import MODEL, RunFolder

ARCHITECTURE_NAMES = {
    "lstm": "LSTM encoder-decoder",
    "gru-attention": "bidirectional GRU encoder, GRU decoder with additive attention",
    "transformer": "pre-norm Transformer encoder-decoder",
}
METRIC_LABELS = {"bleu": "BLEU", "chrf": "chrF", "ter": "TER"}
PICTURE_TYPES = ("png", "svg", "pdf")
PYDOT_HINT = "pip install pydot (or pip install 'nmtcli[plot]')"
GRAPHVIZ_HINT = (
    "apt-get install graphviz (Debian/Ubuntu), brew install graphviz (macOS) or conda install graphviz; "
    "see https://graphviz.org/download/"
)


def count_parameters(model_path: Path) -> int | None:
    """Number of weights in a ``.keras`` file, read from its HDF5 weights without building the model.

    Optimizer state, if the file has any, is not counted. None if the file is missing.
    """
    if not model_path.is_file():
        return None
    import h5py  # a Keras dependency; reads the weights file's table of contents

    try:
        budget = weights_budget(RunFolder(model_path.parent).model_settings())
        weights = read_weights(model_path, budget)  # bounded inflation
        total = 0
        with h5py.File(io.BytesIO(weights), "r") as h5:

            def visit(name: str, item: Any) -> None:
                nonlocal total
                if isinstance(item, h5py.Dataset) and item.dtype.kind == "f":
                    total += int(item.size)

            for key, group in h5.items():
                if key != "optimizer":
                    if isinstance(group, h5py.Dataset):
                        visit(key, group)
                    else:
                        group.visititems(visit)
        return total
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{model_path}: cannot read the weights ({exc})") from None


def _installed(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _data_summary(run: RunFolder, prepared: str | None) -> dict[str, Any]:
    summary: dict[str, Any] = {"prepared": prepared}
    manifest = run.manifest() or {}
    for key in ("corpus", "created", "counts", "dropped", "vocab_size", "max_length", "settings"):
        if key in manifest:
            summary[key] = manifest[key]
    return summary


def model_card(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Everything worth knowing about a run folder, as plain JSON-ready data.

    Keys: ``run``, ``name``, ``status``, ``model`` (config plus ``parameters`` and ``model_bytes``),
    ``training`` (config), ``history`` (None before the first epoch), ``data``, ``evaluation``,
    ``versions``. Losses are mean cross-entropy per target token in nats; times are seconds.
    """
    run_dir = Path(run_dir)
    run = RunFolder(run_dir)
    config = run.config()
    model = config.model.to_dict()
    training = config.training.to_dict()

    model_path = run_dir / MODEL
    model["parameters"] = count_parameters(model_path)
    model["model_bytes"] = model_path.stat().st_size if model_path.is_file() else None

    history: dict[str, Any] | None = None
    runs = run.history()
    best = runs.best()
    if best is not None:
        history = {
            "epochs": len(runs.rows),
            "best_epoch": best["epoch"],
            "monitor": runs.monitor,
            "perplexity": runs.perplexity(),
            "best": best,
            "last": runs.rows[-1],
            "train_seconds": round(runs.seconds(), 1),
        }

    return {
        "run": str(run_dir),
        "name": run_dir.resolve().name,
        "status": run.status(),
        "format_version": config.format_version,
        "model": model,
        "training": training,
        "history": history,
        "data": _data_summary(run, config.data),
        "evaluation": run.evaluations(),
        "versions": {
            "trained_with": {"nmtcli": config.nmtcli_version, "keras": config.keras_version},
            "installed": {
                "nmtcli": __version__,
                "tensorflow": _installed("tensorflow"),
                "keras": _installed("keras"),
                "python": platform.python_version(),
            },
        },
    }


# --------------------------------------------------------------------------------------------------
# Text


def _size(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _losses(row: dict[str, Any]) -> str:
    parts = []
    if row.get("val_cross_entropy") is not None:
        parts.append(
            f"val cross-entropy {row['val_cross_entropy']:.4f}, val perplexity {row['val_perplexity']:.2f}"
        )
    if row.get("val_bleu") is not None:
        parts.append(f"val BLEU {row['val_bleu']:.2f}")
    if row.get("cross_entropy") is not None:
        parts.append(f"train cross-entropy {row['cross_entropy']:.4f}, perplexity {row['perplexity']:.2f}")
    return "; ".join(parts) or "no losses logged"


def _transformer_sizes(model: dict[str, Any]) -> str:
    shared = ", one embedding matrix shared" if model.get("shared_embeddings") else ""
    return (
        f"{model['units']} / {model['layers']}+{model['layers']} / {model['heads']} / {model['ff_dim']}, "
        f"dropout {model['dropout']}{shared}"
    )


def _batches(training: dict[str, Any]) -> str:
    if training.get("batch_tokens"):
        return f"batches of ~{training['batch_tokens']:,} tokens"
    return f"batch {training['batch_size']}"


def _card_rows(card: dict[str, Any]) -> list[tuple[str, str] | str]:
    """Sections (a bare string) and ``(label, value)`` rows."""
    model, training, history, data = card["model"], card["training"], card["history"], card["data"]
    rows: list[tuple[str, str] | str] = [
        "Run",
        ("folder", card["run"]),
        ("status", card["status"]),
        "Model",
        ("architecture", f"{model['arch']} ({ARCHITECTURE_NAMES.get(model['arch'], model['arch'])})"),
        ("level", model["level"]),
        (
            ("d_model / layers / heads / feed-forward", _transformer_sizes(model))
            if model["arch"] == "transformer"
            else (
                "embedding / units",
                f"{model['embedding_dim']} / {model['units']}, dropout {model['dropout']}",
            )
        ),
        (
            "vocabulary",
            f"{model['source_vocab_size']:,} source / {model['target_vocab_size']:,} target tokens",
        ),
        (
            "max length",
            f"{model['max_source_length']} source / {model['max_target_length']} target tokens",
        ),
    ]
    if model["parameters"] is not None:
        rows.append(("parameters", f"{model['parameters']:,} ({_size(model['model_bytes'])} on disk)"))
    else:
        rows.append(("parameters", "no model.keras yet"))
    clip = training["clipnorm"]
    rows += [
        "Training",
        (
            "settings",
            f"{training['optimizer']} lr {training['learning_rate']:g}, {_batches(training)}, "
            f"clipnorm {clip if clip is not None else 'off'}, patience {training['patience'] or 'off'}, "
            f"seed {training['seed']}"
            + (f", label smoothing {training['label_smoothing']:g}" if training["label_smoothing"] else "")
            + (f", warmup {training['warmup_steps']:,} steps" if training.get("warmup_steps") else "")
            + (", XLA" if training["jit_compile"] else "")
            + (", mixed precision" if training["mixed_precision"] else "")
            + (", bf16 output layer where the CPU has it" if training["bf16_output"] else ""),
        ),
    ]
    if history is None:
        rows.append(("epochs", f"none finished of {training['epochs']}"))
    else:
        stopped = history["epochs"] < training["epochs"] and card["status"] == "complete"
        rows += [
            (
                "epochs",
                f"{history['epochs']} of {training['epochs']}" + (" (stopped early)" if stopped else ""),
            ),
            ("best epoch", f"{history['best_epoch']}: {_losses(history['best'])}"),
            (
                "training time",
                f"{_duration(history['train_seconds'])} "
                f"({_duration(history['train_seconds'] / history['epochs'])} per epoch)",
            ),
        ]
    rows += ["Data", ("prepared data", str(data.get("prepared")))]
    corpus = data.get("corpus") or {}
    if corpus.get("path"):
        source = corpus["path"] + (f" + {corpus['target_path']}" if corpus.get("target_path") else "")
        digest = f" (sha256 {corpus['sha256'][:12]})" if corpus.get("sha256") else ""
        rows.append(("corpus", source + digest))
    counts = data.get("counts") or {}
    if all(split in counts for split in ("train", "valid", "test")):
        rows.append(("pairs", " / ".join(f"{counts[s]:,} {s}" for s in ("train", "valid", "test"))))
        if all(f"{s}_sources" in counts for s in ("train", "valid", "test")):
            sources = " / ".join(f"{counts[s + '_sources']:,} {s}" for s in ("train", "valid", "test"))
            rows.append(("source sentences", sources))
    settings = data.get("settings") or {}
    if settings:
        flags = [name for name in ("lowercase", "reverse") if settings.get(name)]
        if settings.get("limit"):
            flags.append(f"limit {settings['limit']:,}")
        rows.append(
            (
                "preparation",
                f"{settings.get('min_words')}-{settings.get('max_words')} words"
                + "".join(f", {flag}" for flag in flags),
            )
        )
    if card["evaluation"]:
        rows.append("Evaluation")
        for key, record in card["evaluation"].items():
            if not isinstance(record, dict):
                continue
            scores = ", ".join(
                f"{METRIC_LABELS.get(name, name)} {value:.2f}"
                for name, value in (record.get("scores") or {}).items()
            )
            if record.get("perplexity") is not None:
                scores += f", perplexity {record['perplexity']:.2f}"
            rows.append((key, f"{scores} ({record.get('sentences', '?')} sentences)"))
            for signature in (record.get("signatures") or {}).values():
                rows.append(("", str(signature)))
            if record.get("nmtcli_signature"):
                rows.append(("", str(record["nmtcli_signature"])))
    trained, installed = card["versions"]["trained_with"], card["versions"]["installed"]
    rows += [
        "Versions",
        ("trained with", f"nmtcli {trained['nmtcli']}, keras {trained['keras']}"),
        (
            "installed",
            ", ".join(f"{name} {version or 'not installed'}" for name, version in installed.items()),
        ),
    ]
    return rows


def render_text(card: dict[str, Any]):
    """A rich renderable of the card: one section per heading, labels on the left."""
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    table.title = f"Model card: {card['name']}"
    table.title_justify = "left"
    table.title_style = "bold"
    table.add_column(style="cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for row in _card_rows(card):
        if isinstance(row, str):
            table.add_row(f"[bold]{row}[/bold]", "")
        else:
            table.add_row(f"  {row[0]}", row[1])
    return table


# --------------------------------------------------------------------------------------------------
# Picture of the layers


def plot_model_requirements() -> str | None:
    """None if ``keras.utils.plot_model`` can run here; otherwise what to install, in one sentence."""
    try:
        import pydot  # noqa: F401
    except ImportError:
        has_pydot = False
    else:
        has_pydot = True
    has_dot = shutil.which("dot") is not None
    if has_pydot and has_dot:
        return None
    if not has_pydot and not has_dot:
        return (
            f"`plot_model` needs the pydot package and Graphviz's dot program: {PYDOT_HINT}, "
            f"and {GRAPHVIZ_HINT}"
        )
    if not has_pydot:
        return f"`plot_model` needs the pydot package: {PYDOT_HINT}"
    return f"`plot_model` needs Graphviz's dot program on PATH: {GRAPHVIZ_HINT}"


def check_picture_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower().lstrip(".") not in PICTURE_TYPES:
        raise ConfigError(
            f"{path}: unknown picture type; end the name with .png, .svg or .pdf", field="plot_model"
        )
    return path


def plot_model_picture(run_dir: str | os.PathLike, path: str | os.PathLike, dpi: int = 96) -> Path:
    """Draw the model's layers, source and target inputs to logits, into ``path`` (.png/.svg/.pdf).

    Our models are subclassed, which ``plot_model`` draws as a single box; so the saved model's own
    ``encode`` and ``decode`` are traced on symbolic inputs into a functional model, whose graph shows
    every layer with its shapes (``None`` for batch and sequence length).
    """
    path = check_picture_path(path)
    missing = plot_model_requirements()
    if missing:
        raise NmtError(missing)
    import keras

    model = RunFolder(run_dir).load_model()
    source = keras.Input(shape=(None,), dtype="int32", name="source")
    target_in = keras.Input(shape=(None,), dtype="int32", name="target_in")
    logits = model.decode(target_in, model.encode(source))
    graph = keras.Model([source, target_in], logits, name=model.name)
    with atomic_path(path, suffix=path.suffix) as tmp:
        try:
            keras.utils.plot_model(graph, to_file=str(tmp), show_shapes=True, show_layer_names=True, dpi=dpi)
        except ImportError as exc:  # pydot present but Graphviz unusable
            raise NmtError(f"`plot_model`: {exc} ({GRAPHVIZ_HINT})") from None
    return path
