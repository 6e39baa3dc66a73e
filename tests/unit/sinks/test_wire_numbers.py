"""Number text for a whole column against orjson, number by number: the fast path (values on
the 1e-6 grid, integers below 1e15) and the fallback (anything else) print the same bytes, but
for -0.0, which prints as `0.0` on every path."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.wire.layout import constant, pack
from daemon.wire.numbers import number_field


def texts(column: npt.NDArray[Any], prefix: bytes = b"", suffix: bytes = b"") -> list[bytes]:
    """Each row's text as the encoder would emit it (NULs deleted)."""
    n = column.shape[0]
    words, width = pack(n, [constant(prefix), number_field(column), constant(suffix)])
    rows = np.ascontiguousarray(words.T).view(np.uint8).reshape(n, -1)
    assert not rows[:, width:].any()  # nothing past the row's width
    return [bytes(row[:width]).replace(b"\0", b"") for row in rows]


def expected(
    values: list[float] | list[int], prefix: bytes = b"", suffix: bytes = b""
) -> list[bytes]:
    """orjson's text, -0.0 as 0.0 (`+ 0.0` turns it into 0.0; integers stay integers)."""
    return [prefix + orjson.dumps(v + 0.0 if isinstance(v, float) else v) + suffix for v in values]


decimals = st.builds(
    lambda units, places: round(units / 10**places, places),
    st.integers(-(4 * 10**15), 4 * 10**15),
    st.integers(0, 6),
)  # what a sensor at some resolution, or a stage rounding to 6 places, produces
floats = st.one_of(
    decimals,
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-5, -1e-5, 9e-6, 1e-6, 4e9, 3.999999999e9, 1e16, 5e-324]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(floats, min_size=1, max_size=60))
def test_floats_print_as_orjson_prints_them(values: list[float]) -> None:
    column = np.array(values, dtype=np.float64)
    assert texts(column, b',"v":', b"}") == expected(values, b',"v":', b"}")


@settings(max_examples=200, deadline=None)
@given(st.lists(decimals, min_size=1, max_size=60))
def test_grid_values_print_as_orjson_prints_them(values: list[float]) -> None:
    assert texts(np.array(values)) == expected(values)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=60))
def test_integers_print_as_orjson_prints_them(values: list[int]) -> None:
    assert texts(np.array(values, dtype=np.int64), b"s") == expected(values, b"s")


def test_a_batch_of_sensor_readings_mostly_takes_the_fast_path() -> None:
    """Readings at 0.001 (the simulated sensors) and 6-place derived columns: exact, and with
    as few NULs as the widest value needs."""
    rng = np.random.default_rng(3)
    value = np.round(rng.uniform(10, 99.999, 5000), 3)
    field = number_field(value)
    assert field.patch is None  # no orjson fallback needed
    assert field.width == 6  # "dd.ddd"
    assert texts(value) == expected(value.tolist())
    normalized = np.round(rng.random(5000), 6)
    assert number_field(normalized).patch is None
    assert texts(normalized) == expected(normalized.tolist())


def test_non_finite_and_tiny_values_fall_back_to_orjson() -> None:
    """A few values off the grid are patched in from orjson; a column that is mostly off it
    (full-precision floats from a file) is printed by orjson whole."""
    few = [1.5, math.nan, 2.25, -math.inf, 3.0, 1e-7, 4.5, 5.0]
    field = number_field(np.array(few))
    assert field.patch is not None
    assert sorted(field.patch[0].tolist()) == [1, 3, 5]
    assert texts(np.array(few)) == [
        b"1.5",
        b"null",
        b"2.25",
        b"null",
        b"3.0",
        b"1e-7",
        b"4.5",
        b"5.0",
    ]
    most = [0.1 + 0.2, math.inf, 1 / 3, 2.5]
    assert number_field(np.array(most)).patch is None
    assert texts(np.array(most)) == [b"0.30000000000000004", b"null", b"0.3333333333333333", b"2.5"]


@settings(max_examples=200, deadline=None)
@given(st.lists(floats, min_size=1, max_size=60), st.integers(0, 59))
def test_no_path_prints_negative_zero(values: list[float], at: int) -> None:
    """-0.0 in a column on the fast path, beside values patched in from orjson, and in a column
    orjson prints whole (mostly finer floats)."""
    values[at % len(values)] = -0.0
    for column in (values, values + [0.1 + 0.2] * 2 * len(values)):
        printed = texts(np.array(column, dtype=np.float64))
        assert b"-0.0" not in printed
        assert printed == expected(column)
