# -*- test-case-name: tests.test_spool -*-
"""
The spool directory's lock and state file (L{loopy.agent.spool}).

``DIR/lock`` is held with flock(2) (``LOCK_EX | LOCK_NB``) while an agent
uses the directory, so two agents never share a spool; the kernel releases
it when the agent dies.

``DIR/state.json`` says which records are done and keeps the counters that
last across runs; it is written to ``state.json.new``, fsynced, and renamed
over the old one (rename(2) is atomic), so it is always whole::

    {"version": 1,
     "next_id": 1042,            the id the next record gets
     "done_below": 1000,         every record with a lower id is done
     "done": [[1003, 1010]],     [start, end) ranges of done ids above it
     "reports_dropped": 7, "alerts_dropped": 0, "corrupt": 1}

"Done" is acknowledged by a hub, dropped at the bound, or skipped as
damaged.  A record acknowledged after the last write is sent again by the
next run (the hub stores it once).
"""

from __future__ import annotations

import fcntl
import json
import os
from bisect import bisect_right
from typing import Callable, Iterable

from twisted.logger import Logger

from loopy.errors import SpoolError

log = Logger()

STATE = "state.json"
LOCK = "lock"
COUNTERS = ("reports_dropped", "alerts_dropped", "corrupt")


def lock(directory: str) -> int:
    """
    Make C{directory} if needed and take its lock.

    :returns: the lock file's descriptor (closing it releases the lock).
    :raises SpoolError: if the directory cannot be made or written, or
        another process holds the lock.
    """
    path = os.path.join(directory, LOCK)
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise SpoolError(f"cannot use {directory} as the spool: {e.strerror}; "
                         "give --spool a directory this agent can write") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise SpoolError(f"the spool {directory} is in use by another agent "
                         f"(it holds {path}); give each agent its own --spool") from None
    return fd


def remove_leftovers(directory: str) -> None:
    """
    Delete C{*.new} files: writes (state, compactions) a crash cut short.
    """
    for name in os.listdir(directory):
        if name.endswith(".new"):
            os.unlink(os.path.join(directory, name))


def read_state(directory: str) -> dict:
    """
    The state file's content; ``{}`` if there is none, or if it is
    unreadable (logged: every record left is then sent again).
    """
    path = os.path.join(directory, STATE)
    try:
        with open(path, "rb") as f:
            state = json.loads(f.read())
        if not isinstance(state, dict) or state.get("version") != 1:
            raise ValueError("not a version 1 state")
        for key in ("next_id", "done_below") + COUNTERS:
            if not isinstance(state.get(key, 0), int):
                raise ValueError(f"{key} is not a number")
        return state
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warn("spool state {path} unreadable ({error}); its records will all be "
                 "sent again and its drop counters start at 0", path=path, error=e)
        return {}


def make_state(pending: Iterable[int], next_id: int, counters: dict) -> dict:
    """
    The state for records C{pending} (ascending ids) waiting and ids below
    C{next_id} given out.
    """
    ids = iter(pending)
    done_below = next(ids, next_id)
    done, last = [], done_below
    for record_id in ids:
        if record_id > last + 1:
            done.append([last + 1, record_id])
        last = record_id
    if next_id > last + 1:
        done.append([last + 1, next_id])
    return {"version": 1, "next_id": next_id, "done_below": done_below, "done": done,
            **{key: counters[key] for key in COUNTERS}}


def done_test(state: dict) -> Callable[[int], bool]:
    """
    A test of whether a record id is done, by C{state}.
    """
    done_below = state.get("done_below", 0)
    ranges = sorted((r[0], r[1]) for r in state.get("done", ())
                    if isinstance(r, list) and len(r) == 2
                    and all(isinstance(n, int) for n in r))
    starts = [start for start, _end in ranges]

    def done(record_id: int) -> bool:
        if record_id < done_below:
            return True
        at = bisect_right(starts, record_id) - 1
        return at >= 0 and record_id < ranges[at][1]

    return done


def write_state(directory: str, state: dict) -> None:
    """
    Replace the state file atomically.

    :raises OSError: if the disk refuses.
    """
    path = os.path.join(directory, STATE)
    temporary = path + ".new"
    with open(temporary, "w") as f:
        json.dump(state, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def sync_directory(directory: str) -> None:
    """
    fsync(2) the directory, so files made, renamed or deleted stay so.
    """
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
