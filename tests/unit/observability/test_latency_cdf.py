"""The run's latency distribution that `shutdown_complete` carries (`e2e_latency_cdf_ms`): its
points are the histogram's bucket edges, the shares reach 1 at the exact maximum, and the
percentiles read off it agree with the histogram's own, to a bucket."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.observability.latency import LatencyHistogram

NOW = 1.8e9
BUCKET_RATIO = 1.125  # the widest bucket: an octave cut into 8 equal parts, the first


def test_the_cdf_rises_to_one_at_the_maximum_and_agrees_with_the_percentiles() -> None:
    histogram = LatencyHistogram()
    assert histogram.cdf_ms() == []
    rng = np.random.default_rng(3)
    ages = rng.lognormal(mean=np.log(0.1), sigma=0.4, size=20_000)  # ~100 ms, spread
    histogram.record(NOW - ages, now=NOW)
    cdf = histogram.cdf_ms()
    edges = [ms for ms, _ in cdf]
    shares = [share for _, share in cdf]
    assert edges == sorted(edges) and shares == sorted(shares)
    assert shares[-1] == 1.0
    # the exact maximum, not its bucket's edge (to the microsecond an epoch `ts` holds)
    assert edges[-1] == pytest.approx(float(ages.max()) * 1e3, abs=1e-3)
    for q in (0.5, 0.99):
        exact_ms = float(np.quantile(ages, q)) * 1e3
        # the first edge by which a share q of the readings had arrived: within a bucket of it
        edge = next(ms for ms, share in cdf if share >= q)
        assert exact_ms <= edge <= exact_ms * BUCKET_RATIO * 1.0001
    stats = histogram.stats()
    assert abs(next(ms for ms, s in cdf if s >= 0.5) / (stats.p50_s * 1e3) - 1) < BUCKET_RATIO - 1
    assert len(cdf) < 60  # a few dozen points: small enough for one log line
