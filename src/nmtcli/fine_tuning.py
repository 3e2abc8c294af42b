"""Fine-tuning a trained run on new data (domain adaptation), and the rules that say when it fits.

Two steps: ``nmt prepare --vocab-from RUN`` encodes the new corpus with the run's vocabularies (its
SentencePiece models at subword level) instead of building new ones (:func:`run_vocabularies`);
``nmt train --init-from RUN`` then starts from the run's weights (``training.fit`` loads them). The
architecture, level, sizes and vocabularies must be the parent's exactly, or the weights would not
fit: :func:`check_parent` refuses otherwise, in one line that says what differs and what to do.
What may change: dropout and every training setting. The new run records ``training.init_from``.

TensorFlow-free, so both commands refuse a mismatch before TensorFlow loads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .config import ModelConfig
from .corpus import GivenVocabularies
from .errors import ConfigError, ModelError
from .run_folder import RunFolder

# The model settings that give weights their shapes (and meaning): a fine-tuned model keeps them.
SHAPE_SETTINGS = ("arch", "level", "embedding_dim", "units", "layers", "heads", "ff_dim", "tie_embeddings")


def parent_run(path: str | os.PathLike) -> RunFolder:
    """The run folder at ``path``, checked to hold a model whose files match their checksums."""
    run = RunFolder(path)
    run.raw_config()  # one line if this is no run folder, or of another format
    run.verify()
    return run


def run_vocabularies(path: str | os.PathLike) -> GivenVocabularies:
    """The vocabularies (and SentencePiece models) of the run at ``path``, to prepare data with."""
    run = parent_run(path)
    level = run.config().model.level
    source, target = run.load_vectorizers(level)
    return GivenVocabularies(level, source, target, str(Path(path).resolve()))


def parent_model_settings(path: str | os.PathLike, given: dict[str, Any]) -> dict[str, Any]:
    """The model settings for fine-tuning the run at ``path``: its shape settings and dropout, with
    the caller's ``given`` settings on top. A given shape setting that differs from the parent's is a
    ``ConfigError`` (its ``field`` names the setting): leaving it out keeps the parent's."""
    parent = parent_run(path).config().model
    for name in SHAPE_SETTINGS:
        if name in given and given[name] != getattr(parent, name):
            raise ConfigError(
                f"{name} must be the value of the run fine-tuned from, {getattr(parent, name)!r}, "
                f"not {given[name]!r}; leave it out to keep it",
                field=name,
            )
    return {**{name: getattr(parent, name) for name in (*SHAPE_SETTINGS, "dropout")}, **given}


def check_parent(path: str | os.PathLike, model: ModelConfig, source: Any, target: Any) -> RunFolder:
    """The run at ``path`` if a model of ``model``'s settings with the ``source`` and ``target``
    vectorizers (the prepared data's) can start from its weights; else a ``ConfigError`` in one line."""
    run = parent_run(path)
    parent = run.config().model
    for name in (*SHAPE_SETTINGS, "shared_embeddings"):
        if getattr(model, name) != getattr(parent, name):
            raise ConfigError(
                f"init_from: {path} has {name} {getattr(parent, name)!r}, this model "
                f"{getattr(model, name)!r}; a fine-tuned model keeps the architecture and sizes",
                field="init_from",
            )
    try:
        parent_source, parent_target = run.load_vectorizers(parent.level)
    except ModelError as exc:
        raise ConfigError(f"init_from: {exc}", field="init_from") from None
    for side, mine, theirs in (("source", source, parent_source), ("target", target, parent_target)):
        same = mine.vocabulary.tokens == theirs.vocabulary.tokens
        if same and parent.level == "subword":
            same = mine.model == theirs.model
        if not same:
            raise ConfigError(
                f"init_from: the prepared data's {side} vocabulary is not the one of {path}; prepare "
                "the new data with that run's vocabularies (`nmt prepare --vocab-from RUN`)",
                field="init_from",
            )
    return run
