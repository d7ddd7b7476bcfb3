# -*- test-case-name: tests.test_agent_tap -*-
"""
What every Loopy command line shares: value coercers that say what is wrong,
and a ``--version`` that reports Loopy's version.
"""

from __future__ import annotations

import sys

from twisted.python import usage

from loopy import __version__


def positive_int(value: str) -> int:
    """
    A whole number above zero.

    :raises ValueError: otherwise (usage.Options shows the message).
    """
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive whole number")
    return number


def positive_float(value: str) -> float:
    """
    A number of seconds above zero.

    :raises ValueError: otherwise.
    """
    number = float(value)
    if not number > 0:
        raise ValueError("must be a positive number of seconds")
    return number


def port(value: str) -> int:
    """
    A TCP/UDP port, 1-65535.

    :raises ValueError: otherwise.
    """
    number = int(value)
    if not 0 < number < 65536:
        raise ValueError("must be a port number, 1-65535")
    return number


class LoopyOptions(usage.Options):
    """
    usage.Options whose ``--version`` prints Loopy's version.
    """

    def opt_version(self):
        """
        Print Loopy's version and exit.
        """
        sys.stdout.write(f"loopy {__version__}\n")
        sys.exit(0)
