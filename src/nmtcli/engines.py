"""Choosing the inference engine of a run: the one seam that ``translate``, ``evaluate`` and ``serve`` call.

::

    translator = open_translator(run_dir)              # CTranslate2 for transformer runs, else TensorFlow
    translator.translate(["Go."], beam_size=4)
    for result in translator.translate_stream(lines, DecodingConfig(batch_size=128)):
        print(result.translation)

Both engines' translators offer ``translate(lines, decoding=None, **decoding_fields) -> list[str]``,
``translate_stream(lines, decoding) -> Iterator[Translation]``, ``max_source_tokens``, ``effective``
and ``engine`` (``"ctranslate2"`` or ``"tensorflow"``). Importing this module imports no TensorFlow;
opening a TensorFlow translator does (with its C++ notices silenced, ``runtime.quiet_import``). A
recurrent run's TensorFlow translator decodes greedily with the traced decoders cached in the run
folder (``decoder_cache``), so it neither builds the Keras model nor traces.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import ConfigError, ModelError
from .run_folder import RunFolder

ENGINES = ("auto", "ctranslate2", "tensorflow")


def engine_for(run_dir: str | os.PathLike, engine: str = "auto") -> str:
    """The engine ``open_translator`` would use: ``auto`` is ctranslate2 for transformer runs and
    tensorflow for the others; asking for ctranslate2 with another architecture is a ModelError."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}", field="engine")
    if engine == "tensorflow":
        return engine
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ModelError(f"{run_dir}: model folder not found")
    arch = RunFolder(run_dir).config().model.arch
    if arch == "transformer":
        return "ctranslate2"
    if engine == "ctranslate2":
        raise ModelError(
            f"{run_dir}: the ctranslate2 engine runs transformer models only; this one is {arch} "
            "(use `engine` tensorflow or auto)"
        )
    return "tensorflow"


def open_translator(run_dir: Path, engine: str = "auto", compute_type: str = "float32") -> Any:
    """A translator for the run in ``run_dir`` on ``engine`` (see :func:`engine_for`).

    ``compute_type`` (CTranslate2 only): float32 (the same translations as TensorFlow), int16 or int8.
    """
    chosen = engine_for(run_dir, engine)
    if chosen == "ctranslate2":
        from .ct2 import CT2Translator

        return CT2Translator.load(run_dir, compute_type)
    from .runtime import quiet_import

    quiet_import()
    from .translator import Translator

    return Translator.load(run_dir)
