"""
Simulated agents: one process holding M AMP links to the hubs, each link
an agent that says hello (L{loopy.wire.AgentHello}) and then sends
L{loopy.wire.Report}s at a fixed rate, as a real agent's uplink does (it
does not wait for one answer before the next report).

Agent ``sim-NNNN`` (N from 0) reports to hub N mod H of the H given, and
its reports are due at ``start + N / (M × rate) + k / rate``: the agents
are spread evenly over the hubs and over each interval.  Each report is
the sample report (L{meshbench.sample}) with the agent's id, its seq and
``ts`` = the time it is sent (this machine's clock, the hubs' clock too).

Every second it appends one JSON line to the status file: ``{"t": time,
"linked": links whose hello was accepted, "sent", "acked", "failed",
"lost": cumulative counts, "lag_max", "lag_p99": how late sends ran behind
their due time in that second (s), "ack_p50", "ack_p99": seconds from a
report's send to its answer, answers of that second; with --reach,
"watching": hubs watched, "reached": reports seen on every hub,
"unreached": reports given up}``.

With ``--reach FILE`` it also watches every hub and writes each report's
time to reach every hub to FILE (L{meshbench.propagation}).

Usage: python bench/meshbench/agents.py --hubs HOST:PORT,HOST:PORT …
       --agents M --rate R --status FILE [--reach FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent.parent), str(HERE.parent)]

from twisted.internet import task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol  # noqa: E402
from twisted.protocols import amp  # noqa: E402

from loopy import __version__  # noqa: E402
from loopy.wire import AgentHello, BoundedAMP  # noqa: E402
from meshbench.propagation import Propagation, quantile, watch  # noqa: E402
from meshbench.sample import Encoder  # noqa: E402


class Encoded(amp.Argument):
    """
    A record already encoded by L{Encoder} (compressed JSON, one AMP value):
    what L{loopy.wire.Record} puts in the box, made beforehand.
    """

    def toString(self, inObject: bytes) -> bytes:
        return inObject


class EncodedReport(amp.Command):
    """
    L{loopy.wire.Report} with its report encoded beforehand.
    """

    commandName = b"Report"
    arguments = [(b"report", Encoded())]
    response = [(b"accepted", amp.Boolean())]


class Fleet:
    """
    The simulated agents and their counters.
    """

    def __init__(self, reactor, hubs: list[tuple[str, int]], agents: int, rate: float,
                 status: Path, reach: Optional[Path] = None):
        self.reactor = reactor
        self.hubs = hubs
        self.agents = agents
        self.period = 1.0 / rate
        self.status = status
        self.encoder = Encoder()
        self.epoch = int(reactor.seconds() * 1e6)
        self.start = reactor.seconds() + 1.0  # every link has a second to be made
        self.linked = self.sent = self.acked = self.failed = self.lost = 0
        self.lags: list[float] = []
        self.acks: list[float] = []
        self.propagation = (Propagation(len(hubs), self.epoch, reach.open("w"))
                            if reach is not None else None)

    def run(self) -> None:
        for n in range(self.agents):
            host, port = self.hubs[n % len(self.hubs)]
            # Links are made over the first half second, not all at once.
            self.reactor.callLater(n * 0.5 / self.agents, self._connect, n, host, port)
        if self.propagation is not None:
            watch(self.reactor, self.propagation, self.hubs)
        writer = task.LoopingCall(self.write_status)
        writer.clock = self.reactor
        writer.start(1.0, now=False)

    def _connect(self, n: int, host: str, port: int) -> None:
        link = AgentLink(self, f"sim-{n:04d}", self.start + n * self.period / self.agents)
        d = connectProtocol(TCP4ClientEndpoint(self.reactor, host, port, timeout=10), link)
        d.addErrback(lambda f: self._link_failed(link, f))

    def _link_failed(self, link: "AgentLink", failure) -> None:
        self.lost += 1
        print(f"{link.agent_id}: cannot connect: {failure.getErrorMessage()}",
              file=sys.stderr, flush=True)

    def write_status(self) -> None:
        lags, self.lags = self.lags, []
        acks, self.acks = self.acks, []
        line = {"t": self.reactor.seconds(), "linked": self.linked, "sent": self.sent,
                "acked": self.acked, "failed": self.failed, "lost": self.lost,
                "lag_max": max(lags, default=0.0), "lag_p99": quantile(lags, 0.99),
                "ack_p50": quantile(acks, 0.5), "ack_p99": quantile(acks, 0.99)}
        if self.propagation is not None:
            self.propagation.expire(line["t"])
            line.update(watching=self.propagation.watching,
                        reached=self.propagation.samples, unreached=self.propagation.expired)
        with self.status.open("a") as f:
            f.write(json.dumps(line) + "\n")


class AgentLink(BoundedAMP):
    """
    One simulated agent: hello, then a report every period from its first
    due time on.
    """

    def __init__(self, fleet: Fleet, agent_id: str, due: float):
        BoundedAMP.__init__(self)
        self.fleet = fleet
        self.agent_id = agent_id
        self.due = due
        self.seq = 0
        self.ready = False
        self.timer = None

    def connectionMade(self):
        BoundedAMP.connectionMade(self)
        d = self.callRemote(AgentHello, agent_id=self.agent_id, hostname=self.agent_id,
                            epoch=self.fleet.epoch, version=__version__, link=1)
        d.addCallbacks(self._accepted, self._refused)

    def _accepted(self, _answer) -> None:
        self.ready = True
        self.fleet.linked += 1
        self._schedule()

    def _refused(self, failure) -> None:
        print(f"{self.agent_id}: hello refused: {failure.getErrorMessage()}",
              file=sys.stderr, flush=True)
        self.transport.loseConnection()

    def _schedule(self) -> None:
        now = self.fleet.reactor.seconds()
        while self.due < now - self.fleet.period:  # never send a backlog in a burst
            self.due += self.fleet.period
        self.timer = self.fleet.reactor.callLater(max(0.0, self.due - now), self._send)

    def _send(self) -> None:
        fleet = self.fleet
        now = fleet.reactor.seconds()
        fleet.lags.append(now - self.due)
        self.seq += 1
        data = fleet.encoder.encode(self.agent_id, fleet.epoch, self.seq, now)
        fleet.sent += 1
        if fleet.propagation is not None:
            fleet.propagation.report_sent(self.agent_id, self.seq, now)
        d = self.callRemote(EncodedReport, report=data)
        d.addCallbacks(self._answered, self._failed, callbackArgs=(now,))
        self.due += fleet.period
        self._schedule()

    def _answered(self, _answer, sent: float) -> None:
        self.fleet.acked += 1
        self.fleet.acks.append(self.fleet.reactor.seconds() - sent)

    def _failed(self, failure) -> None:
        self.fleet.failed += 1

    def connectionLost(self, reason):
        BoundedAMP.connectionLost(self, reason)
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        if self.ready:
            self.fleet.linked -= 1
        self.fleet.lost += 1
        print(f"{self.agent_id}: link lost: {reason.getErrorMessage()}",
              file=sys.stderr, flush=True)


def hub_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hubs", required=True,
                        type=lambda s: [hub_address(h) for h in s.split(",") if h])
    parser.add_argument("--agents", type=int, required=True)
    parser.add_argument("--rate", type=float, default=1.0, help="reports/s per agent")
    parser.add_argument("--status", type=Path, required=True)
    parser.add_argument("--reach", type=Path, help="watch the hubs; write each report's "
                        "time to reach every hub here")
    args = parser.parse_args(argv)
    if args.agents < 1 or args.rate <= 0 or not args.hubs:
        parser.error("need at least one hub, one agent and a positive rate")

    from twisted.internet import reactor

    fleet = Fleet(reactor, args.hubs, args.agents, args.rate, args.status, args.reach)
    print(f"simulating {args.agents} agents, pid {os.getpid()}; each report is "
          f"{fleet.encoder.json_bytes} octets of JSON, {fleet.encoder.wire_bytes} compressed",
          flush=True)
    fleet.run()
    reactor.run()  # until SIGTERM or SIGINT (the reactor's own handlers stop it)
    fleet.write_status()

if __name__ == "__main__":
    main(sys.argv[1:])
