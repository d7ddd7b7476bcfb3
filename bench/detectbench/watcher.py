"""
A client of the hub that watches the fleet (L{loopy.wire.Watch}) and prints
one JSON line per alert revision the hub pushes (L{loopy.wire.AlertUpdate}),
stamped with the time it arrived: what a UI sees, and when.

Lines: ``{"event": "watching", "at": T, "alerts": [...]}`` once, with the
alerts the hub holds; then ``{"event": "update", "at": T, "alerts": [...]}``
per push; each alert ``{agent_id, epoch, seq, revision, kind, severity,
condition, src, dst, ts, updated, summary}``.  ``at`` is seconds since the
epoch on this machine's clock, the clock tcpdump stamps packets with.

Usage: python bench/detectbench/watcher.py PORT   (the hub on 127.0.0.1:PORT)
"""

import json
import sys
import time

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from loopy.wire import AlertUpdate, BoundedAMP, FleetUpdate, Watch


def emit(event: str, at: float, entries) -> None:
    alerts = [{
        "agent_id": e.alert.agent_id, "epoch": e.alert.epoch, "seq": e.alert.seq,
        "revision": e.alert.revision, "kind": e.alert.kind, "severity": e.alert.severity,
        "condition": e.alert.state, "src": e.alert.src, "dst": e.alert.dst,
        "ts": e.alert.ts, "updated": e.alert.updated, "summary": e.alert.summary,
    } for e in entries]
    print(json.dumps({"event": event, "at": at, "alerts": alerts}), flush=True)


class Watcher(BoundedAMP):
    def __init__(self):
        BoundedAMP.__init__(self)
        self.lost = Deferred()

    def connectionMade(self):
        BoundedAMP.connectionMade(self)
        d = self.callRemote(Watch, detail="")
        d.addCallback(lambda answer: emit("watching", time.time(), answer["view"].alerts))
        d.addErrback(lambda f: (print(f"watch failed: {f.getErrorMessage()}", file=sys.stderr),
                                self.transport.loseConnection()))

    def connectionLost(self, reason):
        BoundedAMP.connectionLost(self, reason)
        self.lost.callback(None)

    @AlertUpdate.responder
    def alert_update(self, batch):
        emit("update", time.time(), batch.alerts)
        return {}

    @FleetUpdate.responder
    def fleet_update(self, view):
        return {}


def main(reactor, port):
    d = connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", int(port)), Watcher())
    return d.addCallback(lambda proto: proto.lost)


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
