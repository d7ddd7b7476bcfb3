"""
The alert screens of the real terminal UI: a real hub (``twistd
loopy-hub``), a scripted agent sending crafted alerts over the wire
(L{tests.support.alertagent}), and two ``loopy-ui`` in two tmux servers.
An acknowledgement in one UI must show in the other.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from twisted.internet import defer
from twisted.trial import unittest

from loopy.ui.client import default_user
from tests import e2e
from tests.test_e2e_ui import Tmux

#: Seconds an alert change may take to show in a UI ("within a few seconds").
PROPAGATION = 5.0


class AlertScreenTests(unittest.TestCase):
    """
    Marker, alert screen, filters, details, acknowledgement everywhere, an
    alert ending, and ``loopy-ui --json``.
    """

    timeout = 120

    def setUp(self):
        e2e.start_processes(self)
        self.hub_port = e2e.free_port()
        self.agent_id = f"al-{os.getpid()}"  # fits the alert screen's agent column
        self.procs.start_hub("hub", self.hub_port)
        return e2e.poll(self.hub_answers, 30, what="the hub to answer")

    def running(self, *names: str) -> None:
        for name in names:
            if self.procs.children[name].poll() is not None:
                raise AssertionError(f"{name} exited:\n{self.procs.output(name)}")

    @defer.inlineCallbacks
    def hub_answers(self):
        self.running("hub")
        doc = yield e2e.fleet_json(self.hub_port)
        return doc

    @defer.inlineCallbacks
    def alerts_at_hub(self):
        self.running("hub", "agent")
        doc = yield e2e.fleet_json(self.hub_port)
        return doc if doc and len(doc["alerts"]) == 3 else None

    def start_ui(self, number: int) -> Tmux:
        name = f"loopy-alerts-{os.getpid()}-{number}"
        tmux = Tmux(name)
        # Cleanups run last first: the server ends, then its socket file goes.
        socket_file = Path(os.environ.get("TMUX_TMPDIR", "/tmp"), f"tmux-{os.getuid()}", name)
        self.addCleanup(lambda: socket_file.unlink(missing_ok=True))
        self.addCleanup(tmux.kill)
        env = {"PYTHONPATH": str(e2e.REPO), "TERM": "xterm-256color", "LANG": "C.UTF-8"}
        tmux.start([e2e.program("loopy-ui"), "--hub", f"127.0.0.1:{self.hub_port}",
                    "--log", str(self.directory / f"ui{number}.log")], env)
        return tmux

    def wait(self, tmux: Tmux, *needles: str, absent: str = "", timeout: float = 15.0):
        """
        Poll C{tmux}'s screen until it shows every needle and not C{absent}.
        """

        def check():
            screen = tmux.screen()
            if tmux.dead():
                raise AssertionError(f"loopy-ui exited:\n{screen}")
            if all(n in screen for n in needles) and not (absent and absent in screen):
                return screen
            return None

        return e2e.poll(check, timeout, what=f"{needles} (not {absent!r}) on screen:\n"
                                             f"{tmux.screen()}")

    def wait_row(self, tmux: Tmux, needle: str, text: str, timeout: float = PROPAGATION):
        """
        Poll until the screen's line with C{needle} also shows C{text}.
        """

        def check():
            screen = tmux.screen()
            return screen if text in row(screen, needle) else None

        return e2e.poll(check, timeout, what=f"{text!r} on the line of {needle!r}:\n"
                                             f"{tmux.screen()}")

    @defer.inlineCallbacks
    def test_mark_list_filter_detail_acknowledge_everywhere(self):
        self.procs.start("agent", [sys.executable, "-m", "tests.support.alertagent",
                                   str(self.hub_port), self.agent_id])
        yield e2e.poll(self.alerts_at_hub, 20, what="three alerts at the hub")
        one, two = self.start_ui(1), self.start_ui(2)

        # The fleet screen: the agent's marker and the fleet-wide one.
        screen = yield self.wait(one, "Loopy · fleet", self.agent_id,
                                 "!! 2 alerts (1 critical) — press a")
        self.assertIn(" 2 crit ", row(screen, self.agent_id))

        # UI 2: the agent screen lists its alerts; `a` there opens the fleet's.
        yield self.wait(two, "Loopy · fleet", self.agent_id)
        two.keys("Enter")
        yield self.wait(two, "Loopy · agent", "!! alerts: 2 active of 3")
        two.keys("4")
        yield self.wait(two, "[4 alerts]", "port_scan", "arp_spoof", "new_listener")
        two.keys("a")
        yield self.wait(two, "Loopy · alerts 3/3")
        yield self.wait_row(two, "port_scan", "critical  active")

        # UI 1: every alert, newest first; the two-day-old one shows its date.
        one.keys("a")
        screen = yield self.wait(one, "Loopy · alerts 3/3",
                                 "3/3 alerts · severity all · any state",
                                 "arp_spoof", "port_scan", "new_listener")
        lines = [line_of(screen, kind) for kind in ("arp_spoof", "port_scan", "new_listener")]
        self.assertEqual(lines, sorted(lines), screen)
        self.assertRegex(row(screen, "new_listener"), r"^x \d{4}-\d\d-\d\d info      over ")
        self.assertRegex(row(screen, "port_scan"), r"^x \d\d:\d\d:\d\d   critical  active ")

        # Quick filters: the severity floor, then active only.
        one.keys("f")
        yield self.wait(one, "2/3 alerts · severity warning+", absent="new_listener")
        one.keys("f")
        yield self.wait(one, "1/3 alerts · severity critical", "port_scan", absent="arp_spoof")
        one.keys("f")
        yield self.wait(one, "3/3 alerts · severity all", "new_listener")
        one.keys("o")
        yield self.wait(one, "2/3 alerts · severity all · active only", absent="new_listener")
        one.keys("o")
        yield self.wait(one, "3/3 alerts · severity all · any state")

        # The text filter (an address), then Enter: the details and evidence.
        one.keys("/")
        yield self.wait(one, "Filter rows")
        one.text("192.0.2.66")
        one.keys("Enter")
        yield self.wait(one, "1/3 alerts", "filter: 192.0.2.66", "port_scan",
                        absent="arp_spoof")
        one.keys("Enter")
        yield self.wait(one, "critical port_scan · active", "src           192.0.2.66",
                        "acknowledged  no (k to acknowledge)", "evidence",
                        "ports: [22, 23, 80, 443]", "ports_count: 120", "samples:",
                        "- IP 192.0.2.66.40000 > 192.0.2.1.443: Flags [S]", "window_s: 5.0")

        # Acknowledge in UI 1: both UIs show it within seconds.
        one.keys("k")
        yield self.wait(one, "critical port_scan · acknowledged",
                        f"acknowledged  by {default_user()} at ", timeout=PROPAGATION)
        yield self.wait_row(two, "port_scan", "critical  acknowledged")
        yield self.wait(two, "!! 1 alert (1 warning) — press a", timeout=PROPAGATION)

        # The agent ends the ARP spoof: "over" in both.
        (self.directory / "over").touch()
        yield self.wait_row(two, "arp_spoof", "warning   over ")
        one.keys("Escape")
        yield self.wait(one, "1/3 alerts", "filter: 192.0.2.66")
        one.keys("/")
        yield self.wait(one, "Filter rows")
        one.keys("C-u", "Enter")
        yield self.wait(one, "3/3 alerts · severity all · any state")
        yield self.wait_row(one, "arp_spoof", "warning   over ")

        # Nothing active and unacknowledged: no marker left on the fleet screen.
        one.keys("Escape")
        screen = yield self.wait(one, "Loopy · fleet", self.agent_id, absent="!!")
        self.assertNotIn("crit", row(screen, self.agent_id))

        # loopy-ui --json agrees.
        doc = yield e2e.fleet_json(self.hub_port)
        self.assertEqual([a["kind"] for a in doc["alerts"]],
                         ["arp_spoof", "port_scan", "new_listener"])
        alerts = {a["kind"]: a for a in doc["alerts"]}
        scan, spoof = alerts["port_scan"], alerts["arp_spoof"]
        self.assertEqual((scan["state"], scan["condition"], scan["acknowledged_by"]),
                         ("acknowledged", "active", default_user()))
        self.assertIsInstance(scan["acknowledged_at"], float)
        self.assertEqual((scan["agent_id"], scan["severity"], scan["src"], scan["dst"]),
                         (self.agent_id, "critical", "192.0.2.66", "192.0.2.1"))
        self.assertIn("IP 192.0.2.66.40000 > 192.0.2.1.22: Flags [S], seq 1, win 1024, "
                      "length 0", scan["evidence"]["samples"])
        self.assertEqual((spoof["state"], spoof["condition"], spoof["revision"],
                          spoof["acknowledged_by"]), ("over", "over", 1, None))

        for tmux in (one, two):
            tmux.keys("q")
            yield e2e.poll(tmux.dead, 10, what="loopy-ui to exit on q")


def row(screen: str, needle: str) -> str:
    """
    The first line of C{screen} that contains C{needle}, or ``""``.
    """
    index = line_of(screen, needle)
    return "" if index is None else screen.splitlines()[index]


def line_of(screen: str, needle: str):
    """
    The number of the first line of C{screen} that contains C{needle}, or
    None.
    """
    for index, line in enumerate(screen.splitlines()):
        if needle in line:
            return index
    return None
