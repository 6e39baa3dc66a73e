"""systemd/ingestd.service and ingestd.logrotate, checked by the real tools.

- `systemd-analyze verify` and `security --offline` judge the unit file;
- MemoryDenyWriteExecute=yes is tried for real: the kernel's PR_SET_MDWE (Linux >= 6.3) refuses
  writable+executable memory the same way systemd's seccomp filter does, and the daemon's stack
  (numpy, uvloop, orjson, the forkserver process pool) runs under it;
- logrotate rotates a file a live writer is logging to, twice, with the snippet's postrotate
  sending SIGHUP: no line may be lost or duplicated across the plain and compressed files.

Skipped with a reason when systemd-analyze or logrotate is missing, unless CI=true
(`scripts/system-deps.sh` installs both).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "ingestd.service"
LOGROTATE = ROOT / "systemd" / "ingestd.logrotate"
EXEC_START = "/opt/ingestd/venv/bin/ingestd run -c /etc/ingestd/ingestd.toml"


def tool(name: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if found is None:
        message = f"{name} is not installed (scripts/system-deps.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def directives(text: str) -> dict[str, list[str]]:
    """`Key` → every value it is given (systemd allows repeats), across sections."""
    out: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def wait_until(condition: object, what: str, timeout: float = 10.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_the_unit_keeps_its_contract() -> None:
    d = directives(UNIT.read_text())
    one = {k: v[-1] for k, v in d.items()}
    assert one["Type"] == "notify"
    assert one["NotifyAccess"] == "main"
    assert one["WatchdogSec"] == "30"
    assert one["Restart"] == "on-failure"
    assert one["RestartPreventExitStatus"] == "78"
    assert float(one["TimeoutStopSec"]) > 20 + 5  # shutdown_timeout_s + the forced-spool grace
    assert one["KillMode"] == "mixed"  # SIGTERM to the daemon, not to its pool workers
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert one["ExecStart"] == EXEC_START
    assert "ExecStartPre" not in d
    assert one["DynamicUser"] == "yes"
    assert (one["StateDirectory"], one["LogsDirectory"], one["ConfigurationDirectory"]) == (
        "ingestd",
        "ingestd",
        "ingestd",
    )
    assert one["WorkingDirectory"] == "/var/lib/ingestd"
    for key in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "RestrictNamespaces",
        "LockPersonality",
        "MemoryDenyWriteExecute",
    ):
        assert one[key] == "yes", key
    assert one["ProtectSystem"] == "strict"
    assert one["RestrictAddressFamilies"].split() == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert one["SystemCallArchitectures"] == "native"
    assert one["CapabilityBoundingSet"] == ""


@pytest.fixture
def verifiable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists here (verify checks)."""
    text = UNIT.read_text()
    assert text.count(EXEC_START) == 1
    unit = tmp_path / "ingestd.service"
    unit.write_text(text.replace(EXEC_START, f"{sys.executable} -m daemon run -c /etc/x.toml"))
    return unit


def test_systemd_analyze_verify_accepts_the_unit(verifiable_unit: Path) -> None:
    proc = subprocess.run(
        [tool("systemd-analyze"), "verify", str(verifiable_unit)],
        check=False,
        capture_output=True,
        text=True,
        cwd=verifiable_unit.parent,
        timeout=60,
    )
    complaints = [x for x in proc.stderr.splitlines() if "ingestd.service" in x]
    assert proc.returncode == 0, proc.stderr
    assert complaints == []  # unknown keys and bad values are warnings, not failures


def test_systemd_analyze_security_rates_the_unit_well(verifiable_unit: Path) -> None:
    # --threshold is on the 0..100 scale behind the printed 0.0..10.0 exposure: 20 means 2.0.
    proc = subprocess.run(
        [
            tool("systemd-analyze"),
            "security",
            "--offline=yes",
            "--threshold=20",
            "--no-pager",
            str(verifiable_unit),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout[-400:] + proc.stderr


MDWE_PRELUDE = """
import ctypes, mmap, sys

def wx_refused():
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except PermissionError:
        return True
    return False

def deny_write_execute():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        sys.exit(77)
    if not wx_refused():
        sys.exit(76)  # the restriction did not take: the test would prove nothing
"""

STACK = """
import asyncio, concurrent.futures, importlib.util, multiprocessing

def work(n):
    import numpy as np
    a = np.random.default_rng(0).normal(size=n)
    spectrum = np.abs(np.fft.rfft(a - a.mean()))
    return int(spectrum.argmax()), float(np.percentile(a, 95)), wx_refused()

async def main():
    import uvloop
    loop = asyncio.get_running_loop()
    ctx = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return await loop.run_in_executor(pool, work, 4096)

if __name__ == "__main__":
    deny_write_execute()
    import numpy, orjson, structlog, prometheus_client, uvloop
    import daemon.observability, daemon.tail
    for optional in ("asyncpg", "aiomqtt", "nats", "paho"):
        if importlib.util.find_spec(optional):
            importlib.import_module(optional)
    _, _, worker_refused = uvloop.run(main())
    assert worker_refused, "the pool worker did not inherit the restriction"
    print("ok")
"""


def run_under_mdwe(script: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    if proc.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux >= 6.3) to emulate the filter")
    assert proc.returncode != 76, "PR_SET_MDWE accepted but W+X memory still allowed"
    return proc


def test_the_stack_needs_no_writable_executable_memory(tmp_path: Path) -> None:
    script = tmp_path / "stack.py"
    script.write_text(MDWE_PRELUDE + STACK)
    proc = run_under_mdwe(script, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"


DAEMON_UNDER_MDWE = """
if __name__ == "__main__":
    deny_write_execute()
    from daemon.cli import main
    sys.exit(main(["run", "-c", sys.argv[1]]))
"""


def test_the_daemon_runs_a_bounded_pipeline_under_mdwe(tmp_path: Path) -> None:
    config = tmp_path / "ingestd.toml"
    config.write_text(
        textwrap.dedent(
            """
            [daemon]
            health_interval_s = 0.5
            [[sources]]
            type = "simulated"
            sensors = 4
            rate_hz = 2000
            max_readings = 300
            [[stages]]
            type = "features"
            window = 32
            workers = 1
            [[sinks]]
            type = "jsonl"
            path = "out/readings.jsonl"
            """
        )
    )
    script = tmp_path / "daemon_mdwe.py"
    script.write_text(MDWE_PRELUDE + DAEMON_UNDER_MDWE)
    proc = run_under_mdwe(script, str(config), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    [done] = [e for e in events if e["event"] == "shutdown_complete"]
    assert done["counters"]["read"] == 4 * 300
    assert done["counters"]["in_flight"] == 0


WRITER = """
import signal, sys, threading, time
import structlog
from daemon.observability.logging import configure_logging

sink = configure_logging("info", sys.argv[1])
reopen, stop = threading.Event(), threading.Event()
# Like the daemon: the handler only sets a flag; the writing code reopens between lines.
signal.signal(signal.SIGHUP, lambda *_: reopen.set())
signal.signal(signal.SIGTERM, lambda *_: stop.set())
log = structlog.get_logger("writer")
i = 0
while not stop.is_set():
    if reopen.is_set():
        reopen.clear()
        sink.reopen()
    log.info("tick", i=i)
    i += 1
    if i % 20 == 0:
        time.sleep(0.0005)
print(i)
"""


def test_logrotate_rotation_with_reload_loses_and_duplicates_no_line(tmp_path: Path) -> None:
    logrotate = tool("logrotate")
    logs = tmp_path / "logs"
    logs.mkdir()
    log_file = logs / "ingestd.log"
    writer_py = tmp_path / "writer.py"
    writer_py.write_text(WRITER)
    writer = subprocess.Popen(
        [sys.executable, str(writer_py), str(log_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        snippet = LOGROTATE.read_text()
        reload_cmd = "systemctl reload ingestd.service >/dev/null 2>&1 || true"
        assert snippet.count("/var/log/ingestd/*.log") == 1
        assert snippet.count(reload_cmd) == 1
        conf = tmp_path / "logrotate.conf"
        conf.write_text(
            snippet.replace("/var/log/ingestd/*.log", f"{logs}/*.log").replace(
                reload_cmd, f"kill -HUP {writer.pid}"
            )
        )
        state = tmp_path / "logrotate.state"

        def has_lines() -> bool:
            return log_file.exists() and log_file.stat().st_size > 0

        for _ in range(2):
            wait_until(has_lines, "the writer to log into the current file")
            proc = subprocess.run(
                [logrotate, "-f", "-s", str(state), str(conf)],
                check=False,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == 0, proc.stderr
        wait_until(has_lines, "the writer to reopen the new file")
    finally:
        writer.send_signal(signal.SIGTERM)
        out, err = writer.communicate(timeout=30)
    assert writer.returncode == 0, err
    total = int(out)

    assert oct(log_file.stat().st_mode & 0o777) == "0o640"  # `create 0640`
    assert not (logs / "ingestd.log.1.gz").exists()  # delaycompress: the newest stays plain
    oldest = gzip.decompress((logs / "ingestd.log.2.gz").read_bytes()).decode()
    middle = (logs / "ingestd.log.1").read_text()
    newest = log_file.read_text()
    ticks = [
        [json.loads(line)["i"] for line in text.splitlines()] for text in (oldest, middle, newest)
    ]
    assert all(ticks), "a rotation produced an empty file"
    assert [i for part in ticks for i in part] == list(range(total))
