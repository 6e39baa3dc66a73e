"""The comparison chain computes what the daemon computes, however it is optimised."""

from __future__ import annotations

import datetime as dt
from collections import deque

from hypothesis import given
from hypothesis import strategies as st

from benchmarks.baseline import IsoTime, SlidingRange

values = st.lists(
    st.sampled_from([1.0, 2.0, 2.0, 3.0]) | st.floats(-1e6, 1e6), min_size=1, max_size=300
)


@given(values, st.integers(1, 60))
def test_sliding_range_is_min_and_max_of_the_last_window_values(
    xs: list[float], window: int
) -> None:
    rng, last = SlidingRange(window), deque[float](maxlen=window)
    for x in xs:
        last.append(x)
        assert rng.push(x) == (min(last), max(last))


@given(st.lists(st.floats(0, 4e9, allow_nan=False), min_size=1, max_size=50))
def test_iso_time_matches_datetime_to_the_microsecond(stamps: list[float]) -> None:
    iso = IsoTime()
    for ts in sorted(stamps):
        micros = round(ts * 1e6)
        expected = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
        assert iso(ts) == expected.isoformat(timespec="microseconds")[:-6] + "Z"
