"""Importing TensorFlow without the C++ start-up chatter on stderr.

TensorFlow prints notices (oneDNN, missing CUDA drivers) from C++ before its logging is set up, so no
environment variable silences them. The command line, and ``nmtcli``'s lazy attributes for library
users (``nmtcli.train``, ``nmtcli.Translator``...), import TensorFlow through :func:`quiet_import`,
which sends file descriptor 2 to /dev/null for the duration of the import and device discovery.
Set ``NMT_DEBUG=1`` to see everything.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    if os.environ.get("NMT_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_import() -> None:
    """Import TensorFlow and Keras and discover devices, with C++ notices silenced."""
    if not os.environ.get("NMT_DEBUG"):
        # Level 3 also hides oneDNN's run-time "E" notices about boolean ops, which are not errors.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    with _stderr_silenced(), _without_matplotlib():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices()


@contextlib.contextmanager
def _without_matplotlib() -> Iterator[None]:
    """Importing TensorFlow imports Keras, whose image-gallery helpers import matplotlib.pyplot if
    they can (0.5 of 2.4 CPU seconds of the import, docs/benchmarks.md); we never call them. While
    TensorFlow loads, ``import matplotlib`` fails, as Keras expects when it is not installed; after,
    it works again for the modules that draw (``curves``, ``attention``)."""
    if "matplotlib" in sys.modules:
        yield
        return
    sys.modules["matplotlib"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if sys.modules.get("matplotlib", 0) is None:
            del sys.modules["matplotlib"]
