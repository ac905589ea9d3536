"""The project's exceptions, in one place.

Every layer raises these (data flows ``service -> training/evaluation -> models -> nlp``, so this
module sits at the bottom where all of them can import it). The service maps each class to one
JSON error shape and an HTTP status; the command line prints ``message`` and exits non-zero.

Messages say what was expected, what came, and how to fix it.
"""

from __future__ import annotations

from typing import Any


class VerbatimError(Exception):
    """Base class. ``code`` is a stable machine-readable string; ``details`` is JSON-serialisable."""

    code = "verbatim_error"
    http_status = 400

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInputError(VerbatimError):
    """The caller gave text, a record or an argument that breaks a documented rule."""

    code = "invalid_input"
    http_status = 422


class InvalidFileError(InvalidInputError):
    """A whole file cannot be read (wrong format, not what its name says, unreadable encoding)."""

    code = "invalid_file"


class TaxonomyError(InvalidInputError):
    """A taxonomy file or object is invalid; ``details`` lists every problem with its path."""

    code = "invalid_taxonomy"


class DataUnavailableError(VerbatimError):
    """A public data set is not where ``VERBATIM_DATA`` (or ``../shared/data``) says."""

    code = "data_unavailable"
    http_status = 503


class ModelError(VerbatimError):
    """A model directory is missing, corrupt or does not match the taxonomy in use."""

    code = "model_error"
    http_status = 503


class NotFoundError(VerbatimError):
    code = "not_found"
    http_status = 404


class ConflictError(VerbatimError):
    code = "conflict"
    http_status = 409


class StorageError(VerbatimError):
    """The database cannot be reached, or its schema is newer than this version of Verbatim."""

    code = "storage_error"
    http_status = 503


class PolicyError(InvalidInputError):
    """A triage policy file or object is invalid; ``details`` lists every problem with its path."""

    code = "invalid_policy"


class UnavailableError(VerbatimError):
    """The service cannot take the work now (model still loading, queue full, shutting down).

    ``retry_after`` (seconds) says when trying again makes sense; the HTTP layer sends it as
    ``Retry-After``.
    """

    code = "unavailable"
    http_status = 503

    def __init__(self, message: str, *, retry_after: float | None = None, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after
