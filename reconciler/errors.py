"""The exception tree. Everything the CLI turns into "message + exit 1" is a ReconcilerError."""

from __future__ import annotations


class ReconcilerError(Exception):
    """An expected failure with a message a person can act on."""


class UsageError(ReconcilerError):
    """The command line or a saved plan file is not usable as given."""


class BackendError(ReconcilerError):
    """The billing backend could not be read or written."""


class BackendNotFound(BackendError):
    """The backend named by the URL does not exist (e.g. a missing database file)."""


class StaleStateError(ReconcilerError):
    """Billing state changed since the plan was computed."""


class LockTimeout(ReconcilerError):
    """Another apply holds the customer's lock for longer than we are willing to wait."""


class StateFileError(ReconcilerError):
    """A billing state file (``state load``) is malformed; carries located problems."""

    def __init__(self, message: str, problems: list | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []
