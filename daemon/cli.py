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
from daemon.manifest import builtin, manifest, render_manifest
from daemon.reference import render_markdown
from daemon.tail import add_tail_arguments, run_tail
from daemon.testing import add_test_arguments, run_tests
from daemon.tools.tap import add_tap_arguments, run_tap
from daemon.tools.top import add_top_arguments, run_top

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
    stages.add_argument(
        "--markdown", action="store_true", help="the component reference (docs/COMPONENTS.md)"
    )
    stages.add_argument(
        "--builtin", action="store_true", help="only the components that ship with ingestd"
    )
    tail = sub.add_parser("tail", help="a readable view of the JSON logs")
    add_tail_arguments(tail)
    test = sub.add_parser("test", help="run pipeline unit tests written in TOML")
    add_test_arguments(test)
    top = sub.add_parser("top", help="a live dashboard of a running daemon (over its HTTP)")
    add_top_arguments(top)
    tap = sub.add_parser("tap", help="live records at a stage or sink, as JSON lines")
    add_tap_arguments(tap)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    local = {"stages": _print_stages, "tail": run_tail, "test": run_tests}
    if args.command in local:  # the commands that need no config and no running daemon
        return local[args.command](args)
    if args.command in ("top", "tap"):  # the tools that talk to a running daemon's HTTP
        return run_top(args) if args.command == "top" else run_tap(args)
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


def _print_stages(args: argparse.Namespace) -> int:
    entries = builtin(manifest()) if args.builtin else manifest()
    if args.markdown:
        sys.stdout.write(render_markdown(entries))
    else:
        print(json.dumps(entries, indent=2) if args.json else render_manifest(entries))
    return EX_OK


def _invalid(path: Path, issues: list[ConfigIssue]) -> int:
    print(f"ingestd: invalid config {path}:", file=sys.stderr)
    for issue in issues:
        print(f"  {issue}", file=sys.stderr)
    return EX_CONFIG


def entrypoint() -> None:
    sys.exit(main())
