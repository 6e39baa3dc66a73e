"""`threshold_alert`: per-sensor threshold alerts with hysteresis, as derived records.

On `on` (a reading's `value`, the `moving_avg` column, or the `anomaly_score` of `features`
records), a sensor's condition is `> above` (or `< below`). Once it has held for `for_s` seconds
of reading time (`ts`), the stage emits one `{"kind": "alert", "state": "firing", ...}` record;
the alert then resolves, with one `"state": "resolved"` record, at the first input `<= clear_at`
(`>= clear_at` for `below`), so a value oscillating between `clear_at` and the threshold neither
resolves nor refires. Before firing, any input off the condition restarts the `for_s` clock.

Every record: `kind`, `sensor_id`, `state`, `since` (when the condition began, ISO-8601 UTC),
`value` (the input that changed the state), `rule`, `ts` (that input's time). Records are
appended to `batch.derived` and counted `alerts`; readings pass through untouched (the same
batch object, nothing filtered).

Decisions:
- NaN inputs (and readings with a non-finite `ts`) are ignored: they neither hold nor break the
  condition.
- `moving_avg`: the column is added by a stage that may or may not run before this one, which is
  known only at run time; a batch without it is logged once (`alert_input_missing`) and passes
  through unevaluated.
- `anomaly_score`: each `kind="features"` record in `batch.derived` is one input, at the `ts` of
  its window's last reading (`window_end_seq`), found in the same batch (the features stage
  attaches a record to the batch that completed its window). A record whose reading is not in
  the batch (dropped by a later filter) is skipped.

State per sensor (when the condition began, firing or not) lives in `ctx.carry`, so a reload
keeps open alerts open; it restarts when `on` or the direction (above/below) changed.

Cost: a few numpy passes per batch; only the rows of sensors whose condition holds somewhere in
the batch, or which are pending or firing, go through a Python loop (the state machine).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np

from daemon.batch import Batch, BoolArray, FloatArray, SensorArray
from daemon.components import Stage
from daemon.config import Duration
from daemon.observability import events
from daemon.runtime import ComponentContext
from daemon.sensors import SENSORS
from daemon.stages.windows.grouping import carried, grown

On = Literal["value", "moving_avg", "anomaly_score"]


@dataclass(frozen=True)
class ThresholdAlertConfig:
    """The `threshold_alert` stage's keys."""

    on: Annotated[
        On, "what is compared: value, moving_avg (the column), anomaly_score (features records)"
    ] = "value"
    above: Annotated[float | None, "fire when the input is > this (set above or below)"] = None
    below: Annotated[float | None, "fire when the input is < this (set above or below)"] = None
    clear_at: Annotated[
        float | None,
        "resolve when the input is <= this (>= for below); absent: the threshold itself",
    ] = None
    for_s: Annotated[Duration, "how long (by reading ts) the condition must hold to fire"] = 0.0
    rule: Annotated[str | None, "the alert's name in its records; absent: from the keys"] = None

    def check(self) -> list[tuple[str, str]]:
        if self.above is not None and self.below is not None:
            return [("above", "set one of above and below, not both")]
        if self.above is None and self.below is None:
            return [("above", "one of above or below is required")]
        for key in ("above", "below", "clear_at", "for_s"):
            value = getattr(self, key)
            if value is not None and not math.isfinite(value):
                return [(key, f"must be a finite number, got {value}")]
        if self.for_s < 0:
            return [("for_s", f"must be >= 0, got {self.for_s}")]
        if self.rule is not None and not self.rule.strip():
            return [("rule", "must not be empty (absent: derived from the keys)")]
        return self._check_clear_at()

    def _check_clear_at(self) -> list[tuple[str, str]]:
        """`clear_at` must lie on the side the alert resolves to, else it could never resolve."""
        clear = self.clear_at
        if clear is None:
            return []
        if self.above is not None and clear > self.above:
            return [("clear_at", f"must be <= above ({self.above}) to resolve, got {clear}")]
        if self.below is not None and clear < self.below:
            return [("clear_at", f"must be >= below ({self.below}) to resolve, got {clear}")]
        return []

    @property
    def is_above(self) -> bool:
        return self.above is not None

    @property
    def threshold(self) -> float:
        value = self.above if self.above is not None else self.below
        assert value is not None  # check() guarantees exactly one
        return value

    @property
    def clear_level(self) -> float:
        return self.threshold if self.clear_at is None else self.clear_at

    @property
    def rule_name(self) -> str:
        """`rule`, or e.g. `value > 80.0`, `moving_avg < 5.0 for 30.0s`."""
        if self.rule is not None:
            return self.rule
        name = f"{self.on} {'>' if self.is_above else '<'} {self.threshold}"
        return f"{name} for {self.for_s}s" if self.for_s else name


class AlertState:
    """Per sensor index: when the condition began (NaN: it does not hold) and whether firing."""

    def __init__(self, on: str, is_above: bool) -> None:
        self.on = on
        self.is_above = is_above
        self.began: FloatArray = np.full(0, math.nan, dtype=np.float64)
        self.firing: BoolArray = np.zeros(0, dtype=np.bool_)

    def reserve(self, sensors: int) -> None:
        self.began = grown(self.began, sensors, math.nan)
        self.firing = grown(self.firing, sensors, False)


def iso_utc(ts: float) -> str:
    """`ts` (epoch seconds) as ISO-8601 UTC with microseconds and `Z`, like the wire's `ts`."""
    when = dt.datetime.fromtimestamp(ts, dt.UTC)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


class ThresholdAlert(Stage[ThresholdAlertConfig], name="threshold_alert"):
    """Per-sensor threshold alerts (firing, resolved) with hysteresis and a hold time, as
    `kind="alert"` derived records; readings pass through untouched."""

    def __init__(self, config: ThresholdAlertConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.state = carried(
            ctx.carry,
            "threshold_alert.state",
            AlertState,
            lambda: AlertState(config.on, config.is_above),
            on=config.on,
            is_above=config.is_above,
        )
        self._rule = config.rule_name
        self._warned_missing = False

    async def process(self, batches: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
        async for batch in batches:
            inputs = self._inputs(batch)
            if inputs is not None:
                records = self.evaluate(*inputs)
                if records:
                    batch.derived = [*batch.derived, *records]  # `derived` may be shared
                    self.ctx.count_alerts(len(records))
            yield batch

    def _inputs(self, batch: Batch) -> tuple[SensorArray, FloatArray, FloatArray] | None:
        """(sensor, ts, input) in the order to evaluate them, or None to skip the batch."""
        on = self.config.on
        if on == "value":
            return batch.sensor, batch.ts, batch.value
        if on == "moving_avg":
            column = batch.columns.get("moving_avg")
            if column is None:
                if len(batch) and not self._warned_missing:
                    self._warned_missing = True
                    self.ctx.log.warning(
                        events.ALERT_INPUT_MISSING,
                        column="moving_avg",
                        hint="put a moving_average stage before this one; batches pass through",
                    )
                return None
            return batch.sensor, batch.ts, column
        return _anomaly_inputs(batch)

    def evaluate(
        self, sensor: SensorArray, ts: FloatArray, value: FloatArray
    ) -> list[dict[str, Any]]:
        """Advance each sensor's state over its inputs (in order); the records it emits."""
        n = sensor.shape[0]
        if n == 0:
            return []
        state = self.state
        state.reserve(int(sensor.max()) + 1)
        threshold, clear_level, for_s = (
            self.config.threshold,
            self.config.clear_level,
            self.config.for_s,
        )
        with np.errstate(invalid="ignore"):
            holds = value > threshold if self.config.is_above else value < threshold
        active = state.firing | ~np.isnan(state.began)
        active[sensor[holds]] = True
        rows = np.flatnonzero(active[sensor])
        if rows.shape[0] == 0:
            return []
        touched = np.unique(sensor[rows])
        began: dict[int, float] = dict(
            zip(touched.tolist(), state.began[touched].tolist(), strict=True)
        )
        firing: dict[int, bool] = dict(
            zip(touched.tolist(), state.firing[touched].tolist(), strict=True)
        )
        ids = SENSORS.ids_array()
        above = self.config.is_above
        records: list[dict[str, Any]] = []
        for s, t, v in zip(
            sensor[rows].tolist(), ts[rows].tolist(), value[rows].tolist(), strict=True
        ):
            if math.isnan(v) or not math.isfinite(t):
                continue  # no information: neither holds nor breaks the condition
            if firing[s]:
                if v <= clear_level if above else v >= clear_level:
                    records.append(self._record(ids[s], "resolved", began[s], v, t))
                    began[s] = math.nan
                    firing[s] = False
            elif v > threshold if above else v < threshold:
                if math.isnan(began[s]):
                    began[s] = t
                if t - began[s] >= for_s:
                    firing[s] = True
                    records.append(self._record(ids[s], "firing", began[s], v, t))
            else:
                began[s] = math.nan  # broken before it fired: the hold clock restarts
        state.began[touched] = [began[s] for s in touched.tolist()]
        state.firing[touched] = [firing[s] for s in touched.tolist()]
        return records

    def _record(
        self, sensor_id: str, status: str, since: float, value: float, ts: float
    ) -> dict[str, Any]:
        return {
            "kind": "alert",
            "sensor_id": sensor_id,
            "state": status,
            "since": iso_utc(since),
            "value": value,
            "rule": self._rule,
            "ts": iso_utc(ts),
        }


def _anomaly_inputs(batch: Batch) -> tuple[SensorArray, FloatArray, FloatArray] | None:
    """One input per `kind="features"` record of `batch`: its sensor, the ts of its window's
    last reading in `batch`, its `anomaly_score`. Records whose reading is absent are skipped."""
    wanted = [r for r in batch.derived if r.get("kind") == "features" and "anomaly_score" in r]
    if not wanted or not len(batch):
        return None
    present = np.unique(batch.sensor)
    index = dict(zip(SENSORS.ids_array()[present].tolist(), present.tolist(), strict=True))
    needed = {index[r["sensor_id"]] for r in wanted if r.get("sensor_id") in index}
    rows = np.flatnonzero(np.isin(batch.sensor, np.fromiter(needed, dtype=np.int32)))
    when = dict(
        zip(
            zip(batch.sensor[rows].tolist(), batch.seq[rows].tolist(), strict=True),
            batch.ts[rows].tolist(),
            strict=True,
        )
    )
    sensors: list[int] = []
    times: list[float] = []
    scores: list[float] = []
    for r in wanted:
        s = index.get(r.get("sensor_id"))
        t = when.get((s, r.get("window_end_seq"))) if s is not None else None
        if s is None or t is None:
            continue
        sensors.append(s)
        times.append(t)
        scores.append(float(r["anomaly_score"]))
    if not sensors:
        return None
    return (
        np.asarray(sensors, dtype=np.int32),
        np.asarray(times, dtype=np.float64),
        np.asarray(scores, dtype=np.float64),
    )
