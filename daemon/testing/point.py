"""Where a test looks at the records: after a stage, or at the sinks.

Named by the labels the daemon itself uses in its logs and `/metrics` (`stages[2]`, `sinks[0]`),
so a test reads like the pipeline it checks:

- `stages[N]`: what stage N yields (the stages after it do not run);
- `sinks`: what the last stage yields, i.e. what the fan-out hands the sinks;
- `sinks[N]`: what sink N is handed of that: the part its `kinds` select.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from daemon.config import ConfigIssue

_POINT = re.compile(r"(stages|sinks)(?:\[(\d+)\])?")


@dataclass(frozen=True)
class Point:
    section: Literal["stages", "sinks"]
    index: int | None  # None: `sinks`, after the last stage

    def __str__(self) -> str:
        return self.section if self.index is None else f"{self.section}[{self.index}]"

    def stages_run(self, stages: int) -> int:
        """How many of the chain's stages run to reach this point."""
        return self.index + 1 if self.section == "stages" and self.index is not None else stages


def parse_point(
    text: str, path: str, stages: int, sinks: int, issues: list[ConfigIssue]
) -> Point | None:
    """The point `text` names, if the pipeline under test has it (else an issue at `path`)."""
    match = _POINT.fullmatch(text.strip())
    if match is None:
        issues.append(ConfigIssue(path, f"must be stages[N], sinks or sinks[N], got {text!r}"))
        return None
    section: Literal["stages", "sinks"] = "stages" if match.group(1) == "stages" else "sinks"
    index = int(match.group(2)) if match.group(2) is not None else None
    if section == "stages" and index is None:
        issues.append(ConfigIssue(path, "name the stage: stages[N] (or sinks: after the last)"))
        return None
    if index is not None:
        have = stages if section == "stages" else sinks
        if index >= have:
            what = f"{have} {section}" if have else f"no {section}"
            issues.append(ConfigIssue(path, f"{section}[{index}] does not exist ({what} to test)"))
            return None
    return Point(section, index)
