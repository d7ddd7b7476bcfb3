"""
What each hub says of itself: connects to every hub given, as a UI would,
asks once (L{loopy.wire.Watch} without details, the cheapest full view:
no reports) and disconnects.  Prints one JSON document: a list, in the
order given, of ``{"hub": HubInfo as JSON, "hubs": [HubState as JSON],
"agents": agents listed, "online": those online}``, or ``{"error": why}``
for a hub that did not answer within the timeout.

Usage: python bench/meshbench/hubinfo.py [--timeout S] HOST:PORT …
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent.parent), str(HERE.parent)]

from twisted.internet import defer, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol  # noqa: E402

from loopy.model import ONLINE  # noqa: E402
from loopy.wire import BoundedAMP, FleetUpdate, Watch, to_json_value  # noqa: E402
from meshbench.agents import hub_address  # noqa: E402


class Asker(BoundedAMP):
    @FleetUpdate.responder
    def fleet_update(self, view):
        return {}


@defer.inlineCallbacks
def ask(reactor, host: str, port: int, timeout: float):
    proto = None
    try:
        proto = yield connectProtocol(
            TCP4ClientEndpoint(reactor, host, port, timeout=timeout), Asker()
        ).addTimeout(timeout, reactor)
        answer = yield proto.callRemote(Watch, detail="").addTimeout(timeout, reactor)
    except Exception as e:
        return {"error": f"{host}:{port}: {e!r}"}
    finally:
        if proto is not None and proto.transport is not None:
            proto.transport.loseConnection()
    view = answer["view"]
    return {"hub": to_json_value(view.hub),
            "hubs": [to_json_value(h) for h in getattr(view, "hubs", ())],
            "agents": len(view.agents),
            "online": sum(1 for a in view.agents if a.status == ONLINE)}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("hubs", nargs="+", type=hub_address)
    args = parser.parse_args(argv)

    @defer.inlineCallbacks
    def run(reactor):
        answers = yield defer.gatherResults(
            [ask(reactor, host, port, args.timeout) for host, port in args.hubs])
        print(json.dumps(answers))

    task.react(run)


if __name__ == "__main__":
    main(sys.argv[1:])
