# -*- test-case-name: tests.test_agent_tap -*-
"""
What every Loopy command line shares: value coercers that say what is wrong,
and a ``--version`` that reports Loopy's version.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

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


def non_negative_float(value: str) -> float:
    """
    A number of seconds, zero or more.

    :raises ValueError: otherwise.
    """
    number = float(value)
    if not number >= 0:
        raise ValueError("must be a number of seconds, 0 or more")
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


def hub_option(text: str, option: str = "--hub") -> str:
    """
    Check a ``--hub`` value (or another option's, named by C{option}, that
    takes a hub: ``--peer``; see L{loopy.endpoints.hub_endpoint}) and
    return its client endpoint string.

    :raises usage.UsageError: with what is wrong.
    """
    from twisted.internet import reactor
    from twisted.internet.endpoints import clientFromString

    from loopy.endpoints import hub_endpoint
    from loopy.errors import LoopyError

    try:
        endpoint = hub_endpoint(text)
    except LoopyError as e:
        raise usage.UsageError(str(e)) from None
    try:
        clientFromString(reactor, endpoint)
    except (ValueError, KeyError, TypeError) as e:
        raise usage.UsageError(f"bad {option} {text!r}: {e}") from None
    return endpoint


def parse_command_line(options: usage.Options, program: str, argv=None) -> bool:
    """
    Parse C{argv} (default: C{sys.argv[1:]}) into C{options}; on a usage
    error write it and the usage to stderr.

    :returns: False if the command line was wrong (exit with code 2).
    """
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as e:
        sys.stderr.write(f"{program}: {e}\n{options}")
        return False
    return True


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


class HubListOptions(LoopyOptions):
    """
    LoopyOptions with a repeatable C{--hub}: an ordered failover list.
    After parsing, C{self["hubs"]} is a tuple of client endpoint strings
    (L{hub_option}), C{(hub_option(default_hub),)} when none was given.
    Subclasses that define C{postOptions} call this one's.
    """

    default_hub = "tcp:127.0.0.1:7420"

    def __init__(self):
        LoopyOptions.__init__(self)
        self["hubs"] = []

    # One line: usage.Options shows a docstring as it is, indentation and all.
    def opt_hub(self, value):
        """Hub, HOST[:PORT] or endpoint; repeat for a failover list [default: 127.0.0.1:7420]"""
        endpoint = hub_option(value)
        if endpoint in self["hubs"]:
            raise usage.UsageError(f"--hub {value!r} is in the list twice")
        self["hubs"].append(endpoint)

    def postOptions(self):
        self["hubs"] = tuple(self["hubs"]) or (hub_option(self.default_hub),)


def default_data_dir() -> Path:
    """
    Where Loopy keeps its files by default: ``$XDG_DATA_HOME/loopy``, else
    ``~/.local/share/loopy`` (XDG Base Directory Specification).
    """
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "loopy"
