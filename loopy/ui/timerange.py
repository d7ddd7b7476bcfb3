# -*- test-case-name: tests.test_ui_history -*-
"""
The time range of the history screen and of ``loopy-ui --history``, as pure
functions: what the user types (L{parse_when}), the range itself
(L{TimeRange}) and how the keys move it.  Times are seconds since the Unix
epoch; "now" is always passed in.
"""

from __future__ import annotations

import math
import re
import time
from datetime import datetime
from typing import Callable, Optional

from attrs import evolve, frozen

from loopy.history import HistoryQuery

#: Seconds per unit of a relative time (``10m``, ``2h`` …).
UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}

#: The shortest range the keys zoom to, seconds.
MIN_SPAN = 60.0
#: The longest, seconds: a year and a day (the default coarsest tier keeps a
#: year).
MAX_SPAN = 366 * 86400.0

#: Numbers below this are not taken as epoch seconds (they are 1973 or
#: earlier): ``10`` is more likely a relative time missing its unit.
EPOCH_FLOOR = 1e8

_RELATIVE = re.compile(r"^-?(\d+(?:\.\d+)?)\s*([smhdw])$")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")

SYNTAX = ("10m, 2h, 7d, 1w, 90s (ago), now, 2026-11-21T10:00[:SS], 2026-11-21 10:00, "
          "2026-11-21 (local time) or epoch seconds")


def parse_when(text: str, now: float,
               mktime: Callable[[time.struct_time], float] = time.mktime) -> float:
    """
    A time as the user writes it: relative (``10m`` is ten minutes before
    C{now}; units s, m, h, d, w; a leading ``-`` is allowed), ``now``, an
    ISO 8601 date and time (``2026-11-21T10:00``, ``2026-11-21 10:00:30``,
    with an offset ``+01:00`` or ``Z`` if wanted) or a date (midnight), in
    local time as date(1) reads them, or seconds since the epoch.

    :param now: seconds since the epoch.
    :param mktime: a broken-down local time to seconds since the epoch
        (C{calendar.timegm} in tests, for UTC).
    :returns: seconds since the epoch.
    :raises ValueError: with the accepted forms, for anything else.
    """
    word = text.strip().lower()
    if word == "now":
        return now
    relative = _RELATIVE.match(word)
    if relative:
        return now - float(relative.group(1)) * UNITS[relative.group(2)]
    if _NUMBER.match(word):
        value = float(word)
        if value < EPOCH_FLOOR:
            raise ValueError(f"cannot read time {text!r}: give a unit ({word}m, {word}h …) "
                             "or seconds since the epoch")
        return value
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"cannot read time {text!r}: give {SYNTAX}") from None
    if when.tzinfo is not None:
        return when.timestamp()
    return mktime(when.timetuple()) + when.microsecond / 1e6


def span_text(seconds: float) -> str:
    """
    A duration in its largest whole-ish unit: ``90s``, ``30m``, ``1.5h``,
    ``7d``.
    """
    for unit in ("d", "h", "m"):
        if seconds >= UNITS[unit]:
            return f"{round(seconds / UNITS[unit], 1):g}{unit}"
    return f"{seconds:.0f}s"


@frozen
class TimeRange:
    """
    A range of history: C{span} seconds ending at C{until}, or ending now
    and following it (C{until} None: the screen refreshes it).

    :ivar span: the range's length, seconds, from L{MIN_SPAN} to
        L{MAX_SPAN}.
    :ivar until: the end, seconds since the epoch, or None for now.
    """

    span: float
    until: Optional[float] = None

    @classmethod
    def last(cls, span: float) -> "TimeRange":
        """
        The last C{span} seconds, following now (the presets).
        """
        return cls(_clamp_span(span))

    @classmethod
    def between(cls, since: float, until: float, now: float) -> "TimeRange":
        """
        From C{since} to C{until}; an end at or after C{now} follows now.

        :raises ValueError: if C{since} is not before C{until} (or now), or
            either is not finite.
        """
        if not (math.isfinite(since) and math.isfinite(until)):
            raise ValueError("times must be finite")
        end = min(until, now)
        if since >= end:
            raise ValueError("the start must be before the end (and before now)")
        return cls(_clamp_span(end - since), None if until >= now else until)

    @property
    def live(self) -> bool:
        """
        Whether the range ends now and follows it.
        """
        return self.until is None

    def bounds(self, now: float) -> tuple[float, float]:
        """
        ``(since, until)`` in seconds since the epoch.
        """
        end = now if self.until is None else self.until
        return end - self.span, end

    def query(self, now: float, agent_id: Optional[str] = None,
              max_points: int = 720, top: int = 20) -> HistoryQuery:
        """
        The hub question for this range: a live range asks up to the hub's
        now (C{until} None).
        """
        since, _until = self.bounds(now)
        return HistoryQuery(since=since, until=self.until, agent_id=agent_id,
                            max_points=max_points, top=top)

    def _ending(self, end: float, span: float, now: float) -> "TimeRange":
        # Never past now: an end at or after now, or less than a quarter of
        # the span before it (``[`` then ``]`` a few seconds later), follows
        # now.
        return TimeRange(span, None if end >= now - span / 4 else end)

    def earlier(self, now: float) -> "TimeRange":
        """
        The range moved back by half its span (key ``[``).
        """
        return self._ending(self.bounds(now)[1] - self.span / 2, self.span, now)

    def later(self, now: float) -> "TimeRange":
        """
        The range moved forward by half its span (key ``]``), following now
        once it ends within a quarter of its span of now.
        """
        return self._ending(self.bounds(now)[1] + self.span / 2, self.span, now)

    def zoom_in(self, now: float) -> "TimeRange":
        """
        Half the span around the middle (key ``+``); a range following now
        keeps following it (the newest half).
        """
        return self._zoom(self.span / 2, now)

    def zoom_out(self, now: float) -> "TimeRange":
        """
        Twice the span around the middle (key ``-``), not past now: a range
        that would end after now ends now instead.
        """
        return self._zoom(self.span * 2, now)

    def _zoom(self, span: float, now: float) -> "TimeRange":
        span = _clamp_span(span)
        if self.live:
            return evolve(self, span=span)
        since, until = self.bounds(now)
        return self._ending((since + until) / 2 + span / 2, span, now)

    def label(self, now: float,
              localtime: Callable[[float], time.struct_time] = time.localtime) -> str:
        """
        The range for the screen's title: ``last 1h (until now)``, or
        ``2026-11-21 10:00:00 → 2026-11-21 11:00:00 (1h)``.
        """
        if self.live:
            return f"last {span_text(self.span)} (until now)"
        since, until = self.bounds(now)
        stamp = "%Y-%m-%d %H:%M:%S"
        return (f"{time.strftime(stamp, localtime(since))} → "
                f"{time.strftime(stamp, localtime(until))} ({span_text(self.span)})")


def _clamp_span(span: float) -> float:
    return min(max(span, MIN_SPAN), MAX_SPAN)


#: The history screen's preset keys: key → (name, span in seconds).
PRESETS = {"1": ("hour", 3600.0), "2": ("day", 86400.0), "3": ("week", 604800.0)}
