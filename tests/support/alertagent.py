"""
A scripted agent for end-to-end tests of the alert screens: it links to a
hub (L{AgentHello}) and sends crafted alerts (L{SendAlert}), as a real
agent's detectors would, without capturing anything.

Alerts, oldest first: ``new_listener`` (info, over, two days old),
``port_scan`` (critical, active, 5 s old) and ``arp_spoof`` (warning,
active, 1 s old).  Once a file named ``over`` appears in the working
directory, it sends revision 1 of ``arp_spoof`` with state ``over``.

Prints ``sent <kind> <revision>`` for each alert the hub answered.

Usage: python -m tests.support.alertagent HUB_PORT AGENT_ID
"""

import os
import socket
import sys
import time

from attrs import evolve
from twisted.internet import defer, task
from twisted.internet.endpoints import clientFromString, connectProtocol

from loopy.model import Alert
from loopy.wire import AgentHello, BoundedAMP, SendAlert

#: Seconds between looks for the ``over`` file.
TRIGGER_POLL = 0.1

SCAN_SAMPLES = [
    f"IP 192.0.2.66.40000 > 192.0.2.1.{port}: Flags [S], seq 1, win 1024, length 0"
    for port in (22, 23, 80, 443)
]


def alerts(agent_id: str, epoch: int, now: float) -> list[Alert]:
    """
    The alerts this agent raises, oldest first.
    """
    common = dict(agent_id=agent_id, epoch=epoch)
    return [
        Alert(seq=1, ts=now - 2 * 86400, updated=now - 2 * 86400 + 60, kind="new_listener",
              severity="info", state="over", revision=1,
              summary="192.0.2.1 began accepting connections on tcp/8080",
              dst="192.0.2.1", evidence={"port": 8080, "transport": "tcp"}, **common),
        Alert(seq=2, ts=now - 5, updated=now - 5, kind="port_scan", severity="critical",
              state="active", summary="192.0.2.66 SYN-scanned 120 ports on 192.0.2.1",
              src="192.0.2.66", dst="192.0.2.1",
              evidence={"technique": "syn", "ports": [22, 23, 80, 443], "ports_count": 120,
                        "threshold": {"ports": 20, "window_s": 5.0},
                        "samples": SCAN_SAMPLES}, **common),
        Alert(seq=3, ts=now - 1, updated=now - 1, kind="arp_spoof", severity="warning",
              state="active", summary="192.0.2.254 moved from 02:00:00:00:00:01 "
              "to 02:00:00:00:00:66", src="192.0.2.254",
              evidence={"ip": "192.0.2.254", "old_mac": "02:00:00:00:00:01",
                        "new_mac": "02:00:00:00:00:66",
                        "samples": ["ARP, Reply 192.0.2.254 is-at 02:00:00:00:00:66"]},
              **common),
    ]


class ScriptedAgent(BoundedAMP):
    """
    The agent's link; C{lost} fires when it closes.
    """

    def __init__(self):
        BoundedAMP.__init__(self)
        self.lost = defer.Deferred()

    def connectionLost(self, reason):
        BoundedAMP.connectionLost(self, reason)
        self.lost.callback(None)


@defer.inlineCallbacks
def send(proto, alert: Alert):
    answer = yield proto.callRemote(SendAlert, alert=alert)
    print(f"sent {alert.kind} {alert.revision} accepted={answer['accepted']}", flush=True)


@defer.inlineCallbacks
def main(reactor, hub_port: str, agent_id: str):
    epoch = int(time.time() * 1e6)
    endpoint = clientFromString(reactor, f"tcp:host=127.0.0.1:port={hub_port}")
    proto = yield connectProtocol(endpoint, ScriptedAgent())
    yield proto.callRemote(AgentHello, agent_id=agent_id, hostname=socket.gethostname(),
                           epoch=epoch, version="test")
    raised = alerts(agent_id, epoch, time.time())
    for alert in raised:
        yield send(proto, alert)
    while not os.path.exists("over"):
        yield task.deferLater(reactor, TRIGGER_POLL, lambda: None)
    now = time.time()
    spoof = raised[-1]
    yield send(proto, evolve(spoof, revision=1, state="over", updated=now))
    yield proto.lost  # stay linked until the hub or a signal ends us


if __name__ == "__main__":
    task.react(main, sys.argv[1:3])
