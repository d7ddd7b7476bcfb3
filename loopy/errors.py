# -*- test-case-name: tests.test_wire -*-
"""
Loopy's errors.  Every error Loopy raises on purpose is a L{LoopyError};
its message says what went wrong and what the user can do about it.
"""


class LoopyError(Exception):
    """
    The root of Loopy's errors.
    """


class ConfigError(LoopyError):
    """
    A command-line option or configuration value is wrong.
    """


class CaptureError(LoopyError):
    """
    A capture source could not be opened (no such interface, no privilege,
    a filter that does not compile).
    """


class FilterError(CaptureError):
    """
    A capture filter (tcpdump syntax, see pcap-filter(7)) does not compile.
    """


class WireError(LoopyError):
    """
    A peer sent something that does not decode into the record it should
    carry (bad JSON, too large, wrong shape).
    """


class HubUnreachable(LoopyError):
    """
    The UI could not reach any hub it was given.
    """


class HistoryError(LoopyError):
    """
    The hub's history could not take or answer something: its write queue
    is full, a commit failed (disk full, I/O error), or a query is bad.
    """


class SpoolError(LoopyError):
    """
    The agent's spool directory cannot be used (not writable, locked by
    another agent, not a spool).
    """
