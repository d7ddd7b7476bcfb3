"""
Tests for L{loopy.hub.fleet.FleetState}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from loopy.hub.fleet import FleetState
from loopy.model import OFFLINE, ONLINE, STALE, AgentEntry, AgentSummary, summarize
from loopy import testing
from loopy.testing import T0

EPOCH = 1_700_000_000_000_000


def _report(seq, epoch=EPOCH, agent_id="agent-a", hostname="host-a"):
    return testing.report(agent_id=agent_id, epoch=epoch, seq=seq, hostname=hostname)


class MergeTests(SynchronousTestCase):
    def setUp(self):
        self.fleet = FleetState("hub-a")

    def held(self, agent_id="agent-a"):
        (entry,) = [e for e in self.fleet.entries(T0, True) if e.agent_id == agent_id]
        return entry

    def test_first(self):
        report = _report(1)
        self.assertTrue(self.fleet.merge(report, T0))
        self.assertEqual(
            self.held(),
            AgentEntry(
                agent_id="agent-a",
                hostname="host-a",
                status=OFFLINE,
                hub="hub-a",
                epoch=EPOCH,
                seq=1,
                last_heard=T0,
                summary=summarize(report),
                report=report,
            ),
        )
        self.assertEqual((self.fleet.reports_merged, self.fleet.reports_duplicate), (1, 0))

    def test_newer(self):
        self.fleet.merge(_report(1), T0)
        newer = _report(2, hostname="host-a2")
        self.assertTrue(self.fleet.merge(newer, T0 + 1))
        entry = self.held()
        self.assertEqual(
            (entry.report, entry.seq, entry.last_heard, entry.hostname),
            (newer, 2, T0 + 1, "host-a2"),
        )
        self.assertEqual(self.fleet.reports_merged, 2)

    def test_duplicate(self):
        """
        The same version again is ignored and counted; the time it was last
        heard does not move.
        """
        first = _report(3)
        self.fleet.merge(first, T0)
        self.assertFalse(self.fleet.merge(_report(3, hostname="other"), T0 + 1))
        entry = self.held()
        self.assertEqual((entry.report, entry.last_heard, entry.hostname), (first, T0, "host-a"))
        self.assertEqual((self.fleet.reports_merged, self.fleet.reports_duplicate), (1, 1))

    def test_older(self):
        self.fleet.merge(_report(5), T0)
        self.assertFalse(self.fleet.merge(_report(4), T0 + 1))
        self.assertEqual(self.held().seq, 5)
        self.assertEqual(self.fleet.reports_duplicate, 1)

    def test_reordered(self):
        """
        Reports arriving out of order leave the newest held, whatever the
        order.
        """
        for seq in [2, 5, 1, 4, 3]:
            self.fleet.merge(_report(seq), T0 + seq)
        entry = self.held()
        self.assertEqual((entry.seq, entry.last_heard), (5, T0 + 5))
        self.assertEqual((self.fleet.reports_merged, self.fleet.reports_duplicate), (2, 3))

    def test_restart(self):
        """
        After a restart (a later epoch) the agent counts from seq 1 again,
        and that report replaces any of the earlier run; reports of the
        earlier run arriving late are ignored.
        """
        self.fleet.merge(_report(900), T0)
        self.assertTrue(self.fleet.merge(_report(1, epoch=EPOCH + 1), T0 + 1))
        self.assertFalse(self.fleet.merge(_report(901), T0 + 2))
        entry = self.held()
        self.assertEqual((entry.epoch, entry.seq, entry.last_heard), (EPOCH + 1, 1, T0 + 1))

    def test_agents_separate(self):
        self.fleet.merge(_report(5, agent_id="agent-a"), T0)
        self.assertTrue(self.fleet.merge(_report(1, agent_id="agent-b"), T0))
        self.assertEqual(len(self.fleet), 2)
        self.assertEqual((self.held("agent-a").seq, self.held("agent-b").seq), (5, 1))


class StatusTests(SynchronousTestCase):
    def setUp(self):
        self.fleet = FleetState("hub-a", stale_after=3.0)

    def test_linked_without_report(self):
        """
        An agent that said hello but has not reported yet is stale.
        """
        self.assertTrue(self.fleet.linked("agent-a", "host-a"))
        self.assertEqual(self.fleet.status("agent-a", T0), STALE)

    def test_transitions(self):
        """
        Online while reports come within C{stale_after} seconds, stale after
        that, online again with the next report, offline when unlinked.
        """
        self.fleet.linked("agent-a", "host-a")
        self.fleet.merge(_report(1), T0)
        self.assertEqual(self.fleet.status("agent-a", T0), ONLINE)
        self.assertEqual(self.fleet.status("agent-a", T0 + 3.0), ONLINE)
        self.assertEqual(self.fleet.status("agent-a", T0 + 3.001), STALE)
        self.fleet.merge(_report(2), T0 + 4)
        self.assertEqual(self.fleet.status("agent-a", T0 + 4), ONLINE)
        self.fleet.unlinked("agent-a")
        self.assertEqual(self.fleet.status("agent-a", T0 + 4), OFFLINE)

    def test_report_without_link(self):
        """
        A report alone does not make an agent online.
        """
        self.fleet.merge(_report(1), T0)
        self.assertEqual(self.fleet.status("agent-a", T0), OFFLINE)

    def test_links_counted(self):
        """
        An agent linked twice (a new link before the old one closed) stays
        linked until both close.
        """
        self.fleet.linked("agent-a", "host-a")
        self.fleet.linked("agent-a", "host-a")
        self.fleet.merge(_report(1), T0)
        self.fleet.unlinked("agent-a")
        self.assertEqual(self.fleet.status("agent-a", T0), ONLINE)
        self.fleet.unlinked("agent-a")
        self.assertEqual(self.fleet.status("agent-a", T0), OFFLINE)
        self.fleet.unlinked("agent-a")
        self.fleet.linked("agent-a", "host-a")
        self.assertEqual(self.fleet.status("agent-a", T0), ONLINE)

    def test_unlinked_unknown(self):
        self.fleet.unlinked("nobody")
        self.assertEqual(len(self.fleet), 0)

    def test_hello_updates_hostname(self):
        self.fleet.linked("agent-a", "old-name")
        self.fleet.linked("agent-a", "new-name")
        (entry,) = self.fleet.entries(T0)
        self.assertEqual(entry.hostname, "new-name")

    def test_unknown_agent(self):
        self.assertRaises(KeyError, self.fleet.status, "nobody", T0)


class EntriesTests(SynchronousTestCase):
    def setUp(self):
        self.fleet = FleetState("hub-a")
        for agent_id in ["agent-c", "agent-a", "agent-b"]:
            self.fleet.linked(agent_id, "host-" + agent_id[-1])
            self.fleet.merge(_report(1, agent_id=agent_id, hostname="host-" + agent_id[-1]), T0)

    def details(self, detail):
        return [
            (e.agent_id, e.report is not None) for e in self.fleet.entries(T0, detail)
        ]

    def test_sorted_no_detail(self):
        self.assertEqual(
            self.details(()),
            [("agent-a", False), ("agent-b", False), ("agent-c", False)],
        )

    def test_some_detail(self):
        self.assertEqual(
            self.details({"agent-b", "nobody"}),
            [("agent-a", False), ("agent-b", True), ("agent-c", False)],
        )

    def test_all_detail(self):
        self.assertEqual(
            self.details(True), [("agent-a", True), ("agent-b", True), ("agent-c", True)]
        )

    def test_false_detail(self):
        self.assertEqual(
            self.details(False),
            [("agent-a", False), ("agent-b", False), ("agent-c", False)],
        )

    def test_summary_without_detail(self):
        """
        Entries without details still carry the summary line and status.
        """
        entry = self.fleet.entries(T0)[0]
        self.assertEqual(entry.summary, summarize(_report(1, agent_id="agent-a")))
        self.assertEqual(entry.status, ONLINE)

    def test_never_reported(self):
        fleet = FleetState("hub-a")
        fleet.linked("agent-z", "host-z")
        self.assertEqual(
            fleet.entries(T0, True),
            (AgentEntry("agent-z", "host-z", STALE, "hub-a", 0, 0, None, AgentSummary(), None),),
        )


class BoundTests(SynchronousTestCase):
    def test_max_agents(self):
        """
        Past C{max_agents}, new agents are refused and counted; known agents
        still link and merge.
        """
        fleet = FleetState("hub-a", max_agents=2)
        self.assertTrue(fleet.linked("agent-a", "host-a"))
        self.assertTrue(fleet.merge(_report(1, agent_id="agent-b"), T0))
        self.assertFalse(fleet.linked("agent-c", "host-c"))
        self.assertFalse(fleet.merge(_report(1, agent_id="agent-c"), T0))
        self.assertEqual(fleet.agents_refused, 2)
        self.assertEqual(len(fleet), 2)
        self.assertTrue(fleet.linked("agent-b", "host-b"))
        self.assertTrue(fleet.merge(_report(1, agent_id="agent-a"), T0))
        self.assertEqual([e.agent_id for e in fleet.entries(T0)], ["agent-a", "agent-b"])
        self.assertEqual(fleet.agents_refused, 2)
