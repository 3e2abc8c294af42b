"""nmtcli: train and run neural machine translation models with TensorFlow/Keras.

The package imports TensorFlow only when a name that needs it is first used, so that
``import nmtcli`` and ``nmt --help`` stay fast::

    from nmtcli import Translator
    translator = Translator.load("nmt-workspace/runs/latest")
    translator.translate(["Go.", "Hello!"])

TensorFlow's C++ start-up notices are kept off stderr (``NMT_DEBUG=1`` shows them). Training reports
through the ``logging`` module, logger ``"nmtcli"`` (see :mod:`nmtcli.logs`)::

    import logging
    logging.basicConfig(level=logging.INFO, format="%(message)s")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Public name -> module that defines it. Modules are imported on first access.
_EXPORTS = {
    "NmtError": "errors",
    "ConfigError": "errors",
    "CorpusError": "errors",
    "DataError": "errors",
    "ModelError": "errors",
    "PrepareConfig": "config",
    "ModelConfig": "config",
    "TrainConfig": "config",
    "DecodingConfig": "config",
    "Workspace": "workspace",
    "prepare": "corpus",
    "read_pairs": "corpus",
    "Vectorizer": "vectorizers",
    "build_model": "models",
    "train": "training",
    "greedy_search": "decoding",
    "Translator": "translator",
    "open_translator": "engines",
    "evaluate": "evaluation",
}

__all__ = [
    "ConfigError",
    "CorpusError",
    "DataError",
    "DecodingConfig",
    "ModelConfig",
    "ModelError",
    "NmtError",
    "PrepareConfig",
    "TrainConfig",
    "Translator",
    "Vectorizer",
    "Workspace",
    "__version__",
    "build_model",
    "evaluate",
    "greedy_search",
    "open_translator",
    "prepare",
    "read_pairs",
    "train",
]

if TYPE_CHECKING:  # pragma: no cover
    from .config import DecodingConfig, ModelConfig, PrepareConfig, TrainConfig
    from .corpus import prepare, read_pairs
    from .decoding import greedy_search
    from .engines import open_translator
    from .errors import ConfigError, CorpusError, DataError, ModelError, NmtError
    from .evaluation import evaluate
    from .models import build_model
    from .training import train
    from .translator import Translator
    from .vectorizers import Vectorizer
    from .workspace import Workspace


# Modules that import no TensorFlow; the others are imported after runtime.quiet_import().
_WITHOUT_TENSORFLOW = {"errors", "config", "workspace", "corpus", "vectorizers", "engines"}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nmtcli' has no attribute {name!r}")
    if module not in _WITHOUT_TENSORFLOW:
        from .runtime import quiet_import

        quiet_import()  # TensorFlow's C++ start-up notices stay off the user's stderr, as in the CLI
    return getattr(importlib.import_module(f".{module}", __name__), name)
