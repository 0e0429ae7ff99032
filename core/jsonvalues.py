"""Scalars read from JSON or YAML checked against the Python type a setting expects.

JSON has one number type and YAML turns ``yes`` into a bool, so the rules are written once:
an int is accepted (as a float) where a float is expected, and a bool is accepted only where a
bool is expected (``True`` is not the integer 1 here).
"""

from typing import Any

__all__ = ["KINDS", "as_kind"]

KINDS: dict[type, str] = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def as_kind(value: Any, expected: type) -> Any:
    """``value`` as ``expected`` (one of `KINDS`); raises TypeError naming the expected kind."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, expected) and (expected is bool or not isinstance(value, bool)):
        return value
    raise TypeError(f"must be {KINDS[expected]}, got {value!r}")
