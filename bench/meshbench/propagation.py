"""
The exact time for a report to reach every hub, measured from the
simulator's side: a link to each hub watching the fleet
(L{loopy.wire.Watch}, no details) gets its L{loopy.wire.FleetUpdate} push
every second, in which each agent's entry has the seq of the newest report
that hub holds and C{last_heard}, the hub's clock when it merged that
report (from the agent or from a peer).  The simulator knows when it sent
each report.  Once every hub has shown report ``(agent, seq)``, its time to
reach every hub is the latest of those merge times minus its send time
(one machine, one clock).

A push shows only each agent's newest report, so a report a hub had
already replaced by the next one when it pushed is not sampled there; at
one report a second per agent and one push a second per hub, almost every
report is.  Each watching link costs its hub one fleet view a second (no
reports in it).
"""

from __future__ import annotations

import math
from typing import TextIO

from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from loopy.wire import BoundedAMP, FleetUpdate, Watch

#: Seconds a sent report waits to be seen on every hub before it is given up.
HORIZON = 60.0


def quantile(values: list, share: float) -> float:
    """
    The C{share} quantile of C{values} by nearest rank (0 for none).
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


class Propagation:
    """
    Send times of the simulator's reports, the hubs' merge times of them,
    and the samples: one line ``DONE LATENCY`` (seconds: the time it was
    complete, and its time to reach every hub) per report seen on every hub,
    written to C{out}.

    :ivar samples: reports seen on every hub; C{expired}: given up.
    :ivar watching: hubs whose view is being watched.
    """

    def __init__(self, hubs: int, epoch: int, out: TextIO):
        self.hubs = hubs
        self.epoch = epoch
        self.out = out
        self.sent: dict[tuple[str, int], float] = {}
        self.merged: dict[tuple[str, int], dict[int, float]] = {}
        self.samples = self.expired = self.watching = 0

    def report_sent(self, agent_id: str, seq: int, ts: float) -> None:
        self.sent[(agent_id, seq)] = ts

    def view(self, hub: int, view) -> None:
        """
        Hub number C{hub} pushed C{view} (a L{loopy.model.FleetView}).
        """
        for entry in view.agents:
            key = (entry.agent_id, entry.seq)
            if entry.epoch != self.epoch or key not in self.sent or entry.last_heard is None:
                continue
            times = self.merged.setdefault(key, {})
            times[hub] = entry.last_heard
            if len(times) == self.hubs:
                sent = self.sent.pop(key)
                del self.merged[key]
                done = max(times.values())
                self.out.write(f"{done!r} {done - sent!r}\n")
                self.samples += 1

    def expire(self, now: float) -> None:
        """
        Forget reports sent more than L{HORIZON} seconds before C{now}.
        """
        for key, sent in list(self.sent.items()):
            if now - sent > HORIZON:
                del self.sent[key]
                self.merged.pop(key, None)
                self.expired += 1
        self.out.flush()


class HubWatch(BoundedAMP):
    """
    A link to one hub that watches the fleet and hands every view on.
    """

    def __init__(self, propagation: Propagation, number: int):
        BoundedAMP.__init__(self)
        self.propagation = propagation
        self.number = number
        self.watching = False

    def connectionMade(self):
        BoundedAMP.connectionMade(self)
        d = self.callRemote(Watch, detail="")
        d.addCallbacks(self._watching, lambda failure: self.transport.loseConnection())

    def _watching(self, answer) -> None:
        self.watching = True
        self.propagation.watching += 1
        self.propagation.view(self.number, answer["view"])

    def connectionLost(self, reason):
        BoundedAMP.connectionLost(self, reason)
        if self.watching:
            self.propagation.watching -= 1

    @FleetUpdate.responder
    def fleet_update(self, view):
        self.propagation.view(self.number, view)
        return {}


def watch(reactor, propagation: Propagation, hubs: list[tuple[str, int]]) -> None:
    """
    Watch every hub of C{hubs} (``(host, port)``, numbered in that order).
    """
    for number, (host, port) in enumerate(hubs):
        connectProtocol(TCP4ClientEndpoint(reactor, host, port, timeout=10),
                        HubWatch(propagation, number))
