"""The one base class for errors that bad user input raises anywhere in `core`.

The server maps every `FlowVQError` to a 4xx with the error's message and its class's ``code``, so
each subclass's message must say, in plain words, what was wrong and what the user can do about it,
and each subclass names its own ``code``: a stable snake_case word of the public API (docs/api.md,
"Errors"; tests/server/test_error_codes.py lists them all), which renaming the class never changes.
"""

from typing import ClassVar

__all__ = ["FlowVQError"]


class FlowVQError(ValueError):
    """Bad input that the user can fix (a file, a label, a setting); the message says how."""

    code: ClassVar[str] = "invalid_input"
