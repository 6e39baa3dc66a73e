"""The README's "Install as a service" steps, for real: a venv made with the system Python, the
checkout pip-installed into it (all dependencies, no system site-packages), then `ingestd
validate` and a bounded `ingestd run` as the unprivileged user `nobody`, in a state directory of
its own, with the environment systemd would give it.

Why the system Python: the unit runs with `DynamicUser=yes` and `ProtectHome=yes`, so a venv built
on an interpreter under /root (pyenv) cannot even be executed by the service user.

Why the install root is not under tmp_path: pytest makes tmp_path's ancestors
(/tmp/pytest-of-<user>/pytest-<n>) mode 0700, so no other user can reach anything below them;
the test itself would cause the very failure it exists to catch. The install root is a fresh
`mkdtemp` in the system temp directory opened to 0755 (like /opt/ingestd) and removed afterwards;
tmp_path holds the rest (the copy of the checkout pip builds from, so the shared checkout gets no
`build/`).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.installs import ROOT, clean_env, copy_checkout, run, unavailable

pytestmark = pytest.mark.e2e

SYSTEM_PYTHON = Path("/usr/bin/python3")
SERVICE_USER = "nobody"
SENSORS, MAX_READINGS = 20, 300
# What systemd gives the unit's main process: no PYTHONPATH or VIRTUAL_ENV leaking in from here.
SERVICE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.fixture
def install_root() -> Iterator[Path]:
    """A root-owned 0755 directory every user can traverse to, like /opt/ingestd."""
    base = Path(tempfile.gettempdir())
    blocked = [p for p in (base, *base.parents) if not p.stat().st_mode & 0o001]
    if blocked:
        unavailable(f"{blocked[0]} is not traversable by other users; cannot stage an install")
    root = Path(tempfile.mkdtemp(prefix="ingestd-install-test-", dir=base))
    try:
        root.chmod(0o755)
        yield root
    finally:
        shutil.rmtree(root)


@pytest.fixture
def service_user() -> pwd.struct_passwd:
    if not SYSTEM_PYTHON.exists():
        unavailable(f"{SYSTEM_PYTHON} is missing (Debian: apt-get install python3-venv)")
    version = run(
        [str(SYSTEM_PYTHON), "-c", "import sys; print(sys.version_info >= (3, 11))"], timeout=30
    )
    if version.stdout.strip() != "True":
        unavailable(f"{SYSTEM_PYTHON} is not Python >= 3.11 ({version.stdout}{version.stderr})")
    if run([str(SYSTEM_PYTHON), "-c", "import ensurepip, venv"], timeout=30).returncode:
        unavailable(f"{SYSTEM_PYTHON} has no venv/ensurepip (Debian: apt-get install python3-venv)")
    if os.geteuid() != 0:
        unavailable("switching to the service user needs root")
    if shutil.which("setpriv") is None:
        unavailable("setpriv (util-linux) is not installed")
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        unavailable(f"there is no user {SERVICE_USER!r}")
        raise


def bounded_config(path: Path) -> None:
    """config/ingestd.toml as the README installs it, bounded so the run ends by itself."""
    text = (ROOT / "config" / "ingestd.toml").read_text()
    for old, new in (
        ("sensors = 100", f"sensors = {SENSORS}"),
        ("rate_hz = 10", "rate_hz = 5000"),
        ("max_readings = 0 ", f"max_readings = {MAX_READINGS} "),
        ("health_interval_s = 10", "health_interval_s = 1"),
        ("workers = 2", "workers = 1"),
    ):
        assert text.count(old) == 1, f"config/ingestd.toml no longer has {old!r}"
        text = text.replace(old, new)
    path.write_text(text)
    path.chmod(0o644)


def test_the_readme_install_runs_as_an_unprivileged_user(
    tmp_path: Path, install_root: Path, service_user: pwd.struct_passwd
) -> None:
    # the README's steps: venv with the system Python, pip install of the checkout
    checkout = copy_checkout(tmp_path / "ingestd")
    venv = install_root / "venv"
    made = run([str(SYSTEM_PYTHON), "-m", "venv", str(venv)], timeout=120)
    assert made.returncode == 0, made.stderr
    pip = run(
        [str(venv / "bin" / "pip"), "install", "--no-cache-dir", str(checkout)],
        timeout=600,
        env=clean_env(),
    )
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-2000:]
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()

    config = install_root / "ingestd.toml"
    bounded_config(config)
    bad_config = install_root / "bad.toml"
    bad_config.write_text(config.read_text().replace("window = 10", "window = 0"))
    bad_config.chmod(0o644)
    state = install_root / "state"  # the unit's StateDirectory and WorkingDirectory
    state.mkdir(mode=0o700)
    os.chown(state, service_user.pw_uid, service_user.pw_gid)

    as_user = [
        "setpriv",
        f"--reuid={service_user.pw_uid}",
        f"--regid={service_user.pw_gid}",
        "--clear-groups",
        "--no-new-privs",
        "--",
    ]
    ingestd = str(venv / "bin" / "ingestd")

    def as_service(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run([*as_user, *args], timeout=timeout, cwd=state, env=SERVICE_ENV)

    where = as_service(
        str(venv / "bin" / "python"),
        "-c",
        "import os, sys, daemon; print(os.getuid(), sys.base_prefix, daemon.__file__)",
    )
    assert where.returncode == 0, where.stderr
    uid, base_prefix, package = where.stdout.split()
    assert int(uid) == service_user.pw_uid
    assert base_prefix == "/usr"  # the system interpreter, reachable without /root
    assert Path(package).is_relative_to(venv), "imported the checkout, not the installed package"

    validated = as_service(ingestd, "validate", "-c", str(config))
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.startswith(f"ok: {config}")

    ran = as_service(ingestd, "run", "-c", str(config))
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    events = [json.loads(line) for line in ran.stdout.splitlines() if line.strip()]
    [done] = [e for e in events if e["event"] == "shutdown_complete"]
    counters = done["counters"]
    assert counters["read"] == SENSORS * MAX_READINGS
    assert counters["in_flight"] == 0 and done["reconciled"] is True
    assert counters["features"] > 0  # the process pool worked as the service user too
    out = state / "data" / "readings.jsonl"  # the config's relative path, in the state dir
    assert out.stat().st_uid == service_user.pw_uid
    assert out.stat().st_size > 0

    # a bad config exits 78 at start, so RestartPreventExitStatus=78 stops systemd retrying
    refused = as_service(ingestd, "run", "-c", str(bad_config))
    assert refused.returncode == 78, refused.stdout + refused.stderr
    assert "stages[2].window: must be >= 1, got 0" in refused.stderr
