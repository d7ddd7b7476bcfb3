"""
End to end, history and delivery (issue 6): a real ``twistd loopy-hub``
with its history in a real SQLite file, and a real ``twistd loopy-agent``
on ``lo`` with a disk spool, seeing real traffic and real port scans.  The
hub is stopped (SIGTERM) and, separately, killed (SIGKILL) for a while,
then started again on the same ``--data``; the agent is killed while no hub
is up, and restarted.  The history, read back with ``loopy-ui --json
--history``, must hold every per-second report and every alert exactly
once.
"""

from __future__ import annotations

import json
import signal
import socket
import time

from twisted.internet import defer, reactor, task
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from tests import e2e

#: Seconds each hub outage lasts.
OUTAGE = 6.0


def connect_scan(source: str, target: str, ports: range) -> None:
    """
    A connect scan from C{source} of C{ports} on C{target}, all closed (each
    refused at once on lo): the agent's port-scan detector raises one alert
    for the scanner.
    """
    for port in ports:
        with socket.socket() as s:
            s.bind((source, 0))
            s.settimeout(0.5)
            try:
                s.connect((target, port))
            except OSError:
                pass


@defer.inlineCallbacks
def history_json(hub_port: int, since: float, agent_id: str):
    """
    ``loopy-ui --json --history --since SINCE --agent ID``'s document, or
    None if it failed.
    """
    out, err, code = yield getProcessOutputAndValue(
        e2e.program("loopy-ui"),
        ["--hub", f"127.0.0.1:{hub_port}", "--json", "--history", "--since", repr(since),
         "--agent", agent_id, "--timeout", "10"],
        env=e2e.environment(),
    )
    if code != 0:
        return None
    return json.loads(out)


def agent_history(doc, agent_id: str):
    for agent in (doc or {}).get("agents", ()):
        if agent["agent_id"] == agent_id:
            return agent
    return None


class HistoryDeliveryTests(unittest.TestCase):
    timeout = 240

    def setUp(self):
        e2e.require_root()
        self.procs = e2e.start_processes(self)
        self.hub_port = e2e.free_port()
        self.agent_id = f"history-{time.monotonic_ns()}"
        self.target = e2e.loopback_address()
        self.data = str(self.procs.directory / "hub.data")
        self.spool = str(self.procs.directory / "spool")
        self.started = time.time()
        self.scanners: list[str] = []
        self.traffic = task.LoopingCall(self.send_traffic)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(self.udp.close)
        self.addCleanup(lambda: self.traffic.running and self.traffic.stop())

    def start_hub(self):
        self.procs.start_hub("hub", self.hub_port, "--data", self.data)

    def start_agent(self):
        self.procs.start_agent(self.agent_id, self.hub_port, "--interface", "lo",
                               "--filter", f"host {self.target}", "--spool", self.spool)

    def send_traffic(self):
        """
        Twenty datagrams a second to the target: real traffic in every
        report, also while the hub is away.
        """
        self.udp.sendto(b"loopy history", (self.target, 9))

    def scan(self):
        """
        A port scan from a new scanner address: one new alert.
        """
        scanner = e2e.loopback_address()
        self.scanners.append(scanner)
        connect_scan(scanner, self.target, range(20000, 20060))

    def sleep(self, seconds: float):
        return task.deferLater(reactor, seconds, lambda: None)

    @defer.inlineCallbacks
    def online(self):
        doc = yield e2e.fleet_json(self.hub_port, timeout=2)
        agent = e2e.agent_of(doc, self.agent_id)
        return agent if agent and agent["status"] == "online" and agent["capture"] else None

    @defer.inlineCallbacks
    def outage(self, sig: int):
        """
        Stop the hub with C{sig} for L{OUTAGE} seconds, scanning meanwhile
        (the alert and the reports wait in the agent's spool), then start it
        again on the same data and wait for the agent.
        """
        self.procs.stop("hub", sig)
        yield self.sleep(OUTAGE / 2)
        self.scan()
        yield self.sleep(OUTAGE / 2)
        self.start_hub()
        yield e2e.poll(self.online, 30, what="the agent online after the hub came back")

    @defer.inlineCallbacks
    def complete_history(self, newest_seq: int):
        """
        Poll until the history holds the agent's reports 1 to at least
        C{newest_seq} and an alert for every scanner; return its document.
        """
        def complete(doc):
            agent = agent_history(doc, self.agent_id)
            if agent is None:
                return None
            seqs = [point["seq"] for point in agent["series"]]
            scanners = {alert["src"] for alert in agent["alerts"]}
            if seqs and max(seqs) >= newest_seq and set(self.scanners) <= scanners \
                    and sorted(set(seqs)) == list(range(1, max(seqs) + 1)):
                return doc
            return None

        @defer.inlineCallbacks
        def check():
            doc = yield history_json(self.hub_port, self.started - 60, self.agent_id)
            return complete(doc)

        doc = yield e2e.poll(check, 60, interval=1.0, what="every report and alert in history")
        return agent_history(doc, self.agent_id)

    def assert_exactly_once(self, agent: dict) -> None:
        seqs = [point["seq"] for point in agent["series"]]
        self.assertEqual(sorted(seqs), list(range(1, len(seqs) + 1)),
                         "each report exactly once")
        self.assertEqual(len({p["epoch"] for p in agent["series"]}), 1)
        keys = [(a["epoch"], a["seq"]) for a in agent["alerts"]]
        self.assertEqual(len(keys), len(set(keys)), "each alert exactly once")
        by_scanner = [a["src"] for a in agent["alerts"] if a["src"] in self.scanners]
        self.assertEqual(sorted(by_scanner), sorted(self.scanners))
        raised = sum(point["alerts_raised"] for point in agent["series"])
        self.assertEqual(raised, len(keys), "every alert the agent raised is in history")

    @defer.inlineCallbacks
    def test_hub_stopped_and_killed(self):
        """
        Reports and alerts made while the hub was stopped, and while it was
        killed, reach the history after it returns; nothing twice.
        """
        self.start_hub()
        self.start_agent()
        yield e2e.poll(self.online, 30, what="the agent online")
        self.traffic.start(0.05)
        traffic_from = time.time()
        self.scan()
        yield self.sleep(3)
        yield self.outage(signal.SIGTERM)
        yield self.sleep(3)
        yield self.outage(signal.SIGKILL)
        yield self.sleep(3)
        self.traffic.stop()
        traffic_to = time.time()
        newest = yield self.online()
        agent = yield self.complete_history(newest["seq"])
        self.assert_exactly_once(agent)
        self.assertEqual(len(self.scanners), 3)
        # Real traffic in the reports of the outages too: every report
        # whose whole interval fell while the traffic ran counted packets.
        during = [p for p in agent["series"]
                  if traffic_from + 0.5 < p["ts"] - p["interval"] and p["ts"] < traffic_to]
        self.assertGreater(len(during), 2 * OUTAGE)
        self.assertGreater(min(p["packets_in"] for p in during), 0)
        log = self.procs.output(self.agent_id)
        self.assertNotIn("Traceback", log)
        self.assertNotIn("Traceback", self.procs.output("hub"))

    @defer.inlineCallbacks
    def test_agent_killed_while_no_hub(self):
        """
        An agent killed while no hub is up restarts with a new epoch and
        delivers what its previous run wrote to the spool: both runs'
        reports are in the history, each run's from seq 1 without a gap.
        """
        self.start_hub()
        self.start_agent()
        first = yield e2e.poll(self.online, 30, what="the agent online")
        self.traffic.start(0.05)
        self.procs.stop("hub", signal.SIGKILL)
        yield self.sleep(OUTAGE / 2)
        self.scan()
        yield self.sleep(OUTAGE / 2)
        self.procs.stop(self.agent_id, signal.SIGKILL)
        self.start_agent()
        yield self.sleep(2)
        self.start_hub()

        @defer.inlineCallbacks
        def second_run():
            agent = yield self.online()
            return agent if agent and agent["epoch"] != first["epoch"] else None

        newest = yield e2e.poll(second_run, 30, what="the agent's second run online")
        self.traffic.stop()

        @defer.inlineCallbacks
        def both_runs():
            doc = yield history_json(self.hub_port, self.started - 60, self.agent_id)
            agent = agent_history(doc, self.agent_id)
            if agent is None:
                return None
            runs: dict[int, list[int]] = {}
            for point in agent["series"]:
                runs.setdefault(point["epoch"], []).append(point["seq"])
            old = sorted(runs.get(first["epoch"], []))
            new = sorted(runs.get(newest["epoch"], []))
            scanners = {alert["src"] for alert in agent["alerts"]}
            # The old run reported at least through the outage (OUTAGE
            # seconds of reports, all spooled).
            if len(old) >= first["seq"] + OUTAGE - 2 and new and \
                    old == list(range(1, len(old) + 1)) and \
                    new == list(range(1, len(new) + 1)) and set(self.scanners) <= scanners:
                return agent
            return None

        agent = yield e2e.poll(both_runs, 60, interval=1.0,
                               what="both runs' reports and the alert in history")
        keys = [(a["epoch"], a["seq"]) for a in agent["alerts"]]
        self.assertEqual(len(keys), len(set(keys)))
