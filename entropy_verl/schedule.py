"""Piecewise-linear schedules by training step, for the settings a config marks ``Scheduled``.

A ``Scheduled`` setting takes a number, as before, or a list of ``[step, value]`` points:

    entropy_verl.controllers.pi.target_entropy='[[0,0.4],[200,0.1]]'   # 0.4 at step 0, linearly to 0.1 at step 200
    entropy_verl.methods.entropy_bonus.coef='[[0,1e-3],[50,1e-3],[100,0]]'

The value at step t is linear between the points around t, the first value before the first point and the last value
after the last one. Steps are verl's ``global_steps`` (the first training step is 1). Start-up checks the points
(integer steps >= 0 in increasing order, finite values) and builds the config at every point of the entry's schedules,
so the config's own range checks hold all along (they are linear, and every schedule is linear between the points).
The driver evaluates the schedules at the start of every step (``trainer/control.py``): controllers run with the
current values, loss methods get them with the step's coefficients, and each is logged as
``entropy_verl/schedule/<name>/<setting>``.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Annotated

SCHEDULABLE = "schedulable"
Scheduled = Annotated[float, SCHEDULABLE]
"""A float setting that may also be given as a schedule ``[[step, value], ...]``."""


def schedulable_fields(cls: type) -> tuple[str, ...]:
    """The fields of the config dataclass ``cls`` annotated ``Scheduled``."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple(name for name, hint in hints.items() if SCHEDULABLE in getattr(hint, "__metadata__", ()))


def is_schedule(value) -> bool:
    """Whether a config value is written as a schedule (a list) rather than a number."""
    return isinstance(value, (list, tuple))


@dataclass(frozen=True)
class Schedule:
    """``[[step, value], ...]`` with increasing integer steps; ``at(step)`` interpolates linearly."""

    points: tuple[tuple[int, float], ...]

    def at(self, step: int) -> float:
        steps = [s for s, _ in self.points]
        i = bisect.bisect_right(steps, step)
        if i == 0:
            return self.points[0][1]
        if i == len(self.points):
            return self.points[-1][1]
        (s0, v0), (s1, v1) = self.points[i - 1], self.points[i]
        return v0 + (v1 - v0) * (step - s0) / (s1 - s0)

    @property
    def steps(self) -> tuple[int, ...]:
        return tuple(s for s, _ in self.points)

    def as_list(self) -> list[list]:
        return [[s, v] for s, v in self.points]


FORM = "a schedule is [[step, value], ...] with increasing steps, e.g. [[0, 0.4], [200, 0.1]]"


def parse_schedule(value, key: str) -> Schedule:
    """``value`` (a list of ``[step, value]`` pairs) as a Schedule; a ValueError whose message names ``key`` and the
    offending point if not."""

    def bad(why: str) -> ValueError:
        return ValueError(f"{key}: {why} ({FORM})")

    if not value:
        raise bad("an empty schedule")
    points = []
    for i, point in enumerate(value):
        if not (is_schedule(point) and len(point) == 2):
            raise bad(f"point {i} is {point!r}, not a [step, value] pair")
        step, number = point
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise bad(f"point {i}: the step must be an integer >= 0, got {step!r}")
        if not isinstance(number, (int, float)) or isinstance(number, bool) or not math.isfinite(number):
            raise bad(f"point {i}: the value must be a finite number, got {number!r}")
        if points and step <= points[-1][0]:
            raise bad(f"point {i}: steps must increase, got {step} after {points[-1][0]}")
        points.append((step, float(number)))
    return Schedule(tuple(points))


def values_at(schedules: dict[str, Schedule], step: int) -> dict[str, float]:
    """{setting: its value at ``step``} of one entry's schedules."""
    return {setting: schedule.at(step) for setting, schedule in schedules.items()}


def points(schedules: dict[str, Schedule]) -> list[int]:
    """Every step at which one of an entry's schedules has a point, in order: between them all are linear."""
    return sorted({step for schedule in schedules.values() for step in schedule.steps})


def with_values(cfg, values: dict[str, float] | None):
    """The config dataclass ``cfg`` with a step's scheduled ``values`` (``cfg`` itself when there are none)."""
    return dataclasses.replace(cfg, **values) if values else cfg
