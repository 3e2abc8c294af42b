"""Checks on a ``model.keras`` file before Keras opens it, and bounded reading of its weights.

A ``.keras`` file is a zip archive (``metadata.json``, ``config.json``, ``model.weights.h5``). Keras
extracts its members to the temporary folder and builds whatever model the inner ``config.json``
describes, so a small hostile file can claim a model of any size or inflate to gigabytes. Before
Keras sees the file, :func:`check_keras_archive` requires: only those members, each within a size
budget derived from the run's own ``config.json`` (the weights of the model it describes, with room
for HDF5's overhead), no member inflating more than :data:`MAX_INFLATION` times, and an inner model
configuration that agrees with the run's (architecture sizes and vocabulary sizes, so the embedding
has a row for every vocabulary entry). Each refusal is one line naming the file.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from .errors import ModelError, NmtError
from .files import DictOf, Required, json_depth

KERAS_MEMBERS = ("metadata.json", "config.json", "model.weights.h5")
KERAS_CONFIG_MEMBER = KERAS_MEMBERS[1]  # Keras's own description of the model inside the zip
WEIGHTS_MEMBER = "model.weights.h5"
MAX_JSON_MEMBER_BYTES = 16 * 2**20
# Trained float32 weights hardly compress (about 1.1 times); zeros compress a thousandfold.
MAX_INFLATION = 20
# HDF5's own structures beside the arrays: a fixed allowance plus a share of the arrays.
WEIGHTS_SLACK_BYTES = 4 * 2**20
WEIGHTS_SLACK_RATIO = 1.5
# Settings of the run's config.json that the inner config of model.keras must repeat.
# Without a configuration to size it by: far above any model nmt trains on one machine.
DEFAULT_WEIGHTS_BUDGET = 4 * 2**30
COMPARED = ("source_vocab_size", "target_vocab_size", "embedding_dim", "units", "tie_embeddings")


# The shapes of the run folder's JSON files, for files.read_json_file: what the code reads of them
# (other keys may be there). The run folder's owner reads each file with its schema.
MODEL_SETTINGS_SCHEMA = {
    "arch": str,
    "level": str,
    "embedding_dim": int,
    "units": int,
    "dropout": float,
    "tie_embeddings": bool,
    "source_vocab_size": int,
    "target_vocab_size": int,
    "max_source_length": int,
    "max_target_length": int,
}
RUN_CONFIG_SCHEMA = {
    "format_version": Required(Any),  # its value is checked with a message of its own
    "model": MODEL_SETTINGS_SCHEMA,
    "training": dict,
    "data": (str, None),
}
CHECKSUMS_SCHEMA = DictOf([str])
STATE_SCHEMA = {"status": str}
HISTORY_SCHEMA = [DictOf((int, float, str, None))]
EVALUATION_SCHEMA = DictOf(dict)
TRAINING_METADATA_SCHEMA = {"epoch": Required(int)}
DATA_MANIFEST_SCHEMA = {"settings": {"lowercase": bool}}


def weight_bytes_bounds(model: dict[str, Any]) -> tuple[int, int]:
    """Lower and upper bounds on the bytes of float32 weights of a model with these settings
    (``config.json``'s ``model``): at least the two embeddings and one recurrent layer; at most
    those plus a generous number of recurrent and attention layers and the output layer."""
    vs = int(model.get("source_vocab_size") or 0)
    vt = int(model.get("target_vocab_size") or 0)
    e = int(model.get("embedding_dim") or 0)
    u = int(model.get("units") or 0)
    # A transformer with shared embeddings has one matrix for both sides.
    embeddings = (0 if model.get("shared_embeddings") is True else vs * e) + vt * e
    lower = embeddings + 3 * u * (e + u)
    upper = embeddings + 4 * (u + e + 1) * vt + 24 * (u + e + 2) * (2 * u) + 8 * u * u
    if model.get("arch") == "transformer":
        # Per encoder and decoder layer: 12 u^2 of attention, 4 u ff of feed-forward, biases and norms.
        layers, ff = int(model.get("layers") or 0), int(model.get("ff_dim") or 0)
        upper += layers * (12 * u * u + 4 * u * ff + 24 * u + 2 * ff)
    return 4 * lower, int(4 * upper * WEIGHTS_SLACK_RATIO) + WEIGHTS_SLACK_BYTES


def _inner_settings(config: Any) -> dict[str, Any] | None:
    """The model's constructor arguments from the inner config.json: ``{"config": {...}}``."""
    if isinstance(config, dict) and isinstance(config.get("config"), dict):
        return config["config"]
    return None


def check_keras_archive(
    path: str | os.PathLike, model: dict[str, Any] | None = None, error: type[NmtError] = ModelError
) -> None:
    """Refuse a ``model.keras`` that Keras should not open: not a zip archive of exactly the Keras
    members, a member over its budget or inflating too much, or (given the run's ``model``
    settings) an inner configuration that disagrees with them or weights of the wrong size."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise error(f"{path}: not a Keras model file ({exc})") from None
    with archive:
        members = {info.filename: info for info in archive.infolist()}
        unexpected = sorted(set(members) - set(KERAS_MEMBERS))
        if unexpected or len(archive.infolist()) != len(members):
            raise error(f"{path}: holds {', '.join(unexpected) or 'repeated members'}; not a model nmt saved")
        missing = [name for name in KERAS_MEMBERS if name not in members]
        if missing:
            raise error(f"{path}: has no {', '.join(missing)}; not a complete Keras model file")
        for name, info in members.items():
            if info.compress_size and info.file_size > MAX_INFLATION * info.compress_size + 2**16:
                raise error(
                    f"{path}: {name} inflates {info.file_size // max(info.compress_size, 1)} times "
                    "(a zip bomb?); refusing to open it"
                )
            if name.endswith(".json") and info.file_size > MAX_JSON_MEMBER_BYTES:
                raise error(f"{path}: {name} is {info.file_size:,} bytes; too large for a model file")
        inner = _read_member_json(archive, path, KERAS_CONFIG_MEMBER, error)
        if model is None:
            return
        settings = _inner_settings(inner)
        if settings is None:
            raise error(f"{path}: its config.json has no model settings; not a model nmt saved")
        for key in COMPARED:
            if key in settings and key in model and settings[key] != model[key]:
                raise error(
                    f"{path}: its {key} is {settings[key]!r} but the run's config.json says {model[key]!r}; "
                    "the model file does not belong to this folder"
                )
        arch = str(model.get("arch", ""))
        class_name = str(inner.get("class_name", "")) if isinstance(inner, dict) else ""
        if arch and class_name and _arch_key(arch) not in _arch_key(class_name):
            raise error(
                f"{path}: holds a {class_name} model but the run's config.json says {arch}; "
                "the model file does not belong to this folder"
            )
        lower, upper = weight_bytes_bounds(model)
        size = members[WEIGHTS_MEMBER].file_size
        if not lower <= size <= upper:
            raise error(
                f"{path}: {WEIGHTS_MEMBER} is {size:,} bytes, but a model of the run's configuration "
                f"has {lower:,} to {upper:,}; refusing to open it"
            )


def _arch_key(name: str) -> str:
    """``gru-attention`` and ``GruAttentionSeq2Seq`` share ``gruattention``."""
    return "".join(c for c in name.lower() if c.isalnum())


def _read_member_json(archive: zipfile.ZipFile, path: Path, name: str, error: type[NmtError]) -> Any:
    with archive.open(name) as member:
        raw = member.read(MAX_JSON_MEMBER_BYTES + 1)
    if len(raw) > MAX_JSON_MEMBER_BYTES:
        raise error(f"{path}: {name} is too large for a model file")
    try:
        value = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise error(f"{path}: {name} is nested too deeply") from None
    except ValueError as exc:
        raise error(f"{path}: {name} is not valid JSON ({exc})") from None
    if json_depth(value) > 64:
        raise error(f"{path}: {name} is nested too deeply")
    return value


def weights_budget(model: dict[str, Any] | None) -> int:
    """The most bytes ``model.weights.h5`` may inflate to: the upper bound for a run's ``model``
    settings (``RunFolder.model_settings``), else :data:`DEFAULT_WEIGHTS_BUDGET`."""
    if model is None:
        return DEFAULT_WEIGHTS_BUDGET
    try:
        return weight_bytes_bounds(model)[1]
    except (TypeError, ValueError):
        return DEFAULT_WEIGHTS_BUDGET


def read_weights(path: str | os.PathLike, max_bytes: int, error: type[NmtError] = ModelError) -> bytes:
    """The ``model.weights.h5`` member of ``path``, inflated to at most ``max_bytes`` (reading stops
    there: a zip bomb costs no more memory than that), and refused when it inflates more than
    :data:`MAX_INFLATION` times."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(WEIGHTS_MEMBER)
            if info.compress_size and info.file_size > MAX_INFLATION * info.compress_size + 2**16:
                raise error(f"{path}: {WEIGHTS_MEMBER} inflates {info.file_size // info.compress_size} times")
            with archive.open(info) as member:
                data = member.read(max_bytes + 1)
    except KeyError:
        raise error(f"{path}: has no {WEIGHTS_MEMBER}") from None
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise error(f"{path}: cannot read the weights ({exc})") from None
    if len(data) > max_bytes:
        raise error(f"{path}: {WEIGHTS_MEMBER} inflates past {max_bytes:,} bytes; refusing to read it")
    return data
