"""`ingestd test`: pipeline unit tests written in TOML beside the config.

Why: a config is code. Someone edits a threshold, reorders two stages or changes an alert's
hold time, and the first sign of a mistake should not be a quiet dashboard a week later. A test
file names a config (or inline stages), input readings and the records expected after a stage
or at the sinks; `ingestd test` runs those stages in this process, on those inputs, and diffs.

`spec` reads a test file (`inputs`, `matchers`, `point` its parts), `run` runs one test's
stages, `compare` makes the diff, `report` is the command.
"""

from daemon.testing.report import add_test_arguments, run_tests

__all__ = ["add_test_arguments", "run_tests"]
