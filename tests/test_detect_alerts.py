"""
Tests for L{loopy.detect.alerts.AlertBook}: one alert per ongoing
condition, rate-limited updates, the "over" revision, and its bounds.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from loopy.detect.alerts import AlertBook
from loopy.model import ACTIVE, OVER

T0 = 1_700_000_000.0


class AlertBookTests(SynchronousTestCase):
    def setUp(self):
        self.emitted = []
        self.book = AlertBook("web1", 7, emit=self.emitted.append, update_interval=1.0,
                              quiet_after=10.0, max_active=3, linger=60.0, max_recent=2)

    def signal(self, now, subject="192.0.2.9", severity="warning", ports=20, **kw):
        return self.book.signal("port_scan", subject, now, severity,
                                f"{subject} scanned {ports} ports", src=subject,
                                dst="192.0.2.1", evidence={"ports_count": ports}, **kw)

    def test_raise(self):
        """
        The first signal raises revision 0 of alert 1, emitted at once, with
        the agent's identity and what was signalled.
        """
        alert = self.signal(T0)
        self.assertEqual(self.emitted, [alert])
        self.assertEqual((alert.agent_id, alert.epoch, alert.seq, alert.revision),
                         ("web1", 7, 1, 0))
        self.assertEqual((alert.kind, alert.severity, alert.state, alert.ts, alert.updated),
                         ("port_scan", "warning", ACTIVE, T0, T0))
        self.assertEqual((alert.src, alert.dst, alert.summary, alert.evidence),
                         ("192.0.2.9", "192.0.2.1", "192.0.2.9 scanned 20 ports",
                          {"ports_count": 20}))
        self.assertEqual(self.book.active("port_scan", "192.0.2.9"), alert)

    def test_updatesRateLimited(self):
        """
        Signals within the update interval change the alert but emit
        nothing; the first one after it emits the next revision with the
        newest evidence.
        """
        self.signal(T0)
        self.assertIsNone(self.signal(T0 + 0.25, ports=30))
        self.assertIsNone(self.signal(T0 + 0.5, ports=40))
        update = self.signal(T0 + 1.0, ports=50)
        self.assertEqual((update.seq, update.revision, update.evidence),
                         (1, 1, {"ports_count": 50}))
        self.assertEqual((update.ts, update.updated), (T0, T0 + 1.0))
        self.assertEqual(len(self.emitted), 2)
        self.assertEqual(self.book.updates, 1)

    def test_sweepSendsHeldUpdate(self):
        """
        An update held back is sent by a later sweep once the interval has
        passed, even with no further signal.
        """
        self.signal(T0)
        self.signal(T0 + 0.5, ports=40)
        self.assertEqual(self.book.sweep(T0 + 0.9), [])
        (update,) = self.book.sweep(T0 + 1.5)
        self.assertEqual((update.revision, update.evidence), (1, {"ports_count": 40}))
        self.assertEqual(self.book.sweep(T0 + 3.0), [])

    def test_severityRisesAtOnce(self):
        """
        A rise in severity is emitted at once; severity never falls.
        """
        self.signal(T0)
        critical = self.signal(T0 + 0.1, severity="critical")
        self.assertEqual((critical.revision, critical.severity), (1, "critical"))
        later = self.signal(T0 + 2, severity="warning", ports=30)
        self.assertEqual(later.severity, "critical")

    def test_over(self):
        """
        An alert not signalled for quiet_after seconds ends: one more
        revision, state over; a later signal raises a new alert.
        """
        self.signal(T0)
        self.signal(T0 + 5, ports=30)  # emitted as revision 1
        self.assertEqual(self.book.sweep(T0 + 14.9), [])
        (over,) = self.book.sweep(T0 + 15)
        self.assertEqual((over.seq, over.revision, over.state, over.updated),
                         (1, 2, OVER, T0 + 15))
        self.assertEqual((len(self.book), self.book.ended), (0, 1))
        again = self.signal(T0 + 20)
        self.assertEqual((again.seq, again.revision, again.state), (2, 0, ACTIVE))

    def test_quietAfterPerSignal(self):
        """
        A signal may set its own quiet time.
        """
        self.signal(T0, quiet_after=2.0)
        (over,) = self.book.sweep(T0 + 2)
        self.assertEqual(over.state, OVER)

    def test_bound(self):
        """
        Past max_active open alerts, new subjects are suppressed and
        counted; open ones still update.
        """
        for n in range(3):
            self.signal(T0, subject=f"192.0.2.{n}")
        self.assertIsNone(self.signal(T0, subject="192.0.2.99"))
        self.assertEqual((self.book.suppressed, len(self.book)), (1, 3))
        self.assertIsNotNone(self.signal(T0 + 1, subject="192.0.2.0", ports=30))

    def test_recent(self):
        """
        recent() lists the last emitted revision of each open alert, newest
        first, then ended alerts for linger seconds, at most max_recent.
        """
        first = self.signal(T0, subject="a")
        self.signal(T0 + 0.5, subject="a", ports=99)  # held back
        second = self.signal(T0 + 1, subject="b")
        self.assertEqual(self.book.recent(T0 + 1), (second, first))
        overs = self.book.sweep(T0 + 20)
        self.assertEqual(self.book.recent(T0 + 20), tuple(reversed(overs)))
        self.assertEqual(self.book.recent(T0 + 81), ())

    def test_recentBounded(self):
        """
        Ended alerts beyond max_recent are forgotten, oldest first.
        """
        for n in range(3):
            self.signal(T0 + n * 20, subject=str(n))
            self.book.sweep(T0 + n * 20 + 10)
        self.assertEqual([a.src for a in self.book.recent(T0 + 60)], ["2", "1"])

    def test_emitFailure(self):
        """
        An emit callback that raises is counted; the book goes on.
        """
        def broken(alert):
            raise RuntimeError("uplink gone")

        self.book.emit = broken
        alert = self.signal(T0)
        self.assertEqual((alert.seq, self.book.emit_errors), (1, 1))

    def test_badSeverity(self):
        self.assertRaises(ValueError, self.signal, T0, severity="fatal")

    def test_counts(self):
        self.signal(T0)
        self.signal(T0 + 2, ports=30)
        self.book.sweep(T0 + 20)
        self.assertEqual(self.book.counts(), {
            "alerts_open": 0, "alerts_raised": 1, "alerts_updated": 1,
            "alerts_ended": 1, "alerts_suppressed": 0})


class UnchangedTests(SynchronousTestCase):
    def test_noUpdateWhenNothingChanged(self):
        """
        A signal that says the same as the alert already does sends no
        update, however often it comes, but keeps the alert open.
        """
        emitted = []
        book = AlertBook("web1", 7, emit=emitted.append, quiet_after=10.0)
        for n in range(20):
            book.signal("arp_spoof", "192.0.2.1", T0 + n, "critical", "same",
                        src="192.0.2.1", evidence={"macs": 2})
        self.assertEqual([a.revision for a in emitted], [0])
        self.assertEqual(book.sweep(T0 + 28), [])
        (over,) = book.sweep(T0 + 29)
        self.assertEqual((over.revision, over.state), (1, OVER))
