"""The self-describing model folder: everything needed to translate, with nothing else at hand.

::

    RUN/
      config.json          format version, nmtcli version, model and training settings
      model.keras          best weights (no optimizer state), loads in Keras safe mode
      vocab/source.txt     source vocabulary (one token per line)
      vocab/target.txt     target vocabulary
      vocab/source.model   subword level only: the SentencePiece models (see ``subwords``)
      vocab/target.model
      data-manifest.json   the manifest of the prepared data it was trained on
      history.csv/.json    per-epoch loss, perplexity, time
      checksums.json       SHA-256 of the files above that a translator reads; checked at load
      state.json           running | complete
      evaluation.json      the latest `nmt evaluate` scores per split, with signatures
      curves.png           `nmt plot`'s training curves
      backup/              resumable training state (removed when training completes)
      mlflow.json          with `nmt train --mlflow`: the MLflow store and run id (see ``tracking``)
      tensorboard/         with `nmt train --tensorboard`: TensorBoard event files

Loading never runs code from the folder: Keras safe mode, no pickle, and only the files named here,
which must lie inside the folder and match their checksums.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import keras

from . import __version__
from .config import ModelConfig, TrainConfig
from .errors import ConfigError, ModelError
from .files import atomic_path, atomic_write_json, read_json, sha256_file
from .vectorizers import Vectorizer

MODEL_FORMAT_VERSION = 1
CHECKSUMS = "checksums.json"
# What a translator reads; all but the model are written once, before training starts.
CHECKED_FILES = ("config.json", "vocab/source.txt", "vocab/target.txt", "data-manifest.json", "model.keras")
# Read, and so checked, where present: the subword level's SentencePiece models.
OPTIONAL_CHECKED_FILES = ("vocab/source.model", "vocab/target.model")


def write_config(run_dir: Path, model_config: ModelConfig, train_config: TrainConfig, data_dir: Path) -> None:
    atomic_write_json(
        run_dir / "config.json",
        {
            "format_version": MODEL_FORMAT_VERSION,
            "nmtcli_version": __version__,
            "keras_version": keras.__version__,
            "model": model_config.to_dict(),
            "training": train_config.to_dict(),
            "data": str(data_dir.resolve()),
        },
    )


def copy_data_files(run_dir: Path, data_dir: Path, level: str) -> None:
    (run_dir / "vocab").mkdir(exist_ok=True)
    for side in ("source", "target"):
        shutil.copyfile(data_dir / "vocab" / f"{side}.{level}.txt", run_dir / "vocab" / f"{side}.txt")
        if level == "subword":  # the SentencePiece model beside its piece list (see subwords.py)
            shutil.copyfile(data_dir / "vocab" / f"{side}.subword.model", run_dir / "vocab" / f"{side}.model")
    shutil.copyfile(data_dir / "manifest.json", run_dir / "data-manifest.json")


def _read_small_json(run_dir: Path, name: str) -> Any:
    """A JSON file of the folder, refused if it lies outside it, is not a regular file or is huge."""
    path = run_dir / name
    if not path.resolve().is_relative_to(run_dir.resolve()):
        raise ModelError(f"{path}: points outside the model folder; refusing to read it")
    if path.stat().st_size > 16 * 2**20:
        raise ModelError(f"{path}: too large for a {name}")
    return read_json(path)


def read_config(run_dir: Path) -> dict[str, Any]:
    """``config.json`` checked for version; ``model`` and ``training`` become typed configs."""
    path = run_dir / "config.json"
    if not path.is_file():
        raise ModelError(f"{run_dir}: not an nmtcli model folder (no config.json)")
    try:
        raw = _read_small_json(run_dir, "config.json")
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable ({exc})") from None
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version != MODEL_FORMAT_VERSION:
        raise ModelError(
            f"{run_dir}: model folder format {version!r} is not supported by nmtcli {__version__} "
            f"(reads format {MODEL_FORMAT_VERSION}); retrain it with this version"
        )
    try:
        return {
            **raw,
            "model": ModelConfig.from_dict(raw["model"]),
            "training": TrainConfig.from_dict(raw["training"]),
        }
    except (KeyError, TypeError, ConfigError) as exc:
        raise ModelError(f"{path}: invalid model configuration ({exc})") from None


def write_checksums(run_dir: Path, model_digests: list[str]) -> None:
    """Record the digests of the folder's files; ``model.keras`` may be given several accepted ones."""
    digests: dict[str, list[str]] = {}
    present = [name for name in OPTIONAL_CHECKED_FILES if (run_dir / name).exists()]
    for name in [*CHECKED_FILES[:-1], *present]:
        digests[name] = [sha256_file(run_dir / name)]
    digests["model.keras"] = model_digests
    atomic_write_json(run_dir / CHECKSUMS, digests)


def save_model(model: keras.Model, run_dir: Path) -> None:
    """Write ``model.keras`` (weights and architecture, no optimizer state) and its checksum.

    A kill at any moment leaves a folder that loads: while the new file is renamed into place, the
    checksums accept both the old and the new model.
    """
    # A float32 copy without optimizer state, whatever dtype policy trained the model.
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        clone = model.__class__.from_config({**model.get_config(), "dtype": "float32"})
        clone.build()
    finally:
        keras.config.set_dtype_policy(previous)
    clone.set_weights(model.get_weights())
    path = run_dir / "model.keras"
    with atomic_path(path, suffix=".keras") as tmp:
        clone.save(tmp)
        new = sha256_file(tmp)
        old = [sha256_file(path)] if path.is_file() else []
        write_checksums(run_dir, [new, *old])
    write_checksums(run_dir, [new])


def verify_folder(run_dir: Path) -> None:
    """Every file a translator reads lies inside ``run_dir`` and matches ``checksums.json``."""
    root = run_dir.resolve()
    if not (run_dir / "model.keras").exists():
        raise ModelError(f"{run_dir}: no model.keras; training may not have finished an epoch yet")
    if (run_dir / CHECKSUMS).exists() and not (run_dir / CHECKSUMS).is_file():
        raise ModelError(f"{run_dir / CHECKSUMS}: not a regular file")
    try:
        recorded = _read_small_json(run_dir, CHECKSUMS)
    except FileNotFoundError:
        raise ModelError(f"{run_dir}: no {CHECKSUMS}; not a complete nmtcli model folder") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{run_dir / CHECKSUMS}: unreadable ({exc})") from None
    optional = [
        name
        for name in OPTIONAL_CHECKED_FILES
        if os.path.lexists(run_dir / name) or (isinstance(recorded, dict) and name in recorded)
    ]
    for name in [*CHECKED_FILES, *optional]:
        path = run_dir / name
        if not path.resolve().is_relative_to(root):
            raise ModelError(f"{path}: points outside the model folder; refusing to read it")
        if not path.is_file():
            raise ModelError(f"{path}: missing from the model folder")
        accepted = recorded.get(name) if isinstance(recorded, dict) else None
        if not isinstance(accepted, list) or sha256_file(path) not in accepted:
            raise ModelError(
                f"{path}: does not match {CHECKSUMS}; the model folder was changed or damaged since training"
            )


def load_model(run_dir: Path) -> keras.Model:
    from . import models  # noqa: F401  (registers the custom layers for deserialization)

    path = run_dir / "model.keras"
    if not path.is_file():
        raise ModelError(f"{run_dir}: no model.keras; training may not have finished an epoch yet")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for damaged or foreign files
        detail = " ".join(str(exc).split())  # Keras messages span lines; ours is one line
        if "safe_mode" in detail:
            raise ModelError(
                f"{path}: the model contains code (such as a Lambda layer); nmtcli never runs it"
            ) from None
        if len(detail) > 300:
            detail = detail[:297] + "..."
        raise ModelError(f"{path}: cannot load the model ({type(exc).__name__}: {detail})") from None
    # Where a model cannot be rebuilt, Keras only warns and leaves the layers it could not build
    # without their weights; translating with random weights would be worse than stopping.
    unbuilt = [layer.name for layer in model.layers if not layer.built]
    if unbuilt:
        raise ModelError(f"{path}: cannot rebuild the model; {', '.join(unbuilt)} got no weights")
    return model


def load_vectorizers(run_dir: Path, level: str) -> tuple[Vectorizer, Vectorizer]:
    try:
        return (
            Vectorizer.load(level, run_dir / "vocab" / "source.txt"),
            Vectorizer.load(level, run_dir / "vocab" / "target.txt"),
        )
    except Exception as exc:
        raise ModelError(f"{run_dir}: {exc}") from None
