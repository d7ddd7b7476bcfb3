# -*- test-case-name: tests.test_ui_tables -*-
"""
Numbers, octets, ratios, durations and times as the UI's cells and lines
write them: short, fixed in shape, ``-`` for what is not known.
"""

from __future__ import annotations

import time
from typing import Callable, Optional


def human(value: float, unit: str = "", base: int = 1000) -> str:
    """
    A number in at most 5 characters plus a unit: ``950``, ``1.23k``,
    ``34.5M``, ``1.00G`` (SI for rates; C{base} 1024 for octets).  The prefix
    is chosen after rounding, so 999.6 is ``1.00k``, not ``1000``.
    """
    value = float(value)
    for prefix in ("", "k", "M", "G", "T", "P"):
        if prefix:
            text = _three_digits(value)
        elif 0 < abs(value) < 9.95 and value != int(value):
            text = f"{value:.1f}"  # slow rates: 0.5 queries/s is not 0
        else:
            text = f"{value:.0f}"
        if abs(float(text)) < base or prefix == "P":
            return text + prefix + unit
        value /= base
    raise AssertionError("unreachable")


def _three_digits(value: float) -> str:
    # 2 decimals below 10, 1 below 100, else none; judged after rounding.
    for decimals in (2, 1):
        text = f"{value:.{decimals}f}"
        if abs(float(text)) < 10 ** (3 - decimals):
            return text
    return f"{value:.0f}"


def octets(value: float) -> str:
    """
    Octets with binary prefixes: ``512B``, ``1.50kB`` (1 kB = 1024 B here,
    as iftop shows).
    """
    return human(value, "B", base=1024)


def percent(ratio: float) -> str:
    """
    A ratio (0 to 1) as a short percentage: ``0``, ``0.04%``, ``3.2%``,
    ``100%``.
    """
    if ratio <= 0:
        return "0"
    value = ratio * 100
    if value >= 10:
        return f"{value:.0f}%"
    if value >= 1:
        return f"{value:.1f}%"
    if value < 0.005:
        return "<0.01%"
    return f"{value:.2f}%"


def ms(value: Optional[float]) -> str:
    """
    Milliseconds, or ``-`` when unknown.
    """
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def age(seconds: Optional[float]) -> str:
    """
    An age: ``0.4s``, ``12s``, ``3m``, ``2h``, ``-`` when unknown.
    """
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{max(seconds, 0):.1f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def clock_time(ts: float, now: float,
               localtime: Callable[[float], time.struct_time] = time.localtime) -> str:
    """
    An alert's time in a table: local ``HH:MM:SS``, or the date
    (``YYYY-MM-DD``) when it is a day old or more.

    :param localtime: seconds since the epoch to a broken-down local time
        (``time.gmtime`` in tests).
    """
    if now - ts >= 86400:
        return time.strftime("%Y-%m-%d", localtime(ts))
    return time.strftime("%H:%M:%S", localtime(ts))


def full_time(ts: Optional[float],
              localtime: Callable[[float], time.struct_time] = time.localtime) -> str:
    """
    ``YYYY-MM-DD HH:MM:SS`` in local time, or ``-`` when unknown.
    """
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", localtime(ts))
