"""
Tests for L{loopy.agent.spool}: the agent's spool of reports and alerts
waiting for a hub, on real files in the test's temporary directory.
"""

from __future__ import annotations

import json
import os

from attrs import evolve
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from loopy import testing
from loopy.agent import segments
from loopy.agent.segments import ALERT, FRAME_OVERHEAD, REPORT
from loopy.agent.spool import DISK_MAX_BYTES, MEMORY_MAX_BYTES, Spool
from loopy.errors import SpoolError
from loopy.model import DeliveryStats


def report(seq: int):
    return evolve(testing.report(seq=seq), ts=1000.0 + seq)


def alert(seq: int):
    return testing.alert(seq=seq, ts=2000.0 + seq)


class SpoolCase(SynchronousTestCase):
    """
    Spools on a directory of this test, on a L{Clock}; each one made is
    closed at the end, and no timer is left.
    """

    def setUp(self):
        self.clock = Clock()
        self.directory = self.mktemp()
        self.opened: list[Spool] = []
        self.addCleanup(self.close_all)

    def close_all(self):
        for spool in self.opened:
            spool.close()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def spool(self, directory="default", **kwargs) -> Spool:
        spool = Spool(self.directory if directory == "default" else directory,
                      self.clock, **kwargs)
        spool.open()
        self.opened.append(spool)
        return spool

    def reopen(self, spool: Spool, **kwargs) -> Spool:
        spool.close()
        return self.spool(**kwargs)

    def kill(self, spool: Spool):
        """
        What a SIGKILL leaves: no sync, no state write; the kernel closes
        the files and releases the lock.
        """
        if spool._sync_call is not None and spool._sync_call.active():
            spool._sync_call.cancel()
        for segment in spool._segments:
            segment.close()
        os.close(spool._lock_fd)
        spool._lock_fd = None
        spool._open = False

    def records(self, spool: Spool) -> list:
        return [spool.read(i) for i in spool.pending_ids()]

    def segment_paths(self) -> list[str]:
        return [path for _id, path in segments.segment_files(self.directory)]


class AppendAckTests(SpoolCase):
    def test_append_ack_reopen(self):
        """
        Records come back in id order after a restart, less the one
        acknowledged, and count as sent once (their next send is a replay).
        """
        spool = self.spool()
        ids = [spool.append(r).record_id for r in (report(1), alert(1), report(2))]
        self.assertEqual(ids, [1, 2, 3])
        self.assertTrue(spool.ack(2))
        self.assertFalse(spool.ack(2))
        spool = self.reopen(spool)
        self.assertEqual(spool.pending_ids(), [1, 3])
        self.assertEqual(self.records(spool), [report(1), report(2)])
        spool.sent(1)
        self.assertEqual((spool.replayed, spool.acked), (1, 0))
        self.assertEqual(spool.append(alert(2)).record_id, 4)

    def test_ids_grow_across_restarts(self):
        """
        With everything acknowledged the segments are deleted; the next
        run's ids still start after the last one given.
        """
        spool = self.spool()
        for seq in (1, 2):
            spool.ack(spool.append(report(seq)).record_id)
        self.assertEqual(self.segment_paths(), [])
        self.assertEqual((spool.disk_bytes, spool.pending_bytes, len(spool)), (0, 0, 0))
        spool = self.reopen(spool)
        self.assertEqual(spool.append(report(3)).record_id, 3)

    def test_replay_order_across_restarts(self):
        spool = self.spool()
        for seq in range(1, 6):
            spool.append(report(seq))
        spool.ack(1)
        spool.ack(2)
        spool = self.reopen(spool)
        spool.append(report(6))
        spool.append(alert(7))
        spool = self.reopen(spool)
        self.assertEqual(spool.pending_ids(), [3, 4, 5, 6, 7])
        self.assertEqual(self.records(spool),
                         [report(3), report(4), report(5), report(6), alert(7)])

    def test_killed(self):
        """
        A killed agent loses nothing it appended (written at once), and a
        record acknowledged after the last state write comes back (the hub
        stores it once).
        """
        spool = self.spool()
        spool.append(report(1))
        self.clock.advance(0)  # sync: state written
        spool.append(report(2))
        spool.ack(1)
        self.kill(spool)
        spool = self.spool()
        self.assertEqual(self.records(spool), [report(1), report(2)])

    def test_stats(self):
        spool = self.spool(max_bytes=100_000)
        self.assertEqual(spool.stats(), DeliveryStats(spool_max_bytes=100_000,
                                                      spool_on_disk=True))
        first = spool.append(report(1))
        spool.append(alert(1))
        stats = spool.stats()
        self.assertEqual((stats.spool_records, stats.spool_bytes, stats.oldest_ts),
                         (2, spool.disk_bytes, 1001.0))
        spool.ack(first.record_id)
        self.assertEqual((spool.stats().acked, spool.stats().oldest_ts), (1, 2001.0))

    def test_memory(self):
        """
        Without a directory: the same spool in memory, nothing on disk,
        no timer.
        """
        spool = self.spool(directory=None)
        self.assertEqual(spool.max_bytes, MEMORY_MAX_BYTES)
        spool.append(report(1))
        spool.append(alert(1))
        self.assertEqual(self.records(spool), [report(1), alert(1)])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(spool.stats().spool_on_disk)
        self.assertFalse(os.path.exists(self.directory))

    def test_defaults(self):
        self.assertEqual(Spool(self.directory, self.clock).max_bytes, DISK_MAX_BYTES)
        self.assertEqual(Spool(None, self.clock, 1_000_000).segment_bytes, 125_000)
        self.assertRaises(ValueError, Spool, None, self.clock, 1000)

    def test_too_large(self):
        """
        A record larger than the whole bound is not kept, and counted.
        """
        spool = self.spool(max_bytes=1024)
        self.assertIsNone(spool.append(report(1)))
        self.assertEqual((spool.reports_dropped, len(spool)), (1, 0))

    def test_closed(self):
        spool = self.spool()
        spool.close()
        self.assertRaises(SpoolError, spool.append, report(1))


class SyncTests(SpoolCase):
    def test_fsync_at_most_once_a_second(self):
        """
        A sync runs at once after a quiet second, else a second after the
        last one; it writes the state file.
        """
        spool = self.spool()
        entry = spool.append(report(1))
        self.assertTrue(entry.segment.unsynced)
        self.clock.advance(0)
        self.assertFalse(entry.segment.unsynced)
        with open(os.path.join(self.directory, "state.json")) as f:
            self.assertEqual(json.load(f)["next_id"], 2)
        self.clock.advance(0.2)
        spool.append(report(2))
        self.clock.advance(0.79)
        self.assertTrue(entry.segment.unsynced)
        self.clock.advance(0.01)
        self.assertFalse(entry.segment.unsynced)

    def test_segment_synced_when_closed(self):
        spool = self.spool(max_bytes=64 * 1024)
        first = spool.append(report(1))
        while spool._active is first.segment:
            spool.append(report(2))
        self.assertFalse(first.segment.unsynced)


class LockTests(SpoolCase):
    def test_locked(self):
        """
        A second agent on the same directory is refused until the first
        closes its spool.
        """
        first = self.spool()
        error = self.assertRaises(SpoolError, self.spool)
        self.assertIn("in use by another agent", str(error))
        first.close()
        self.spool()

    def test_not_a_directory(self):
        with open(self.directory, "w") as f:
            f.write("x")
        error = self.assertRaises(SpoolError, self.spool)
        self.assertIn("cannot use", str(error))


class CorruptTests(SpoolCase):
    """
    Damaged records are counted and skipped; the rest survives.
    """

    def write_three(self) -> tuple[str, list]:
        spool = self.spool()
        entries = [spool.append(r) for r in (report(1), alert(1), report(2))]
        spool.close()
        self.opened.remove(spool)
        (path,) = self.segment_paths()
        return path, entries

    def damage(self, path, offset, data=None, cut=False):
        with open(path, "r+b") as f:
            if cut:
                f.truncate(offset)
            else:
                f.seek(offset)
                f.write(data)

    def test_bad_checksum(self):
        path, entries = self.write_three()
        self.damage(path, entries[1].offset + FRAME_OVERHEAD + 5, b"\xff\x00\xff")
        spool = self.spool()
        self.assertEqual(self.records(spool), [report(1), report(2)])
        self.assertEqual(spool.corrupt, 1)
        spool = self.reopen(spool)
        self.assertEqual(spool.corrupt, 1)  # kept, and not counted again
        self.assertEqual(self.records(spool), [report(1), report(2)])

    def test_truncated_tail(self):
        path, entries = self.write_three()
        self.damage(path, entries[2].offset + 40, cut=True)
        spool = self.spool()
        self.assertEqual((self.records(spool), spool.corrupt), ([report(1), alert(1)], 1))

    def test_garbage_header(self):
        path, entries = self.write_three()
        self.damage(path, entries[0].offset, b"JUNKJUNK")
        spool = self.spool()
        self.assertEqual((self.records(spool), spool.corrupt), ([alert(1), report(2)], 1))

    def test_bad_state_file(self):
        path, _entries = self.write_three()
        with open(os.path.join(self.directory, "state.json"), "w") as f:
            f.write("{not json")
        spool = self.spool()
        self.assertEqual(len(spool), 3)
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_damaged_while_running(self):
        """
        A record damaged after it was written is skipped when read back.
        """
        spool = self.spool()
        entry = spool.append(report(1))
        spool.append(report(2))
        self.damage(entry.segment.path, entry.offset + FRAME_OVERHEAD + 3, b"\x00\x00")
        self.assertIsNone(spool.read(1))
        self.assertEqual((spool.corrupt, spool.pending_ids()), (1, [2]))

    def test_scan(self):
        """
        Frames of every kind come back from bytes; a run of garbage between
        them is one damaged region.
        """
        one = segments.frame(REPORT, 7, 1.5, b"payload")
        two = segments.frame(ALERT, 8, 2.5, b"")
        frames, damaged = segments.scan(one + b"LSPL garbage LSPL" + two)
        self.assertEqual([(f.kind, f.record_id, f.ts) for f in frames],
                         [(REPORT, 7, 1.5), (ALERT, 8, 2.5)])
        self.assertEqual(damaged, 1)
        self.assertEqual(segments.scan(b""), ([], 0))
        self.assertEqual(segments.scan(one[:-1])[1], 1)


class FillTests(SpoolCase):
    """
    The fill test: no hub, the spool fills to its bound with reports and
    some alerts.
    """

    directory_kind = "disk"
    MAX = 64 * 1024

    def make(self) -> Spool:
        return self.spool(directory=self.directory if self.directory_kind == "disk" else None,
                          max_bytes=self.MAX)

    def test_fill(self):
        spool = self.make()
        kept = {}  # id → record appended
        reports, alerts = [], []
        for n in range(1, 401):
            record = alert(n) if n % 10 == 0 else report(n)
            entry = spool.append(record)
            kept[entry.record_id] = record
            (alerts if n % 10 == 0 else reports).append(entry.record_id)
            self.assertLessEqual(spool.disk_bytes, self.MAX)
            self.assertEqual(spool.alerts_dropped, 0)
        pending = spool.pending_ids()
        left_reports = [i for i in pending if i in set(reports)]
        # The oldest reports went first: those left are the newest ones.
        self.assertEqual(left_reports, reports[-len(left_reports):])
        self.assertLess(len(left_reports), len(reports))
        self.assertEqual(spool.reports_dropped, len(reports) - len(left_reports))
        # Every alert survives while reports are left.
        self.assertEqual([i for i in pending if i in set(alerts)], alerts)
        self.assertEqual([spool.read(i) for i in pending], [kept[i] for i in pending])
        if self.directory_kind == "disk":
            self.assertEqual(spool.disk_bytes, sum(os.path.getsize(p)
                                                   for p in self.segment_paths()))

        # Alerts alone now: reports go first, then the oldest alerts.
        for n in range(401, 1201):
            entry = spool.append(alert(n))
            kept[entry.record_id] = alert(n)
            alerts.append(entry.record_id)
            self.assertLessEqual(spool.disk_bytes, self.MAX)
            if spool.alerts_dropped:
                self.assertEqual(spool._waiting[REPORT], 0)
        pending = spool.pending_ids()
        self.assertEqual(spool.reports_dropped, len(reports))
        self.assertEqual(pending, alerts[-len(pending):])
        self.assertEqual(spool.alerts_dropped, len(alerts) - len(pending))
        self.assertGreater(spool.alerts_dropped, 0)
        self.assertEqual([spool.read(i) for i in pending], [kept[i] for i in pending])

        stats = spool.stats()
        self.assertEqual((stats.reports_dropped, stats.alerts_dropped, stats.spool_records),
                         (len(reports), len(alerts) - len(pending), len(pending)))
        if self.directory_kind == "disk":
            # The counters and the records last across a restart.
            dropped = (spool.reports_dropped, spool.alerts_dropped)
            spool = self.reopen(spool, max_bytes=self.MAX)
            self.assertEqual((spool.reports_dropped, spool.alerts_dropped), dropped)
            self.assertEqual(spool.pending_ids(), pending)

    def test_smaller_bound_on_restart(self):
        """
        A spool reopened with a smaller bound drops down to it at once.
        """
        spool = self.make()
        for n in range(1, 41):
            spool.append(report(n))
        if self.directory_kind != "disk":
            return
        spool = self.reopen(spool, max_bytes=self.MAX // 2)
        self.assertLessEqual(spool.disk_bytes, self.MAX // 2)
        self.assertEqual(spool.reports_dropped + len(spool), 40)


class MemoryFillTests(FillTests):
    directory_kind = "memory"

    def test_fill(self):
        FillTests.test_fill(self)
        self.assertFalse(os.path.exists(self.directory))
