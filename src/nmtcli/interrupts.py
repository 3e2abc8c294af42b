"""Ctrl-C and SIGTERM: one clean line, an exit within about 2 s, nothing half-written left behind.

Python runs a signal handler only when the main thread comes back to the interpreter, which a
TensorFlow training step may not do for many seconds. So :func:`install` also asks the C-level
handler to write each signal's number to a socket (``signal.set_wakeup_fd``) that a watcher thread
reads at once. On the first signal the watcher runs the registered hooks (the progress display
stops its live bar) and prints one line; the main thread gets a :class:`Interrupted` exception as
soon as it can take one, so the usual ``finally`` blocks remove temporary files and release locks,
and :func:`exit_now` ends the process. If the main thread has not finished that within
``GRACE_SECONDS``, or at a second signal, the watcher removes the temporaries of the watched folders
itself and ends the process. Files are only ever renamed into place whole, so what a run has
finished (its last finished epoch) is what the next `nmt train` resumes.

Exit codes follow the shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

GRACE_SECONDS = 1.5  # then the watcher exits without the main thread: the target is 2 s
SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Temporary siblings: files.atomic_path's `.NAME.XXXX.tmp` / `.NAME.XXXX.keras`, and the folders
# `nmt prepare` and `nmt export` build as `.NAME.tmp-XXXX` before renaming them into place.
TEMPORARY = re.compile(r"^\..+\.(tmp|keras)$|^\..+\.tmp-[^/]+$")


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread at the first SIGINT or SIGTERM; ``exit_code`` is 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


_lock = threading.Lock()
_hooks: list[Callable[[], None]] = []
_watched: set[Path] = set()
_received: list[int] = []
_announced = False
_installed = False
_raised = False


def received() -> bool:
    """Whether a SIGINT or SIGTERM has arrived since :func:`install`."""
    return bool(_received)


def on_interrupt(hook: Callable[[], None]) -> Callable[[], None]:
    """Run ``hook`` (from any thread) once a signal arrives, before the line is printed; returns a
    function that unregisters it. Hooks must be quick and must not raise."""
    with _lock:
        _hooks.append(hook)

    def remove() -> None:
        with _lock:
            if hook in _hooks:
                _hooks.remove(hook)

    return remove


def watch(folder: str | os.PathLike) -> None:
    """Remove the temporary files in ``folder`` (and temporary folders beside it) if the process has
    to end before its own cleanup ran."""
    with _lock:
        _watched.add(Path(folder))


def message(signum: int) -> str:
    """The one line printed when ``signum`` arrives."""
    if signum == signal.SIGTERM:
        return "nmt: terminated (SIGTERM); stopping"
    return "nmt: interrupted; stopping (press Ctrl-C again to quit at once)"


def announce(signum: int) -> None:
    """Run the hooks and print :func:`message` on stderr, once per process, from any thread."""
    global _announced
    with _lock:
        if _announced:
            return
        _announced = True
        hooks = list(_hooks)
    for hook in hooks:
        # A display that cannot stop must not keep the process alive.
        with contextlib.suppress(Exception):
            hook()
    try:
        sys.stderr.write(message(signum) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def sweep() -> None:
    """Delete the temporary siblings in the watched folders and beside them."""
    with _lock:
        folders = list(_watched)
    for folder in folders:
        for place in (folder, folder.parent):
            try:
                entries = list(place.iterdir())
            except OSError:
                continue
            for entry in entries:
                if not TEMPORARY.match(entry.name):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)


def exit_now(exc: BaseException | None = None) -> None:
    """After an interrupt was caught: print the line (if not yet printed) and end the process with
    ``os._exit``, which skips TensorFlow's slow teardown. Returns, doing nothing, when :func:`install`
    was not called (a library user or a test runner keeps its own process)."""
    if not _installed:
        return
    signum = _received[0] if _received else getattr(exc, "signum", signal.SIGINT)
    announce(signum)
    _exit(128 + signum)


def _exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _handler(signum: int, frame) -> None:
    global _raised
    if _raised:
        return  # the main thread is cleaning up after the first signal; the watcher does the rest
    _raised = True
    raise Interrupted(signum)


def _watcher(reader: socket.socket) -> None:
    deadline_set = False
    while True:
        try:
            data = reader.recv(64)
        except TimeoutError:  # the grace period passed: the main thread is stuck in a long operation
            sweep()
            _exit(128 + _received[0])
            return
        except OSError:
            return
        for signum in data:
            if signum not in SIGNALS:
                continue
            _received.append(signum)
            if len(_received) == 1:
                announce(signum)
            else:
                sweep()
                _exit(128 + _received[0])
        if _received and not deadline_set:
            reader.settimeout(GRACE_SECONDS)
            deadline_set = True


def install() -> None:
    """Handle SIGINT and SIGTERM as described above. Call once, from the main thread, before work
    starts (the command line's ``main`` does); elsewhere it does nothing."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    for signum in SIGNALS:
        signal.signal(signum, _handler)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    threading.Thread(target=_watcher, args=(reader,), name="nmt-interrupts", daemon=True).start()
    _installed = True
    # Keep the sockets alive for the life of the process.
    install.sockets = (reader, writer)
