"""core.jsonvalues.as_kind: the one rule for scalars read from JSON and YAML."""

import pytest

from core.jsonvalues import as_kind


def test_ints_pass_as_floats_and_values_keep_their_kind() -> None:
    assert as_kind(3, float) == 3.0 and isinstance(as_kind(3, float), float)
    assert as_kind(2.5, float) == 2.5 and as_kind(4, int) == 4
    assert as_kind(True, bool) is True and as_kind("happy", str) == "happy"


@pytest.mark.parametrize(("value", "expected", "kind"), [
    (True, int, "an integer"), (False, float, "a number"), (2.0, int, "an integer"),
    ("3", int, "an integer"), (1, bool, "true or false"), (None, str, "a string"),
])
def test_other_kinds_are_refused_naming_what_was_expected(value, expected, kind) -> None:
    with pytest.raises(TypeError, match=f"must be {kind}"):
        as_kind(value, expected)
