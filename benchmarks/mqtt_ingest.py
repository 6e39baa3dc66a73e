"""MQTT ingest: the `mqtt` source at QoS 1 against a bare paho subscriber, on one broker.

`.venv/bin/python -m benchmarks.mqtt_ingest [--runs 5] [--messages 100000] [--quick]`

In one invocation, on two private Mosquitto brokers (`benchmarks.mosquitto`: the stock
settings, and tuned for a consumer that withholds acks), each run publishing the same files
with `mosquitto_pub -l -q 1` on a fresh topic:

- `bare`: messages/s a bare paho subscriber (MQTT 5, QoS 1, automatic acks, counting only, its
  own process) receives, from the publishers' start to its last message;
- `pipeline`: messages/s of the whole daemon, mqtt (QoS 1, acks withheld until taken) through
  the default chain into a jsonl file, from the publishers' start to the file's last write;
- `arrays`: the same pipeline with 100-reading array payloads, in readings/s;
- `arrays_decode_only`: the shared payload decoder alone on those payloads (no broker, no
  pipeline), in the source's group size: the ceiling the `arrays` number cannot pass.

Loss is counted every run: published readings minus distinct (sensor_id, seq) in the output
(and the bare subscriber's missing messages). Medians of `--runs`, round-robin so a busy moment
hits every variant alike. Stdout: one JSON object per run, then one `summary` per variant and
the checks; stderr: a table. Exit 1 if a check fails: on the tuned broker the pipeline must
reach 0.9x the bare subscriber with zero loss, and arrays 1M readings/s.

Why several publishers, each under 65,536 lines: mosquitto_pub 2.0.11's `-l` at QoS 1 decides
it is done when the packet id of the last line is acknowledged, and packet ids wrap at 65,535;
fed more lines it disconnects early and silently drops the rest (measured: 100,000 lines,
34,465 arrive even at a QoS 0 subscriber).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import configs
from benchmarks.daemonrun import Observed, run_daemon
from benchmarks.mosquitto import Mosquitto
from daemon.sources.messages import Message, decode
from daemon.sources.mqtt import MqttSourceConfig

PUBLISHER_LINES = 65_000  # below mosquitto_pub's packet-id wrap (see the module doc)
PUBLISHERS = 2
ARRAY_READINGS = 100
IDLE_S = 2.0  # nothing more arrived for this long after the publishers ended: the run is over
_ARRAY_MIN_READINGS_S = 1_000_000
_PIPELINE_VS_BARE = 0.9


# -- payloads and publishing -----------------------------------------------------------------
def write_payloads(directory: Path, messages: int, per_message: int) -> list[Path]:
    """`messages` JSON lines (a reading, or an array of `per_message`) over enough files that
    each publisher stays below PUBLISHER_LINES; (sensor_id, seq) unique across all."""
    files = max(PUBLISHERS, -(-messages // PUBLISHER_LINES))
    paths = [directory / f"payloads-{per_message}-{i}.txt" for i in range(files)]
    handles = [p.open("w") for p in paths]
    try:
        for m in range(messages):
            readings = [_reading(m * per_message + k) for k in range(per_message)]
            body = readings[0] if per_message == 1 else readings
            handles[m % files].write(json.dumps(body, separators=(",", ":")) + "\n")
    finally:
        for h in handles:
            h.close()
    return paths


def _reading(i: int) -> dict[str, Any]:
    # 1000 sensors; values inside the default threshold filter's [10, 100], so all pass
    return {
        "sensor_id": f"m{i % 1000}",
        "seq": i // 1000,
        "ts": 1.7e9 + i * 1e-4,
        "value": 20.0 + (i % 600) / 10.0,
        "unit": "C",
    }


def publish(port: int, topic: str, files: list[Path]) -> tuple[float, float]:
    """Every file through its own `mosquitto_pub -l -q 1` at once; (start, end) wall clock."""
    start = time.time()
    procs = []
    for path in files:
        with path.open("rb") as stdin:
            procs.append(
                subprocess.Popen(
                    ["mosquitto_pub", "-p", str(port), "-t", topic, "-q", "1", "-l", "-M", "1000"],
                    stdin=stdin,
                )
            )
    for proc in procs:
        if proc.wait(timeout=300) != 0:
            raise RuntimeError(f"mosquitto_pub exited {proc.returncode}")
    return start, time.time()


# -- the bare subscriber (its own process: `python -m benchmarks.mqtt_ingest bare ...`) ------
def bare_subscriber(port: int, topic: str, expected: int) -> None:
    """Count QoS 1 messages on `topic`; print `subscribed` once the broker confirmed, then one
    JSON line {received, first, last} when `expected` arrived or IDLE_S passed without one."""
    import paho.mqtt.client as mqtt  # noqa: PLC0415 - only the subscriber process needs it
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415
    from paho.mqtt.packettypes import PacketTypes  # noqa: PLC0415
    from paho.mqtt.properties import Properties  # noqa: PLC0415

    seen = {"n": 0, "first": 0.0, "last": 0.0}

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        now = time.time()
        if not seen["n"]:
            seen["first"] = now
        seen["n"] += 1
        seen["last"] = now

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bare-{topic}", protocol=mqtt.MQTTv5
    )
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: print("subscribed", flush=True)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.ReceiveMaximum = 65_535  # as the source asks for
    client.connect("127.0.0.1", port, clean_start=True, properties=props)
    started = time.time()
    while seen["n"] < expected:
        client.loop(0.1)
        quiet_since = seen["last"] or started
        if time.time() - quiet_since > IDLE_S + (0 if seen["n"] else 30):
            break
    client.disconnect()
    print(json.dumps({"received": seen["n"], "first": seen["first"], "last": seen["last"]}))


def run_bare(broker: Mosquitto, files: list[Path], messages: int) -> dict[str, Any]:
    topic = f"bench/bare/{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.mqtt_ingest",
            "bare",
            str(broker.port),
            topic,
            str(messages),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        if proc.stdout.readline().strip() != "subscribed":
            raise RuntimeError("the bare subscriber did not subscribe")
        start, _ = publish(broker.port, topic, files)
        result = json.loads(proc.stdout.readline())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    elapsed = max(1e-9, result["last"] - start)
    return {
        "messages": messages,
        "received": result["received"],
        "lost": messages - result["received"],
        "elapsed_s": round(elapsed, 3),
        "messages_per_s": round(result["received"] / elapsed, 1),
    }


# -- the daemon --------------------------------------------------------------------------------
@dataclass
class _Publishing:
    """The publishers, started by the daemon's `source_subscribed` and watched for the end."""

    port: int
    topic: str
    files: list[Path]
    thread: threading.Thread | None = None
    times: list[float] = field(default_factory=list)

    def start(self) -> None:
        def go() -> None:
            self.times.extend(publish(self.port, self.topic, self.files))

        self.thread = threading.Thread(target=go, daemon=True)
        self.thread.start()

    @property
    def done(self) -> bool:
        return len(self.times) == 2


def pipeline_config(tmp: Path, port: int, topic: str) -> dict[str, Any]:
    return {
        "daemon": {
            "log_level": "info",
            "health_interval_s": 0.2,
            "shutdown_timeout_s": 30,
            "dead_letter": str(tmp / "dead-letter.jsonl"),
            "state_dir": str(tmp / "state"),
        },
        "sources": [
            {
                "type": "mqtt",
                "url": f"mqtt://127.0.0.1:{port}",
                "topics": [topic],
                "qos": 1,
                "client_id": f"bench-{topic.rsplit('/', 1)[-1]}",
            }
        ],
        "stages": configs.default_chain(),
        "sinks": [
            {"type": "jsonl", "path": str(tmp / "out.jsonl"), "spool_dir": str(tmp / "spool")}
        ],
    }


def run_pipeline(
    broker: Mosquitto, files: list[Path], messages: int, readings: int
) -> dict[str, Any]:
    topic = f"bench/pipe/{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="mqtt-bench-") as d:
        tmp = Path(d)
        pub = _Publishing(broker.port, topic, files)
        text = configs.render(pipeline_config(tmp, broker.port, topic))
        seen = run_daemon(text, tmp, stop=_stop_when_idle(pub), timeout_s=600)
        if pub.thread is not None:
            pub.thread.join()
        out = sorted(tmp.glob("out.jsonl*"))
        last_write = max(p.stat().st_mtime for p in out)
        keys = set()
        lines = 0
        for path in out:
            with path.open("rb") as f:
                for line in f:
                    row = json.loads(line)
                    if row.get("kind", "reading") == "reading":
                        keys.add((row["sensor_id"], row["seq"]))
                        lines += 1
    counters = seen.event("shutdown_complete")["counters"]
    elapsed = max(1e-9, last_write - pub.times[0])
    return {
        "messages": messages,
        "readings": readings,
        "written": lines,
        "lost": readings - len(keys),
        "duplicates": lines - len(keys),
        "elapsed_s": round(elapsed, 3),
        "messages_per_s": round(messages * len(keys) / readings / elapsed, 1),
        "readings_per_s": round(len(keys) / elapsed, 1),
        "counters": counters,
        "reconciles": counters["read"] + counters.get("replayed", 0)
        == counters["written"] + counters["filtered"] + counters["rejected"] + counters["spooled"],
    }


def _stop_when_idle(pub: _Publishing) -> Callable[[Observed], bool]:
    """Start publishing once subscribed; stop the daemon once the publishers are done and
    nothing was read or in flight for IDLE_S (the stock broker drops what it cannot queue)."""
    state = {"read": -1, "since": 0.0}

    def stop(seen: Observed) -> bool:
        event = seen.events[-1]
        if pub.thread is None and event.get("event") == "source_subscribed":
            pub.start()
        if not pub.done or event.get("event") != "pipeline_health":
            return False
        counters = event["counters"]
        if counters["read"] != state["read"] or counters["in_flight"]:
            state.update(read=counters["read"], since=time.monotonic())
            return False
        return time.monotonic() - state["since"] > IDLE_S

    return stop


# -- the whole benchmark -----------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mqtt_ingest")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--array-messages", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="a tiny workload, one run")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.messages, args.array_messages = 1, 2_000, 200
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="mqtt-bench-data-") as d:
        data = Path(d)
        singles = write_payloads(data, args.messages, 1)
        arrays = write_payloads(data, args.array_messages, ARRAY_READINGS)
        brokers = {"stock": Mosquitto(data / "stock", tuned=False)}
        brokers["tuned"] = Mosquitto(data / "tuned", tuned=True)
        try:
            for run in range(args.runs):
                for name, broker in brokers.items():
                    variants: dict[str, Callable[[], dict[str, Any]]] = {
                        "bare": partial(run_bare, broker, singles, args.messages),
                        "pipeline": partial(
                            run_pipeline, broker, singles, args.messages, args.messages
                        ),
                        "arrays": partial(
                            run_pipeline,
                            broker,
                            arrays,
                            args.array_messages,
                            args.array_messages * ARRAY_READINGS,
                        ),
                    }
                    if name == "tuned":
                        variants["arrays_decode_only"] = partial(
                            decode_only, arrays, args.array_messages
                        )
                    for variant, go in variants.items():
                        result = {"broker": name, "variant": variant, "run": run, **go()}
                        print(json.dumps(result), flush=True)
                        results.setdefault(f"{name}/{variant}", []).append(result)
        finally:
            for broker in brokers.values():
                broker.stop()
    return _summarise(results, args.runs)


def decode_only(files: list[Path], messages: int) -> dict[str, Any]:
    """The shared payload decoder alone on the array payloads, in groups of the size the
    source takes them (`max_batch` readings): the ceiling the pipeline cannot pass."""
    rules = MqttSourceConfig(topics=("t",)).rules()
    group = max(1, MqttSourceConfig(topics=("t",)).max_batch // ARRAY_READINGS)
    lines = [line for path in files for line in path.read_bytes().splitlines()][:messages]
    now = time.time()
    batch = [Message("t", line, now) for line in lines]
    decode(batch[:group], rules)  # sensors interned, as in a running daemon
    start = time.perf_counter()
    readings = sum(
        decode(batch[i : i + group], rules).readings for i in range(0, len(batch), group)
    )
    elapsed = time.perf_counter() - start
    return {"readings": readings, "readings_per_s": round(readings / elapsed, 1), "lost": 0}


def _summarise(results: dict[str, list[dict[str, Any]]], runs: int) -> int:
    def median(key: str, metric: str) -> float:
        return float(statistics.median(r[metric] for r in results[key]))

    rows = []
    for key, runs_of in results.items():
        metric = "readings_per_s" if "arrays" in key else "messages_per_s"
        values = [r[metric] for r in runs_of]
        summary = {
            "summary": key,
            "metric": metric,
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "runs": runs,
            "lost_total": sum(r["lost"] for r in runs_of),
            "duplicates_total": sum(r.get("duplicates", 0) for r in runs_of),
        }
        rows.append(summary)
        print(json.dumps(summary), flush=True)
    ratio = median("tuned/pipeline", "messages_per_s") / median("tuned/bare", "messages_per_s")
    tuned_lost = sum(r["lost"] for k in ("tuned/pipeline", "tuned/arrays") for r in results[k])
    checks = {
        "tuned_pipeline_vs_bare": round(ratio, 3),
        "tuned_pipeline_vs_bare_met": ratio >= _PIPELINE_VS_BARE,
        "tuned_pipeline_lost": tuned_lost,
        "tuned_zero_loss_met": tuned_lost == 0,
        "arrays_readings_per_s": median("tuned/arrays", "readings_per_s"),
        "arrays_met": median("tuned/arrays", "readings_per_s") >= _ARRAY_MIN_READINGS_S,
        "arrays_decode_only_readings_per_s": median("tuned/arrays_decode_only", "readings_per_s"),
        "reconciles": all(r.get("reconciles", True) for v in results.values() for r in v),
    }
    print(json.dumps({"checks": checks}), flush=True)
    print(
        f"{'variant':<26}{'metric':<16}{'median':>12}{'min':>12}{'max':>12}{'lost':>10}",
        file=sys.stderr,
    )
    for s in rows:
        print(
            f"{s['summary']:<26}{s['metric']:<16}{s['median']:>12,.0f}{s['min']:>12,.0f}"
            f"{s['max']:>12,.0f}{s['lost_total']:>10}",
            file=sys.stderr,
        )
    print(json.dumps(checks), file=sys.stderr)
    met = all(v for k, v in checks.items() if k.endswith("_met") or k == "reconciles")
    return 0 if met else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bare":
        bare_subscriber(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
        sys.exit(0)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
