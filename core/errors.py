"""The one base class for errors that bad user input raises anywhere in `core`.

The server maps every `FlowVQError` to a 4xx with the error's message, so each subclass's message
must say, in plain words, what was wrong and what the user can do about it.
"""

__all__ = ["FlowVQError"]


class FlowVQError(ValueError):
    """Bad input that the user can fix (a file, a label, a setting); the message says how."""
