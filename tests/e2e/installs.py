"""Installing ingestd (and plugins) into fresh venvs, for the tests that check what users get.

Shared by test_install_venv.py (the README's service install, every dependency from the index)
and test_plugin_install.py (a plugin package installed beside ingestd). Both build from a copy of
the checkout, never the checkout itself, so the shared tree gets no `build/` or `*.egg-info`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "data",
    "*.egg-info",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
)


def unavailable(reason: str) -> None:
    """Skip when this machine cannot run the test; under CI that is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def run(
    cmd: list[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, env=env
    )


def copy_checkout(dest: Path) -> Path:
    """The checkout (sources, examples, config; no venv, caches or build output) at `dest`."""
    shutil.copytree(ROOT, dest, ignore=NOT_COPIED)
    return dest


def clean_env() -> dict[str, str]:
    """This process's environment without what would make a venv import the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def requirements(project: Path) -> list[Requirement]:
    """The runtime dependencies a project's pyproject.toml declares."""
    with (project / "pyproject.toml").open("rb") as f:
        declared = tomllib.load(f)["project"].get("dependencies", [])
    return [Requirement(r) for r in declared]


def build_requirements(project: Path) -> list[str]:
    """What a project's pyproject.toml says its build needs (`[build-system] requires`)."""
    with (project / "pyproject.toml").open("rb") as f:
        required: list[str] = tomllib.load(f)["build-system"]["requires"]
    return required


def build_tools(projects: list[Path], cache: Path) -> Path:
    """A directory (`pip install --target`) holding every build requirement of `projects`,
    kept in `cache` under a name derived from those requirements, so it is installed once.

    Why: pip's build isolation installs the build requirements afresh for every package it
    builds, which is most of an install's time; building `--no-build-isolation` with exactly
    these on the path (and nothing else) is the same build, without the repeat.
    """
    wanted = sorted({r for p in projects for r in build_requirements(p)})
    key = hashlib.sha256("\n".join([sys.version, *wanted]).encode()).hexdigest()[:16]
    tools = cache / f"build-tools-{key}"
    if tools.is_dir():
        return tools
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="build-tools-", dir=cache))
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(staging), *wanted]
    done = run(pip, timeout=600, env=clean_env())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    try:
        staging.rename(tools)  # atomic; a concurrent run that got there first wins
    except OSError:
        shutil.rmtree(staging)
    return tools


def dependency_view(wanted: list[Requirement], dest: Path, skip: set[str]) -> list[str]:
    """Symlinks in `dest` to the installed files of `wanted` and their own dependencies, from
    the environment running the tests, except the distributions named in `skip` (the ones the
    test installs itself). Returns the distribution names linked.

    Why: a venv given this directory (a .pth line) imports exactly the declared dependency
    closure, already installed, in milliseconds, and nothing else from here: an undeclared
    import still fails, and `pip check` still compares versions with the declarations.
    """
    dest.mkdir(parents=True)
    linked: list[str] = []
    todo = list(wanted)
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name in skip or name in linked:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            unavailable(f"{req.name} is not installed where the tests run")
            raise
        linked.append(name)
        for spec in dist.requires or []:
            sub = Requirement(spec)
            if sub.marker is None or sub.marker.evaluate({"extra": ""}):
                todo.append(sub)
        tops = {f.parts[0] for f in dist.files or []} - {"..", "__pycache__"}
        for top in tops:
            target = dest / top
            if not target.exists():
                target.symlink_to(Path(str(dist.locate_file(top))))
    return sorted(linked)
