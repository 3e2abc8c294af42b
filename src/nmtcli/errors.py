"""The project's exceptions.

Library code raises these; the command line turns them into one line on stderr and exit code 1
(see ``nmtcli.cli``). Messages say what is wrong, where, and what to do next, in library terms:
a setting is named by its config field, in backquotes when it is not the first word (```encoding```),
and the command line writes each as its flag (``--encoding``) with ``for_command_line``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_SETTING = re.compile(r"`([a-z][a-z0-9_]*)`")


def flag(name: str) -> str:
    """The command-line flag of setting ``name``: ``on_bad_line`` -> ``--on-bad-line``."""
    return "--" + name.replace("_", "-")


class NmtError(Exception):
    """Base class of every error nmtcli reports to the user."""

    def for_command_line(self, flags: Mapping[str, str] | None = None) -> str:
        """The message with each setting in backquotes written as its flag.

        ``flags`` maps setting names to the flags of the command being run; a setting it does not
        hold keeps its backquotes (that command has no such option). None: every setting becomes
        ``--setting-name``.
        """
        return _with_flags(str(self), flags)


def _with_flags(message: str, flags: Mapping[str, str] | None) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if flags is None:
            return flag(name)
        return flags.get(name, match.group(0))

    return _SETTING.sub(replace, message)


class ConfigError(NmtError, ValueError):
    """An option or setting is out of range or inconsistent.

    ``field`` names the setting (``batch_size``) when the message starts with it, so that the command
    line can say ``--batch-size`` instead.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field

    def for_command_line(self, flags: Mapping[str, str] | None = None) -> str:
        message = str(self)
        if self.field and message.startswith(self.field):
            name = (flags or {}).get(self.field) or flag(self.field)
            message = name + message[len(self.field) :]
        return _with_flags(message, flags)


class CorpusError(NmtError):
    """A corpus file cannot be read or parsed (missing, wrong encoding, malformed line, empty)."""


class DataError(NmtError):
    """A prepared data folder is missing, incomplete or inconsistent."""


class ModelError(NmtError):
    """A model folder is missing, incomplete, or from an incompatible version."""


class TrackingError(NmtError):
    """An experiment-tracking store (MLflow) cannot be reached or refuses what is logged."""
