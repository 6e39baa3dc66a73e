"""The reload plan: what changed, and whether it takes a new pipeline generation."""

from __future__ import annotations

from daemon.config import AppConfig, parse_config
from daemon.topology.reload import plan_reload

BASE = """
[daemon]
health_interval_s = {health}
queue_batches = {queue}

[[sources]]
type = "simulated"
sensors = {sensors}

[[stages]]
type = "normalize"
window = {window}
{extra_stage}
[[sinks]]
type = "blackhole"
spool_dir = "{spool}"
"""


def config(
    *,
    health: float = 10,
    queue: int = 64,
    sensors: int = 10,
    window: int = 50,
    extra_stage: str = "",
    spool: str = "spool",
) -> AppConfig:
    return parse_config(
        BASE.format(
            health=health,
            queue=queue,
            sensors=sensors,
            window=window,
            extra_stage=extra_stage,
            spool=spool,
        )
    )


def test_nothing_changed_is_neither_live_nor_a_rebuild() -> None:
    plan = plan_reload(config(), config())
    assert plan.changed == () and not plan.rebuild


def test_daemon_settings_apply_live() -> None:
    plan = plan_reload(config(), config(health=2))
    assert plan.changed == ("daemon",) and not plan.rebuild


def test_the_queue_size_takes_a_rebuild_though_it_is_a_daemon_setting() -> None:
    plan = plan_reload(config(), config(queue=8))
    assert plan.changed == ("daemon",) and plan.rebuild


def test_each_changed_component_is_named_and_rebuilds() -> None:
    old = config()
    plan = plan_reload(old, config(sensors=20, window=60, spool="elsewhere"))
    assert plan.changed == ("sources[0]", "stages[0]", "sinks[0]") and plan.rebuild
    added = config(extra_stage='[[stages]]\ntype = "moving_average"\n')
    assert plan_reload(old, added).changed == ("stages[1]",)
    assert plan_reload(added, old).changed == ("stages[1]",)
