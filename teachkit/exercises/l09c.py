"""Lesson 09c's exercise: `format_time`, the `time` column of the stats table (mm:ss, or h:mm:ss past an hour).

The reference is fastprogress's `format_time`, the one `AvgStatsCallback` uses for that column: whole seconds
(truncated, not rounded), minutes and seconds two digits each, hours only when there are some.
"""
from __future__ import annotations

from typing import Any

from fastprogress.fastprogress import format_time

from . import Case, Exercise, Mistake, Verdict


def solution_format_time(t: float) -> str:
    """Seconds -> 'mm:ss', or 'h:mm:ss' from one hour on; fractions of a second are dropped."""
    t = int(t)
    h, m, s = t // 3600, t // 60 % 60, t % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


CASES = [Case("Under an hour", lambda: ([0, 5, 59.9, 61, 600, 754.2, 3599],)),
         Case("An hour and more", lambda: ([3600, 3725.4, 36000, 90061],))]


def _observe(fn: Any, args: tuple) -> dict[str, Any]:
    return {f"format_time({t})": fn(t) for t in args[0]}


def _unpadded(t):
    t = int(t)
    h, m, s = t // 3600, t // 60 % 60, t % 60
    return f"{h}:{m}:{s}" if h else f"{m}:{s}"


def _rounded(t):
    return solution_format_time(round(t))


def _no_hours(t):
    t = int(t)
    return f"{t // 60:02d}:{t % 60:02d}"


def _always_hours(t):
    t = int(t)
    return f"{t // 3600}:{t // 60 % 60:02d}:{t % 60:02d}"


MISTAKES = [
    Mistake(_unpadded, "pad minutes and seconds to two digits ({m:02d}:{s:02d}): '1:5' reads badly in a column."),
    Mistake(_rounded, "drop the fraction of a second (int(t)) rather than rounding: 59.9 s is still '00:59'."),
    Mistake(_no_hours, "from 3600 s on, show hours: h:mm:ss, with the minutes taken modulo 60."),
    Mistake(_always_hours, "show the hours only when there are some: under an hour it is mm:ss."),
]

EXERCISE = Exercise("format_time", format_time, CASES, _observe, MISTAKES,
                    signature_hint="It is called with one number of seconds and returns a str.",
                    solution=solution_format_time)


def check_format_time(fn: Any) -> Verdict:
    """Check a learner's `format_time(t)` against fastprogress's, the one the stats table uses."""
    return EXERCISE.check(fn)
