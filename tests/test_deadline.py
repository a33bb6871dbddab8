"""The one timeout rule (``_core.deadline``): what every public ``timeout`` argument means."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from concurrency_kit._core.deadline import (
    MAX_TIMEOUT,
    MAX_WAIT_SLICE,
    check_timeout,
    deadline_after,
    remaining,
    wait_slice,
)


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        (None, None),
        (0, 0.0),
        (0.0, 0.0),
        (1.5, 1.5),
        (7, 7.0),
        (Fraction(1, 4), 0.25),
        (MAX_TIMEOUT, MAX_TIMEOUT),
        (math.inf, None),
        (1e300, None),
        (MAX_TIMEOUT * 2, None),
        (10**400, None),
        (Fraction(10**400, 3), None),
    ],
)
def test_accepted_timeouts(timeout: object, expected: float | None) -> None:
    assert check_timeout(timeout) == expected


@pytest.mark.parametrize("timeout", [math.nan, -math.nan, -1, -0.001, -math.inf, -(10**400)])
def test_nan_and_negative_timeouts_are_value_errors(timeout: float) -> None:
    with pytest.raises(ValueError, match="wait"):
        check_timeout(timeout, name="wait")


@pytest.mark.parametrize("timeout", [True, False, "1", b"1", 1j, [1]])
def test_non_numbers_are_type_errors(timeout: object) -> None:
    with pytest.raises(TypeError, match="number of seconds"):
        check_timeout(timeout)


def test_numpy_floats_are_numbers() -> None:
    np = pytest.importorskip("numpy")
    assert check_timeout(np.float64(0.5)) == 0.5
    with pytest.raises(ValueError, match="nan"):
        check_timeout(np.float64("nan"))


def test_deadlines() -> None:
    assert deadline_after(None) is None
    assert remaining(None) is None
    past = deadline_after(0.0)
    assert past is not None
    assert remaining(past - 10.0) == 0.0
    far = deadline_after(100.0)
    left = remaining(far)
    assert left is not None
    assert 0.0 < left <= 100.0


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(None, MAX_WAIT_SLICE), (0.0, 0.0), (-1.0, 0.0), (2.0, 2.0), (MAX_TIMEOUT, MAX_WAIT_SLICE)],
)
def test_wait_slice_is_bounded(seconds: float | None, expected: float) -> None:
    assert wait_slice(seconds) == expected
