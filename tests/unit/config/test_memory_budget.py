"""Memory bounded by validation: the worst case of a config is estimated and refused past
`daemon.memory_max_bytes`, with the keys of the largest parts named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import configs
from daemon.cli import EX_CONFIG, default_config_path, main
from daemon.config import ConfigError, load_config, parse_config
from daemon.config.budget import DEFAULT_MAX_BYTES, GIB, MIB, estimate, total_bytes

Doc = dict[str, Any]


def doc(
    daemon: Doc | None = None,
    source: Doc | None = None,
    stages: list[Doc] | None = None,
    sink: Doc | None = None,
) -> str:
    return configs.render(
        {
            "daemon": daemon or {},
            "sources": [{"type": "simulated"} | (source or {})],
            "stages": configs.default_chain() if stages is None else stages,
            "sinks": [sink or {"type": "jsonl", "path": "out.jsonl"}],
        }
    )


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    [issue] = info.value.issues
    return str(issue)


def test_the_default_config_is_well_inside_the_bound() -> None:
    app = load_config(default_config_path())
    assert 200 * MIB < total_bytes(app) < 512 * MIB
    assert app.daemon.memory_max_bytes == DEFAULT_MAX_BYTES == 2 * GIB


def test_every_limit_at_its_maximum_is_refused_naming_the_keys() -> None:
    """The config that took the daemon to 6 GiB in 15 s."""
    text = doc(
        daemon={"queue_batches": 100_000},
        source={"sensors": 1_000_000, "max_batch": 1_000_000, "queue_batches": 1000},
        stages=[
            {"type": "normalize", "window": 100_000},
            {"type": "moving_average", "window": 100_000},
            {"type": "features", "window": 65_536, "workers": 64, "max_pending": 1024},
        ],
    )
    message = refused(text)
    assert message.startswith("daemon.queue_batches, sources[0].max_batch: the worst case needs")
    assert "more than daemon.memory_max_bytes (2.0 GiB)" in message
    assert "stages[2].window x sources[0].sensors" in message


@pytest.mark.parametrize(
    ("daemon", "source", "stages", "named"),
    [
        ({}, {"sensors": 1_000_000}, None, "sources[0].sensors"),
        ({"queue_batches": 100_000}, {}, None, "daemon.queue_batches, sources[0].max_batch"),
        ({}, {"max_batch": 1_000_000}, [], "daemon.queue_batches, sources[0].max_batch"),
        ({"queue_batches": 8}, {"max_batch": 1_000_000, "rate_hz": 1e6}, [], None),
        (  # one reading a tick: a chunk a reading
            {},
            {"rate_hz": 20, "max_batch": 65536, "queue_batches": 1000},
            [],
            "sources[0].queue_batches, sources[0].max_batch",
        ),
        (
            {},
            {"sensors": 10_000},
            [{"type": "normalize", "window": 100_000}],
            "stages[0].window, sources[0].sensors",
        ),
        (
            {},
            {"sensors": 100_000},
            [{"type": "features", "window": 4096}],
            "stages[0].window, sources[0].sensors",
        ),
    ],
)
def test_one_knob_at_its_maximum(
    daemon: Doc, source: Doc, stages: list[Doc] | None, named: str | None
) -> None:
    """A single knob can exceed the bound; the error names it (None: this one fits)."""
    text = doc(daemon, source, stages)
    if named is None:
        assert total_bytes(parse_config(text)) <= DEFAULT_MAX_BYTES
    else:
        assert refused(text).startswith(f"{named}: the worst case needs")


def test_raising_the_bound_admits_a_big_config_knowingly() -> None:
    text = doc({"memory_max_bytes": 16 * GIB}, {"sensors": 1_000_000})
    app = parse_config(text)
    assert 2 * GIB < total_bytes(app) <= 16 * GIB


def test_the_estimate_is_above_what_was_measured() -> None:
    """Peak RSS measured on the 2-vCPU VM (the daemon and its children; a slow sink, so every
    queue fills)."""
    slow = {"type": "blackhole", "max_per_s": 1.0}
    blackhole = {"type": "blackhole"}
    devnull = {"type": "jsonl", "path": "/dev/null", "rotate_bytes": 0, "fsync": "never"}
    fast = {"sensors": 1000, "rate_hz": 1_000_000}
    measured = [
        # (config, peak MB)
        (doc({"queue_batches": 690}, fast | {"max_batch": 65536}, None, slow), 1448),
        (doc({"queue_batches": 8}, fast | {"max_batch": 1_000_000}, None, devnull), 1689),
        (doc({}, {"sensors": 400_000, "rate_hz": 1}, None, blackhole), 1178),
        (
            doc(
                {},
                {"sensors": 100_000, "rate_hz": 100},
                [*configs.default_chain(), {"type": "features", "window": 256, "workers": 2}],
                blackhole,
            ),
            1246,
        ),
    ]
    for text, peak_mb in measured:
        assert total_bytes(parse_config(text)) > peak_mb * 1e6


def test_the_parts_name_their_keys_largest_first() -> None:
    app = parse_config(doc({}, {"sensors": 100_000}))
    parts = estimate(app)
    assert [p.bytes for p in parts] == sorted((p.bytes for p in parts), reverse=True)
    assert any(p.keys == ("stages[1].window", "sources[0].sensors") for p in parts)


def test_validate_reports_the_estimate_and_run_refuses_like_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.toml"
    good.write_text(doc())
    assert main(["validate", "-c", str(good)]) == 0
    assert "worst-case memory ~" in capsys.readouterr().out
    big = tmp_path / "big.toml"
    big.write_text(doc(source={"sensors": 1_000_000}))
    for command in ("validate", "run"):
        assert main([command, "-c", str(big)]) == EX_CONFIG
        assert "sources[0].sensors: the worst case needs" in capsys.readouterr().err
