"""
The two clocks of one measurement, both this machine's wall clock: when an
attack's first packet reached the victim (L{FirstPacket}, tcpdump in the
victim's namespace: the kernel's receive stamp, as the agent's capture
gets it), and when each alert first reached a client watching the hub
(L{AlertWatch}, reading the lines of L{detectbench.watcher}).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path
from typing import Callable, Optional

_names = itertools.count(1)
_STAMP = re.compile(r"^(\d+\.\d+) ", re.M)


class FirstPacket:
    """
    ``tcpdump -c 1`` on the victim's eth0 with an attack's filter, started
    (and listening) before the attack.
    """

    def __init__(self, lab, capture_filter: str, timeout: float = 10.0):
        self.lab = lab
        self.name = f"first-packet-{next(_names)}"
        lab.start(lab.victim, self.name, [
            "tcpdump", "-i", lab.victim.iface, "-n", "-l", "-c", "1", "-tt", "-s", "128",
            "--time-stamp-precision=micro", capture_filter])
        deadline = time.monotonic() + timeout
        while "listening on" not in lab.procs.output(self.name):
            if time.monotonic() > deadline or lab.procs.children[self.name].poll() is not None:
                raise RuntimeError(f"tcpdump {capture_filter!r} did not start: "
                                   f"{lab.procs.output(self.name)}")
            time.sleep(0.02)

    def stamp(self, timeout: float = 5.0) -> Optional[float]:
        """
        The first matching packet's time (seconds since the epoch), or
        None if none came within C{timeout} seconds; tcpdump is stopped.
        """
        deadline = time.monotonic() + timeout
        try:
            while True:
                found = _STAMP.search(self.lab.procs.output(self.name))
                if found:
                    return float(found.group(1))
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.02)
        finally:
            self.lab.procs.stop(self.name)


def alert_key(alert: dict) -> tuple:
    return (alert["agent_id"], alert["epoch"], alert["seq"])


class AlertWatch:
    """
    The watcher's lines, read as they are appended to its log.

    :ivar first: alert key to C{(at, alert)}: when the hub first pushed
        that alert, and the revision it pushed.
    """

    def __init__(self, path: Path):
        self.path = path
        self._offset = 0
        self._partial = ""
        self.watching = False
        self.first: dict[tuple, tuple[float, dict]] = {}

    def read(self) -> None:
        try:
            with open(self.path) as f:
                f.seek(self._offset)
                text = f.read()
                self._offset = f.tell()
        except OSError:
            return
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.watching = True
            for alert in event["alerts"]:
                self.first.setdefault(alert_key(alert), (event["at"], alert))

    def wait(self, match: Callable[[dict], bool], timeout: float,
             known: frozenset = frozenset()) -> Optional[tuple[float, dict]]:
        """
        Wait up to C{timeout} seconds for an alert not in C{known} that
        C{match}es; return its first arrival C{(at, alert)}, or None.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.read()
            found = [v for k, v in self.first.items() if k not in known and match(v[1])]
            if found:
                return min(found, key=lambda v: v[0])
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def keys(self) -> frozenset:
        self.read()
        return frozenset(self.first)
