"""
The hub and its history (issue 6): an agent's report or alert is answered
only once its history write is committed; duplicates and replayed (older)
reports are stored once; a failed commit is a HISTORY_ERROR the agent can
retry; UIs read the history with GetHistory; and peer hubs write each
other's reports and catch up on what they missed.  Real hubs over iosim
(L{tests.meshlab}) with real SQLite files.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from loopy.errors import HistoryError
from loopy.hub import historysync
from loopy.hub.historysync import HistoryKeeper
from loopy.history import HistoryQuery
from loopy.testing import T0
from loopy.wire import GetHistory
from tests.meshlab import MeshLab


class HeldRunner:
    """
    A runner whose transactions wait until L{release}; or fail, with
    C{failing}.
    """

    def __init__(self, runner):
        self.runner = runner
        self.held: list[tuple[Deferred, tuple]] = []
        self.failing = False

    def runInteraction(self, fn, *args, **kwargs):
        if self.failing:
            return fail(OSError(28, "No space left on device"))
        d = Deferred()
        self.held.append((d, (fn, args, kwargs)))
        return d

    def release(self) -> None:
        while self.held:
            d, (fn, args, kwargs) = self.held.pop(0)
            self.runner.runInteraction(fn, *args, **kwargs).chainDeferred(d)


def caught(d: Deferred) -> list:
    """
    The error types C{d} fails with, once it does.  (An AMP caller must
    handle an error answer before it arrives, or AMP drops the link.)
    """
    errors: list = []
    d.addErrback(lambda f: errors.append(f.type))
    return errors


def seqs(hub, agent_id: str = "a1") -> list[int]:
    """
    The seqs of the agent's reports in C{hub}'s history at the finest tier.
    """
    now = hub.clock.seconds()
    history = hub.history.query(HistoryQuery(since=T0 - 1, until=max(now, T0 + 10) + 1,
                                             agent_id=agent_id), now)
    answer = history.result
    return sorted(point.seq for agent in answer.agents for point in agent.points)


class AgentWritesTests(SynchronousTestCase):
    def setUp(self):
        self.lab = MeshLab(["h1"], history=self.mktemp())
        self.hub = self.lab.hubs["h1"]
        self.agent = self.lab.agent("a1", "h1")
        self.addCleanup(self.lab.stop_hub, "h1")

    def hold(self) -> HeldRunner:
        runner = HeldRunner(self.hub.history._runner)
        self.hub.history._runner = runner
        return runner

    def test_answer_after_commit(self):
        """
        The hub answers a report, and an alert, only once the history
        commit that holds it is done.
        """
        runner = self.hold()
        report = self.agent.report(T0)
        alert = self.agent.alert(seq=1)
        self.lab.flush()
        self.assertNoResult(report)
        self.assertNoResult(alert)
        runner.release()
        self.lab.flush()
        runner.release()
        self.lab.flush()
        self.assertEqual(self.successResultOf(report), {"accepted": True})
        self.assertEqual(self.successResultOf(alert), {"accepted": True})
        self.hub.history._runner = runner.runner
        self.assertEqual(seqs(self.hub), [1])

    def test_duplicates_and_replays(self):
        """
        A report sent again is answered (so the agent forgets it) but not
        stored twice: C{accepted} False.  A replayed report older than the
        agent's newest is not the fleet's newest, but it is history.
        """
        answers = [self.agent.report(T0 + i) for i in range(3)]
        self.lab.flush()
        self.assertEqual([self.successResultOf(d)["accepted"] for d in answers],
                         [True] * 3)
        self.agent.seq = 1
        again = self.agent.report(T0 + 1)  # seq 2 again
        self.agent.seq = 4
        newest = self.agent.report(T0 + 4)  # seq 5
        self.agent.seq = 3
        older = self.agent.report(T0 + 3)  # seq 4, after 5
        self.lab.flush()
        self.assertEqual(self.successResultOf(again), {"accepted": False})
        self.assertEqual(self.successResultOf(newest), {"accepted": True})
        self.assertEqual(self.successResultOf(older), {"accepted": True})
        self.assertEqual(seqs(self.hub), [1, 2, 3, 4, 5])
        self.assertEqual(self.hub.fleet.entries(T0 + 5, (), {}, lambda *a: True)[0].seq, 5)
        info = self.hub.info()
        self.assertEqual((info.history_reports, info.history_duplicates), (5, 1))

    def test_failed_commit(self):
        """
        A commit that fails (disk full) is a HISTORY_ERROR for the agent,
        which keeps the report; the next commit works.
        """
        runner = self.hold()
        runner.failing = True
        errors = caught(self.agent.report(T0))
        self.lab.flush()
        self.assertEqual(errors, [HistoryError])
        self.assertEqual(self.hub.info().history_errors, 1)
        self.flushLoggedErrors(OSError, HistoryError)
        runner.failing = False
        self.agent.seq = 0
        d = self.agent.report(T0)
        self.lab.flush()
        runner.release()
        self.lab.flush()
        self.assertEqual(self.successResultOf(d), {"accepted": True})
        self.hub.history._runner = runner.runner
        self.assertEqual(seqs(self.hub), [1])

    def test_get_history(self):
        """
        A UI's GetHistory is answered from the store: the agent's points
        and alerts in the range.
        """
        for i in range(4):
            self.agent.report(T0 + i)
        self.agent.alert(seq=7)
        self.lab.flush()
        d = self.agent.callRemote(GetHistory, query=HistoryQuery(since=T0 - 10,
                                                                 until=T0 + 10))
        self.lab.flush()
        history = self.successResultOf(d)["history"]
        self.assertEqual(history.hub, "h1")
        (agent,) = history.agents
        self.assertEqual([p.seq for p in agent.points], [1, 2, 3, 4])
        self.assertEqual([a.seq for a in agent.alerts], [7])
        self.assertEqual(len(history.fleet), 4)

    def test_no_history(self):
        """
        A hub without a history answers reports once merged, and GetHistory
        with HISTORY_ERROR.
        """
        lab = MeshLab(["h9"])
        agent = lab.agent("a9", "h9")
        self.assertEqual(self.successResultOf(self._report(lab, agent)), {"accepted": True})
        errors = caught(agent.callRemote(GetHistory, query=HistoryQuery(since=T0)))
        lab.flush()
        self.assertEqual(errors, [HistoryError])
        self.flushLoggedErrors(HistoryError)
        lab.stop_hub("h9")

    def _report(self, lab, agent):
        d = agent.report(T0)
        lab.flush()
        return d


class PeerHistoryTests(SynchronousTestCase):
    """
    Every hub keeps the whole history: reports gossiped from peers are
    written, and a hub that joins late or comes back catches up.
    """

    def setUp(self):
        self.lab = MeshLab(["h1", "h2"], history=self.mktemp())
        self.addCleanup(lambda: [self.lab.stop_hub(n) for n in list(self.lab.hubs)])

    def test_gossiped_reports_written(self):
        """
        A report an agent sends to h1 is in h2's history too, and so is
        its alert.
        """
        self.lab.peer("h1", "h2")
        agent = self.lab.agent("a1", "h1")
        self.lab.run(5)
        agent.alert(seq=3)
        self.lab.run(2, report_every=0)
        h1, h2 = self.lab.hubs["h1"], self.lab.hubs["h2"]
        self.assertEqual(seqs(h1), list(range(1, 6)))
        self.assertEqual(seqs(h2), seqs(h1))
        answer = h2.history.query(HistoryQuery(since=T0 - 60), h2.clock.seconds()).result
        self.assertEqual([a.seq for a in answer.agents[0].alerts], [3])

    def test_late_joiner_catches_up(self):
        """
        h2 peers with h1 only after h1 has 20 s of an agent's history, of
        which gossip carries only the newest report: h2 catches up on every
        report when the link comes up.
        """
        self.lab.agent("a1", "h1")
        self.lab.run(20)
        h1, h2 = self.lab.hubs["h1"], self.lab.hubs["h2"]
        self.assertEqual(len(seqs(h1)), 20)
        self.assertEqual(seqs(h2), [])
        self.lab.peer("h1", "h2")
        self.lab.run(1, report_every=0)
        self.assertEqual(seqs(h2), seqs(h1))
        self.assertEqual(h2.info().history_synced, h2.syncer.rows)
        self.assertGreaterEqual(h2.syncer.rows, 19)

    def test_restarted_hub_catches_up(self):
        """
        h2 is down while the agent reports to h1; restarted on the same
        file, it catches up on what it missed, and keeps what it had.
        """
        self.lab.peer("h1", "h2")
        self.lab.agent("a1", "h1")
        self.lab.run(5)
        self.lab.stop_hub("h2")
        self.lab.run(10)
        self.lab.start_hub("h2")
        self.assertEqual(seqs(self.lab.hubs["h2"]), list(range(1, 6)))
        self.lab.peer("h1", "h2")
        self.lab.run(2)
        self.assertEqual(seqs(self.lab.hubs["h2"]), seqs(self.lab.hubs["h1"]))
        self.assertEqual(seqs(self.lab.hubs["h1"]), list(range(1, 18)))

    def test_gaps_filled(self):
        """
        Reports gossip skipped (superseded before a pull, here by pulls
        rarer than reports) are filled by the periodic catch-up.
        """
        self.lab = MeshLab(["h1", "h2"], gossip_interval=2.5, peer_timeout=10,
                           history=self.mktemp())
        self.lab.peer("h1", "h2")
        self.lab.agent("a1", "h1")
        self.lab.run(10, report_every=0.5)
        h1, h2 = self.lab.hubs["h1"], self.lab.hubs["h2"]
        self.lab.run(6, report_every=0)
        self.assertEqual(len(seqs(h1)), 20)
        self.assertEqual(seqs(h2), seqs(h1))

    def test_long_catch_up_goes_on(self):
        """
        A catch-up cut short after MAX_PAGES answers goes on at the next
        tick from where it stopped, until the late joiner has everything.
        """
        self.patch(historysync, "MAX_PAGES", 2)
        self.patch(historysync, "PULL_BYTES", 3000)
        self.lab.agent("a1", "h1")
        self.lab.run(30)
        h1, h2 = self.lab.hubs["h1"], self.lab.hubs["h2"]
        self.lab.peer("h1", "h2")
        self.lab.run(1, report_every=0)
        first = len(seqs(h2))
        self.assertLess(first, 30)
        self.assertGreater(first, 0)
        self.lab.run(60, report_every=0)
        self.assertEqual(seqs(h2), seqs(h1))
        self.assertEqual(len(seqs(h1)), 30)


class FakeStore:
    """
    A history whose retention passes delete C{deletions} rows in turn (an
    exception instance fails that pass).
    """

    def __init__(self, *deletions):
        self.deletions = list(deletions)
        self.passes = 0
        self.closed = False

    def expire(self, now):
        self.passes += 1
        rows = self.deletions.pop(0) if self.deletions else 0
        if isinstance(rows, Exception):
            return fail(rows)
        return succeed(rows)

    def close(self):
        self.closed = True
        return succeed(None)


class KeeperTests(SynchronousTestCase):
    def test_passes_until_nothing_left(self):
        """
        At each tick the keeper runs retention passes while they delete
        rows, at most EXPIRE_PASSES; a failed pass is logged and the next
        tick runs again; stopping closes the store.
        """
        clock = Clock()
        store = FakeStore(50_000, 50_000, 3, 0, *[7] * 20, OSError("disk gone"), 5)
        keeper = HistoryKeeper(store, clock, interval=60)
        keeper.startService()
        self.assertEqual((store.passes, keeper.expired), (4, 100_003))
        clock.advance(60)
        self.assertEqual((store.passes, keeper.expired),
                         (4 + historysync.EXPIRE_PASSES, 100_003 + 7 * historysync.EXPIRE_PASSES))
        clock.advance(60)
        self.assertEqual(keeper.expired, 100_003 + 7 * 20)
        logged: list = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        clock.advance(60)
        self.assertIn("history retention failed: disk gone",
                      [e.get("log_format", "").format(**e) for e in logged])
        clock.advance(60)
        self.assertEqual(keeper.expired, 100_003 + 7 * 20 + 5)
        self.assertFalse(store.closed)
        self.successResultOf(keeper.stopService())
        self.assertTrue(store.closed)
        self.assertEqual(clock.getDelayedCalls(), [])
