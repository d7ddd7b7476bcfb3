"""
Tests for L{loopy.hub.mesh}: the replicated store, its digests and deltas,
and the batch encoding, without any network.
"""

from __future__ import annotations

import json
import random
import zlib

from twisted.trial.unittest import SynchronousTestCase

from loopy import testing
from loopy.errors import WireError
from loopy.hub import mesh
from loopy.hub.mesh import Batch, ReplicaStore, decode_batch, encode_batch, same_entries
from loopy.model import Acknowledgement, AgentLink, summarize
from loopy.wire import to_json_value

LIMITS = dict.fromkeys(mesh.KINDS, 1000)


def store(name: str, epoch: int = 1, **limits) -> ReplicaStore:
    return ReplicaStore(name, epoch, limits={**LIMITS, **limits})


def sync(puller: ReplicaStore, peer: ReplicaStore, budget: int = mesh.PULL_BYTES) -> int:
    """
    Pull from C{peer} into C{puller} until it has no more, through the wire
    encoding; the number of pulls.
    """
    pulls = 0
    while True:
        pulls += 1
        batch = decode_batch(encode_batch(peer.delta(puller.digest(), budget)), 1 << 24)
        puller.apply(batch)
        if not batch.more:
            return pulls


class StoreTests(SynchronousTestCase):
    def test_put_keeps_higher_order(self):
        """
        A write is held if its order is above the held one's; each held
        write takes this origin's next counter.
        """
        a = store("a")
        first = a.put("report", "agent-1", (1, 1), {"seq": 1})
        self.assertEqual((first.origin, first.counter), ("a#1", 1))
        self.assertIsNone(a.put("report", "agent-1", (1, 1), {"seq": 1}))
        self.assertIsNone(a.put("report", "agent-1", (1, 0), {"seq": 0}))
        second = a.put("report", "agent-1", (1, 2), {"seq": 2})
        self.assertEqual(second.counter, 2)
        self.assertEqual(a.get("report", "agent-1").value, {"seq": 2})
        self.assertEqual((a.written, a.stale, a.digest()), (2, 2, {"a#1": 2}))

    def test_pull_sends_only_what_is_lacking(self):
        """
        A delta has only entries above the puller's watermarks, and
        superseded writes are not sent.
        """
        a, b = store("a"), store("b")
        for seq in range(1, 4):
            a.put("report", "agent-1", (1, seq), {"seq": seq})
        a.put("report", "agent-2", (1, 1), {"seq": 1})
        sync(b, a)
        self.assertEqual([e.order for e in b.entries("report")], [(1, 3), (1, 1)])
        self.assertEqual(b.digest(), {"a#1": 4})
        self.assertEqual(a.delta(b.digest()).entries, ())
        a.put("report", "agent-2", (1, 2), {"seq": 2})
        delta = a.delta(b.digest())
        self.assertEqual([(e.key, e.counter) for e in delta.entries], [("agent-2", 5)])

    def test_budget_chunks(self):
        """
        A delta past the byte budget is cut (C{more}), in counter order,
        and pulling again brings the rest; one entry larger than the
        budget still goes.
        """
        a, b = store("a"), store("b")
        rng = random.Random(1)
        for n in range(50):
            # About 1,000 octets once compressed.
            a.put("report", f"agent-{n}", (1, 1), {"pad": rng.randbytes(750).hex()})
        first = a.delta(b.digest(), budget=10_000)
        self.assertTrue(first.more)
        sent = [e.counter for e in first.entries]
        self.assertEqual(sent, list(range(1, len(sent) + 1)))
        self.assertLessEqual(sum(len(e.blob) + 64 for e in first.entries), 10_000)
        self.assertGreater(len(sent), 5)
        self.assertGreaterEqual(sync(b, a, budget=10_000), 50 // len(sent))
        self.assertTrue(same_entries([a, b]))
        c = store("c")
        self.assertEqual(len(a.delta(c.digest(), budget=10).entries), 1)

    def test_transitive_keeps_origin(self):
        """
        An entry relayed through a hub keeps the stamp of the hub that
        wrote it, so a third hub that already has it from its origin is
        not sent it again.
        """
        a, b, c = store("a"), store("b"), store("c")
        a.put("report", "agent-1", (1, 1), {})
        sync(b, a)
        sync(c, b)
        self.assertEqual(c.get("report", "agent-1").origin, "a#1")
        self.assertEqual(c.digest(), {"a#1": 1})
        self.assertEqual(b.delta(c.digest()).entries, ())

    def test_superseded_elsewhere(self):
        """
        A key written at two hubs converges to the higher order everywhere,
        whichever way the pulls go, and watermarks pass the superseded
        write.
        """
        a, b = store("a"), store("b")
        a.put("link", "agent-1", (1, 1, 0), {"hub": "a"})
        b.put("link", "agent-1", (1, 2, 0), {"hub": "b"})
        sync(a, b)
        sync(b, a)
        self.assertTrue(same_entries([a, b]))
        self.assertEqual(a.get("link", "agent-1").value, {"hub": "b"})
        self.assertEqual(a.digest(), b.digest())

    def test_origins_take_turns(self):
        """
        When the budget cuts an answer, every origin has moved on: a busy
        origin does not starve the others.
        """
        a, b, c = store("a"), store("b"), store("c")
        rng = random.Random(2)
        for n in range(40):
            a.put("report", f"a-{n}", (1, 1), {"pad": rng.randbytes(750).hex()})
        b.put("report", "b-0", (1, 1), {})
        sync(c, a)
        sync(c, b)
        c.put("report", "c-0", (1, 1), {})
        d = store("d")
        first = c.delta(d.digest(), budget=3_000)
        self.assertTrue(first.more)
        self.assertEqual(sorted({e.origin for e in first.entries}), ["a#1", "b#1", "c#1"])
        self.assertEqual(first.complete, {"b#1": 1, "c#1": 1})

    def test_order_independent(self):
        """
        Five stores that each write and then pull from random peers in
        random order, with repeats, converge to the same entries: the
        highest order per key.
        """
        rng = random.Random(5)
        stores = [store(f"h{n}") for n in range(5)]
        best = {}
        for step in range(400):
            s = rng.choice(stores)
            key = f"agent-{rng.randrange(20)}"
            order = (1, rng.randrange(100))
            if s.put("report", key, order, {"o": list(order)}) is not None:
                best[key] = max(best.get(key, order), order)
            if step % 3 == 0:
                puller, peer = rng.sample(stores, 2)
                sync(puller, peer, budget=rng.choice([200, 2000, mesh.PULL_BYTES]))
        for _ in range(3):
            for puller in stores:
                for peer in rng.sample(stores, 5):
                    if peer is not puller:
                        sync(puller, peer)
        self.assertTrue(same_entries(stores))
        self.assertEqual({e.key: e.order for e in stores[0].entries("report")}, best)

    def test_bound_refuses_new_keys(self):
        """
        Past its kind's bound a new key is refused and counted; a newer
        order of a held key is still taken.
        """
        a = store("a", report=2)
        for n in range(3):
            a.put("report", f"agent-{n}", (1, 1), {})
        self.assertEqual((len(a), a.refused["report"]), (2, 1))
        self.assertIsNotNone(a.put("report", "agent-0", (1, 2), {}))

    def test_forget(self):
        """
        A forgotten entry is not sent, and the watermark keeps peers from
        sending it back.
        """
        a, b = store("a"), store("b")
        a.put("alert", ("agent-1", 1, 1), (0,), {})
        sync(b, a)
        b.forget("alert", ("agent-1", 1, 1))
        self.assertEqual(len(b), 0)
        self.assertEqual(a.delta(b.digest()).entries, ())
        self.assertEqual(b.delta({}).entries, ())

    def test_log_compacted(self):
        """
        The per-origin log of a key written again and again stays within a
        small multiple of the live entries.
        """
        a = store("a")
        for seq in range(1, 10_001):
            a.put("report", f"agent-{seq % 10}", (1, seq), {})
        log = a._logs["a#1"]
        self.assertLessEqual(len(log.counters), 2 * 10 + 64 + 1)

    def test_origins_bounded(self):
        """
        Past C{max_origins}, the origin with the fewest live entries is
        forgotten, counted.
        """
        a = ReplicaStore("a", 1, limits=LIMITS, max_origins=3)
        for n in range(4):
            peer = store(f"p{n}")
            peer.put("report", f"agent-{n}", (1, 1), {})
            sync(a, peer)
        self.assertEqual(len(a.digest()), 3)
        self.assertEqual(a.origins_dropped, 1)

    def test_records(self):
        """
        write() stamps a record with its kind's key and order, and parse()
        gives the record back, refusing a value whose key or order is not
        what the entry says.
        """
        a, b = store("a"), store("b")
        link = AgentLink(agent_id="agent-1", hostname="h", hub="a", epoch=7, link=2, up=True)
        ack = Acknowledgement(agent_id="agent-1", epoch=7, seq=3, by="ann@x", at=12.5)
        report = testing.report()
        for kind, record in [("link", link), ("ack", ack), ("report", report),
                             ("alert", testing.alert())]:
            mesh.write(a, kind, record)
        sync(b, a)
        for entry in b.entries("link") + b.entries("ack") + b.entries("report") \
                + b.entries("alert"):
            mesh.parse(entry)
        self.assertEqual(b.get("link", "agent-1").record, link)
        self.assertEqual(b.get("ack", ("agent-1", 7, 3)).record, ack)
        head = b.get("report", "agent-a").record
        self.assertEqual((head.agent_id, head.hostname, head.version, head.ts, head.summary),
                         (report.agent_id, report.hostname, report.version, report.ts,
                          summarize(report)))
        self.assertEqual(mesh.load_report(b.get("report", "agent-a")), report)
        forged = mesh.Entry("link", "agent-1", (7, 9, 0), "a#1", 1,
                            a.get("link", "agent-1").value)
        self.assertRaises(WireError, mesh.parse, forged)
        for value in [{"seq": "x"}, {**to_json_value(report), "seq": "2"},
                      {**to_json_value(report), "hostname": None}]:
            broken = mesh.Entry("report", "agent-a", report.version, "a#1", 1, value)
            self.assertRaises(WireError, mesh.parse, broken)
        unreadable = mesh.Entry("report", "agent-a", report.version, "a#1", 1,
                                {**to_json_value(report), "capture": {"frames": "many"}})
        self.assertEqual(mesh.parse(unreadable).summary.frames, 0)
        self.assertRaises(WireError, mesh.load_report, unreadable)
        for blob in [b"not zlib", zlib.compress(b"[1]"), zlib.compress(b"{") + b"x"]:
            self.assertRaises(WireError, mesh.parse,
                              mesh.Entry("link", "agent-1", (7, 2, 0), "a#1", 1, blob=blob))


class EncodingTests(SynchronousTestCase):
    def test_round_trip(self):
        a = store("a")
        a.put("alert", ("agent-1", 1, 2), (3,), {"x": [1, 2]})
        a.put("ack", ("agent-1", 1, 2), (-1.5, "ann"), {"by": "ann"})
        batch = a.delta({})
        data = encode_batch(batch)
        back = decode_batch(data, 1 << 20)
        self.assertEqual([e.blob for e in back.entries], [e.blob for e in batch.entries])
        # Relayed as received: the same octets.
        self.assertEqual(encode_batch(back), data)
        self.assertEqual(
            [(e.kind, e.key, e.order, e.origin, e.counter, e.value) for e in back.entries],
            [(e.kind, e.key, e.order, e.origin, e.counter, e.value) for e in batch.entries])
        self.assertEqual((back.complete, back.more), ({"a#1": 2}, False))

    def test_bad_batches(self):
        """
        Anything but a well-formed batch is a WireError naming the fault.
        """
        def batch(doc, blobs=b""):
            return json.dumps(doc).encode() + b"\n" + blobs

        good = {"e": [], "c": {}, "m": False}
        row = ["report", "a", [1, 1], "h#1", 1, 2]
        cases = [
            (b"no newline", "no header line"),
            (b"[1\n", "not JSON"),
            (batch([]), "must be an object"),
            (batch({**good, "m": 1}), "needs e"),
            (batch({**good, "c": {"h#1": -1}}), "bad watermark"),
            (batch({**good, "e": [row[:5]]}), "[kind, key"),
            (batch({**good, "e": [["nope"] + row[1:]]}), "unknown gossip entry kind"),
            (batch({**good, "e": [row[:1] + [[True]] + row[2:]]}), "bad report key"),
            (batch({**good, "e": [row[:2] + [[None]] + row[3:]]}), "bad report order"),
            (batch({**good, "e": [row[:4] + [0, 2]]}), "stamp"),
            (batch({**good, "e": [row[:5] + [-1]]}), "length"),
            (batch({**good, "e": [row]}, b"x"), "lengths do not match"),
            (batch({**good, "e": [row]}, b"xyz"), "lengths do not match"),
            (b" " * 2000, "larger than 1000"),
        ]
        for data, message in cases:
            e = self.assertRaises(WireError, decode_batch, data, 1000)
            self.assertIn(message, str(e))
        self.assertEqual(decode_batch(batch(good), 1000), Batch())
