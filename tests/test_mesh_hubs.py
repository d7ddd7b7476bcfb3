"""
Tests for the hub mesh (L{loopy.hub.peers}, L{loopy.hub.server}): real hubs
peered over in-memory AMP links with one fake clock (L{tests.meshlab}),
converging in several shapes, through partitions, heals, restarts and
duplicate deliveries.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from loopy.hub.mesh import Batch, Entry, same_entries
from loopy.model import DOWN, LINKED, OFFLINE, ONLINE, REACHABLE, SELF
from tests.meshlab import MeshLab

#: Everything but heartbeats, which change every second.
STATE_KINDS = ("link", "report", "alert", "ack")


class MeshTestCase(SynchronousTestCase):
    def lab(self, names, **kw) -> MeshLab:
        lab = MeshLab(names, **kw)
        self.addCleanup(self.assertEqual, lab.clock.getDelayedCalls(), [])
        self.addCleanup(lab.stop)
        return lab

    def assertConverged(self, lab: MeshLab, agents: dict[str, str]):
        """
        Every hub holds the same entries and shows each agent of C{agents}
        (id to the hub it reports through) online through that hub, at the
        same report.
        """
        stores = [hub.mesh for hub in lab.hubs.values()]
        self.assertTrue(same_entries(stores, STATE_KINDS),
                        {n: sorted((e.kind, str(e.key), e.order) for e in h.mesh.entries("link"))
                         for n, h in lab.hubs.items()})
        seen = {}
        for name, view in lab.views().items():
            got = {e.agent_id: (e.hub, e.status, e.seq) for e in view.agents}
            self.assertEqual({a: (h, s) for a, (h, s, _) in got.items()},
                             {a: (h, ONLINE) for a, h in agents.items()}, name)
            seen[name] = got
        self.assertEqual(len({tuple(sorted(v.items())) for v in seen.values()}), 1, seen)

    def hub_states(self, lab: MeshLab, name: str) -> dict[str, str]:
        return {h.name: h.state for h in lab.hubs[name].view().hubs}


class ShapesTests(MeshTestCase):
    def test_pair(self):
        """
        Two peered hubs each show the other's agents, through the hub they
        report to, and each other as linked.
        """
        lab = self.lab(["a", "b"])
        lab.peer("a", "b")
        lab.agent("x", "a")
        lab.agent("y", "b")
        lab.run(3)
        self.assertConverged(lab, {"x": "a", "y": "b"})
        self.assertEqual(self.hub_states(lab, "a"), {"a": SELF, "b": LINKED})
        self.assertEqual(self.hub_states(lab, "b"), {"a": LINKED, "b": SELF})
        (view_a, view_b) = lab.views().values()
        # b made x's report from the entry only now, when asked for it.
        self.assertEqual(view_b.agents[0].report, view_a.agents[0].report)
        self.assertEqual(view_b.agents[0].summary, view_a.agents[0].summary)
        self.assertEqual(view_a.hubs[0].peers, ("b",))
        self.assertEqual(view_a.hub.peers_linked, 1)
        self.assertGreater(view_a.hub.gossip_bytes_in, 0)
        self.assertGreater(view_a.hub.gossip_bytes_out, 0)

    def test_line_is_transitive(self):
        """
        With a–b and b–c peered and no a–c link, c sees a's agents, within
        two gossip rounds of a report, and a as reachable.
        """
        lab = self.lab(["a", "b", "c"])
        lab.peers([("a", "b"), ("b", "c")])
        lab.agent("x", "a")
        lab.run(3)
        self.assertConverged(lab, {"x": "a"})
        self.assertEqual(self.hub_states(lab, "c"), {"a": REACHABLE, "b": LINKED, "c": SELF})
        seq = lab.hubs["a"].fleet.entries(lab.clock.seconds())[0].seq
        lab.run(1.0, report_every=0)
        lab.agents["x"][0].report(lab.clock.seconds())
        lab.run(0.6, report_every=0)
        (entry,) = lab.hubs["c"].view().agents
        self.assertEqual(entry.seq, seq + 1)
        self.assertLessEqual(lab.hubs["c"].view().hub.replication_age_p99, 0.6)

    def test_full_mesh_of_five(self):
        """
        Five hubs all peered, two agents each: every hub shows all ten, and
        pulling in turn keeps duplicate deliveries rare (an entry reaching a
        hub from two peers at once).
        """
        names = [f"h{n}" for n in range(5)]
        lab = self.lab(names)
        lab.peers([(a, b) for i, a in enumerate(names) for b in names[i + 1:]])
        agents = {}
        for name in names:
            for n in range(2):
                lab.agent(f"{name}-agent{n}", name)
                agents[f"{name}-agent{n}"] = name
        lab.run(10)
        self.assertConverged(lab, agents)
        for hub in lab.hubs.values():
            states = {h.name: h.state for h in hub.view().hubs}
            self.assertEqual(sorted(states.values()), [LINKED] * 4 + [SELF])
            self.assertLess(hub.mesh.stale, hub.mesh.applied / 10)

    def test_double_links(self):
        """
        Two hubs that both list each other have two links; both carry
        pulls, and the result is the same.
        """
        lab = self.lab(["a", "b"])
        lab.peers([("a", "b"), ("b", "a")])
        lab.agent("x", "a")
        lab.run(3)
        self.assertConverged(lab, {"x": "a"})
        self.assertEqual(len(lab.hubs["a"].peers.links["b"]), 2)

    def test_same_report_two_paths(self):
        """
        A report that reaches two hubs (an agent's retry after failover) is
        held once, at one version, everywhere.
        """
        lab = self.lab(["a", "b"])
        lab.peer("a", "b")
        x = lab.agent("x", "a")
        lab.run(2)
        x = lab.move_agent("x", "b")
        x.seq -= 1
        lab.run(2)
        self.assertConverged(lab, {"x": "b"})


class FailureTests(MeshTestCase):
    def test_partition_and_heal(self):
        """
        Cutting b–c in a line a–b–c (no FIN): within the peer timeout both
        sides see the other side's hubs down and its agents offline; after
        the link is back, every hub converges again.
        """
        lab = self.lab(["a", "b", "c"])
        lab.peers([("a", "b"), ("b", "c")])
        lab.agent("x", "a")
        lab.agent("z", "c")
        lab.run(3)
        self.assertConverged(lab, {"x": "a", "z": "c"})
        lab.cut("b", "c")
        lab.run(lab.peer_timeout + 2)
        self.assertEqual(self.hub_states(lab, "c"), {"a": DOWN, "b": DOWN, "c": SELF})
        self.assertEqual(self.hub_states(lab, "a"), {"a": SELF, "b": LINKED, "c": DOWN})
        c_view = {e.agent_id: e.status for e in lab.hubs["c"].view().agents}
        self.assertEqual(c_view, {"x": OFFLINE, "z": ONLINE})
        self.assertEqual(lab.hubs["b"].view().hub.peers_linked, 1)
        lab.peer("c", "b")
        lab.run(3)
        self.assertConverged(lab, {"x": "a", "z": "c"})

    def test_hub_dies_agent_moves(self):
        """
        Hub a dies; until its agent relinks the others show it offline
        (its hub is down), then online through b.  When a comes back (a new
        epoch, its state gone) it catches up from b, entries written by its
        previous run included.
        """
        lab = self.lab(["a", "b", "c"])
        lab.peers([("a", "b"), ("b", "c"), ("c", "a")])
        lab.agent("x", "a")
        lab.agent("y", "b")
        lab.run(3)
        old_origin = lab.hubs["a"].mesh.origin
        lab.stop_hub("a")
        lab.run(lab.peer_timeout + 0.5)
        self.assertEqual({e.agent_id: e.status for e in lab.hubs["c"].view().agents},
                         {"x": OFFLINE, "y": ONLINE})
        self.assertEqual(self.hub_states(lab, "c")["a"], DOWN)
        lab.move_agent("x", "b")
        lab.run(1)
        self.assertConverged(lab, {"x": "b", "y": "b"})
        lab.start_hub("a")
        self.assertNotEqual(lab.hubs["a"].mesh.origin, old_origin)
        lab.peers([("a", "b"), ("a", "c")])
        lab.run(2)
        self.assertConverged(lab, {"x": "b", "y": "b"})
        self.assertIn(old_origin, lab.hubs["a"].mesh.digest())
        self.assertEqual(self.hub_states(lab, "c")["a"], LINKED)

    def test_restarted_hub_disowns_old_links(self):
        """
        A hub that dies with its agent and comes back says the agent's link
        from its previous run is down, so every hub shows the agent offline
        rather than linked through it.
        """
        lab = self.lab(["a", "b"])
        lab.peer("a", "b")
        lab.agent("x", "a")
        lab.run(3)
        lab.stop_hub("a")
        del lab.agents["x"]
        lab.start_hub("a")
        lab.peer("a", "b")
        lab.run(2)
        for name, view in lab.views().items():
            self.assertEqual([(e.agent_id, e.hub, e.status) for e in view.agents],
                             [("x", "a", OFFLINE)], name)

    def test_dead_link_dropped(self):
        """
        A link that stops moving bytes is aborted after the peer timeout
        (the pull is unanswered), on both sides.
        """
        lab = self.lab(["a", "b"])
        lab.peer("a", "b")
        lab.run(1)
        lab.cut("a", "b")
        lab.run(lab.peer_timeout + 1)
        self.assertEqual([hub.peers.linked for hub in lab.hubs.values()], [[], []])
        self.assertGreater(lab.hubs["a"].peers.pulls_failed, 0)


class AlertMeshTests(MeshTestCase):
    def test_alert_and_acknowledgement_everywhere(self):
        """
        An alert raised at a's agent reaches every hub of a line; an
        acknowledgement at c reaches a; two acknowledgements made at once at
        two hubs converge to the earlier everywhere.
        """
        lab = self.lab(["a", "b", "c"])
        lab.peers([("a", "b"), ("b", "c")])
        x = lab.agent("x", "a")
        x.alert(1)
        x.alert(2)
        lab.run(1)
        for hub in lab.hubs.values():
            self.assertEqual(len(hub.alerts), 2)
        key1 = ("x", x.epoch, 1)
        key2 = ("x", x.epoch, 2)
        self.assertTrue(lab.hubs["c"].acknowledge_alert(key1, "ann@c"))
        lab.clock.advance(0.01)
        lab.hubs["a"].acknowledge_alert(key2, "bob@a")
        lab.clock.advance(0.01)
        lab.hubs["c"].acknowledge_alert(key2, "cat@c")
        x.alert(2, revision=1, state="over")
        lab.run(1)
        for name, hub in lab.hubs.items():
            first, second = hub.alerts.get(key1), hub.alerts.get(key2)
            self.assertEqual(first.acknowledged_by, "ann@c", name)
            self.assertEqual((second.acknowledged_by, second.alert.revision),
                             ("bob@a", 1), name)
        self.assertTrue(same_entries([h.mesh for h in lab.hubs.values()], STATE_KINDS))

    def test_bad_and_refused_entries_counted(self):
        """
        An entry that does not parse is dropped and an agent past the
        agent table's bound is refused; both are counted in the hub's
        info, and neither is held.
        """
        lab = self.lab(["a", "b"])
        lab.peer("a", "b")
        b = lab.hubs["b"]
        b.mesh.limits["report"] = b.mesh.limits["link"] = 1
        lab.agent("x", "a")
        lab.agent("y", "a")
        lab.run(2)
        self.assertEqual([e.agent_id for e in b.view().agents], ["x"])
        bad = Entry("link", "z", (1, 1, 0), "a#9", 1, {"agent_id": "z"})
        b.replicate(Batch(entries=(bad,)))
        info = b.info()
        self.assertEqual((info.entries_rejected, info.entries_refused > 0), (1, True))
        self.assertIsNone(b.mesh.get("link", "z"))

    def test_acknowledgement_before_alert(self):
        """
        An acknowledgement that arrives before its alert (another path) is
        applied when the alert arrives.
        """
        lab = self.lab(["a", "b"])
        lab.peer("a", "b")
        x = lab.agent("x", "a")
        x.alert(1)
        lab.flush()
        key = ("x", x.epoch, 1)
        lab.hubs["a"].acknowledge_alert(key, "ann@a")
        # b takes the acknowledgement first, then the alert.
        b = lab.hubs["b"]
        ack = lab.hubs["a"].mesh.get("ack", key)
        alert = lab.hubs["a"].mesh.get("alert", key)
        b.replicate(Batch(entries=(ack,)))
        self.assertIsNone(b.alerts.get(key))
        b.replicate(Batch(entries=(alert,)))
        self.assertEqual(b.alerts.get(key).acknowledged_by, "ann@a")
