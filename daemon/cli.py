"""`ingestd run | validate | stages | tail`. Config errors exit 78 (EX_CONFIG), no traceback.

`validate` and `run` check the same things: the file (`load_config`: every key, and the keys
together, e.g. the worst-case memory), then the machine (`preflight`: e.g. the HTTP port free),
so what `validate` accepts does not fail at start-up for a reason it could have said."""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path

from daemon.app import Daemon
from daemon.config import ConfigError, ConfigIssue, load_config
from daemon.config.budget import total_bytes
from daemon.config.preflight import preflight
from daemon.manifest import manifest, render_manifest
from daemon.tail import add_tail_arguments, run_tail

EX_OK = 0
EX_CONFIG = 78


def default_config_path() -> Path:
    """The embedded default: simulated sensors through every stage into data/readings.jsonl."""
    return Path(str(resources.files("daemon") / "default.toml"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ingestd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("run", "run the daemon"),
        ("validate", "check a config file without running it"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument(
            "-c",
            "--config",
            type=Path,
            default=None,
            help="TOML config (default: the embedded default config)",
        )
    stages = sub.add_parser("stages", help="the manifest of every registered component")
    stages.add_argument("--json", action="store_true", help="machine-readable manifest")
    tail = sub.add_parser("tail", help="a readable view of the JSON logs")
    add_tail_arguments(tail)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "stages":
        entries = manifest()
        print(json.dumps(entries, indent=2) if args.json else render_manifest(entries))
        return EX_OK
    if args.command == "tail":
        return run_tail(args)
    path = args.config or default_config_path()
    try:
        config = load_config(path)
    except ConfigError as exc:
        return _invalid(path, exc.issues)
    if issues := preflight(config):
        return _invalid(path, issues)
    if args.command == "validate":
        print(
            f"ok: {path} ({len(config.sources)} sources, {len(config.stages)} stages, "
            f"{len(config.sinks)} sinks; worst-case memory ~{total_bytes(config) >> 20} MiB of "
            f"{config.daemon.memory_max_bytes >> 20})"
        )
        return EX_OK
    return Daemon(config).run()


def _invalid(path: Path, issues: list[ConfigIssue]) -> int:
    print(f"ingestd: invalid config {path}:", file=sys.stderr)
    for issue in issues:
        print(f"  {issue}", file=sys.stderr)
    return EX_CONFIG


def entrypoint() -> None:
    sys.exit(main())
