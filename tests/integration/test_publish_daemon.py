"""The daemon as users run it, publishing: readings to a NATS stream, alerts to MQTT (`kinds`),
against the machine's brokers; what arrived is read back from them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import nats
import pytest

from benchmarks import configs
from tests.brokers.nats import delete_stream
from tests.e2e.daemonproc import DaemonProcess, reconciles
from tests.mqtt_support import Subscriber

pytestmark = [pytest.mark.server("nats"), pytest.mark.server("mqtt")]
NATS_URL = "nats://127.0.0.1:4222"


async def test_readings_to_a_stream_and_alerts_to_mqtt(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    tag = uuid.uuid4().hex[:10]
    stream, prefix = f"DAEMON{tag}", f"daemon{tag}"
    config = configs.write(
        tmp_path / "ingestd.toml",
        {
            "daemon": {
                "dead_letter": str(tmp_path / "dead.jsonl"),
                "state_dir": str(tmp_path / "state"),
            },
            "sources": [
                {
                    "type": "simulated",
                    "sensors": 10,
                    "rate_hz": 1000.0,
                    "max_readings": 300,
                    "anomaly_rate": 0.3,
                    "seed": 7,
                }
            ],
            "stages": [{"type": "threshold_alert", "on": "value", "above": 60.0, "clear_at": 50.0}],
            "sinks": [
                {
                    "type": "nats",
                    "subject": prefix + ".{kind}.{sensor_id}",
                    "stream": stream,
                    "create": True,
                    "kinds": ["reading"],
                    "spool_dir": str(tmp_path / "spool-0"),
                },
                {
                    "type": "mqtt",
                    "topic": prefix + "/{kind}/{sensor_id}",
                    "kinds": ["alert"],
                    "spool_dir": str(tmp_path / "spool-1"),
                },
            ],
        },
    )
    sub = Subscriber(1883, f"{prefix}/#")
    try:
        d = DaemonProcess(config)
        daemons.append(d)
        assert d.finish(timeout=60) == 0, d.stderr
        c = d.counters()
        assert c["read"] == c["written"] == 3000 and reconciles(c)
        assert c["alerts"] > 0
        nc = await nats.connect(NATS_URL, max_reconnect_attempts=0)
        info = await nc.jetstream().stream_info(stream)
        await nc.close()
        assert info.state.messages == 3000  # readings only
        alerts = sub.wait_for(c["alerts"])
    finally:
        sub.close()
        await delete_stream(NATS_URL, stream)
    assert len(alerts) == c["alerts"]  # each alert once, and nothing else
    assert {json.loads(payload)["kind"] for _, payload in alerts} == {"alert"}
    assert all(topic.startswith(f"{prefix}/alert/") for topic, _ in alerts)
