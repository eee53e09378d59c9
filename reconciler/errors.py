"""The exception tree. Everything the CLI turns into "message + exit 1" is a ReconcilerError."""

from __future__ import annotations

import signal


class ReconcilerError(Exception):
    """An expected failure with a message a person can act on."""


class UsageError(ReconcilerError):
    """The command line or a saved plan file is not usable as given."""


class OutputError(ReconcilerError):
    """A file the user asked for (``--out FILE``) cannot be written; nothing was written there."""


class BackendError(ReconcilerError):
    """The billing backend could not be read or written."""


class BackendNotFound(BackendError):
    """The backend named by the URL does not exist (e.g. a missing database file)."""


class LockTimeout(ReconcilerError):
    """Another apply holds the customer's lock for longer than we are willing to wait."""


class ProblemsError(ReconcilerError):
    """A file the provider wrote is malformed; carries its located problems (file, line, column)."""

    def __init__(self, message: str, problems: list | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class StateFileError(ProblemsError):
    """A billing state file (``state load``) is malformed; carries located problems."""


class OwnersMapError(ProblemsError):
    """The owners map (``owners.yaml``) is malformed; carries located problems."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what CI runners send on cancel), raised where Python raises KeyboardInterrupt
    for SIGINT, so both stop a read-only command the same way; exit 128 + ``signum``."""

    signum = int(signal.SIGTERM)


def interrupt_exit_code(exc: BaseException | None) -> int:
    """The exit code of a command stopped by ``exc``: 143 for SIGTERM, else 130 (SIGINT)."""
    return 128 + exc.signum if isinstance(exc, Terminated) else 130
