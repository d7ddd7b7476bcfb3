# -*- test-case-name: tests.test_detect_alerts -*-
"""
The agent's alert book: detectors say "this condition holds now", the book
turns that into one L{Alert} per ongoing condition, its updates, and the
"over" revision when the condition stops.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Mapping, Optional

from attrs import evolve

from loopy.model import ACTIVE, OVER, SEVERITIES, Alert


class _Open:
    """
    An active alert inside the book: its newest state (C{alert}), the
    revision last emitted (C{sent}), and when the condition was last
    signalled.
    """

    __slots__ = ("alert", "sent", "last_signal", "last_emit", "quiet_after", "dirty")

    def __init__(self, alert: Alert, now: float, quiet_after: float):
        self.alert = self.sent = alert
        self.last_signal = now
        self.last_emit = now
        self.quiet_after = quiet_after
        self.dirty = False


class AlertBook:
    """
    The alerts of one agent run, keyed by ``(kind, subject)``.

    A detector calls L{signal} whenever it finds its condition true (at
    every evaluation while it holds); the book raises a new alert the first
    time, sends an update (a new revision) when what it says changed, at
    most every C{update_interval} seconds, or at once when the severity
    rises, and ends the alert (state L{OVER}) once nobody has signalled it
    for its C{quiet_after} seconds (L{sweep}).

    Bounded: at most C{max_active} alerts are open; a signal for a new
    subject past that is counted in C{suppressed} and dropped.  Ended
    alerts are kept for L{recent} for C{linger} seconds, at most
    C{max_recent} of them (oldest forgotten first).

    :ivar raised: alerts raised, cumulative.
    :ivar updates: update revisions emitted, cumulative.
    :ivar ended: alerts ended, cumulative.
    :ivar suppressed: signals for new subjects refused at the bound.
    :ivar emit_errors: exceptions raised by the emit callback (logged by
        the caller's logger; counted here).
    """

    def __init__(
        self,
        agent_id: str,
        epoch: int,
        emit: Callable[[Alert], Any] = lambda alert: None,
        update_interval: float = 1.0,
        quiet_after: float = 10.0,
        max_active: int = 1000,
        linger: float = 60.0,
        max_recent: int = 100,
    ):
        """
        :param agent_id: the agent's id.
        :param epoch: the agent run's epoch (see L{loopy.model.AgentReport}).
        :param emit: called with every new revision, at once (the uplink
            sends it to the hub).
        :param update_interval: least seconds between two updates of one
            alert (a rise in severity goes at once).
        :param quiet_after: default seconds without a signal before an
            alert is over; a signal may give its own.
        :param max_active: most alerts open at once.
        :param linger: seconds an ended alert stays in L{recent}.
        :param max_recent: most ended alerts kept for L{recent}.
        """
        self.agent_id = agent_id
        self.epoch = epoch
        self.emit = emit
        self.update_interval = update_interval
        self.quiet_after = quiet_after
        self.max_active = max_active
        self.linger = linger
        self._open: dict[tuple, _Open] = {}
        self._ended: deque[Alert] = deque(maxlen=max_recent)
        self._seq = 0
        self.raised = self.updates = self.ended = 0
        self.suppressed = self.emit_errors = 0

    def __len__(self) -> int:
        return len(self._open)

    def active(self, kind: str, subject: Any) -> Optional[Alert]:
        """
        The open alert for C{(kind, subject)}, or None.
        """
        entry = self._open.get((kind, subject))
        return None if entry is None else entry.alert

    def signal(
        self,
        kind: str,
        subject: Any,
        now: float,
        severity: str,
        summary: str,
        src: Optional[str] = None,
        dst: Optional[str] = None,
        evidence: Optional[Mapping[str, Any]] = None,
        quiet_after: Optional[float] = None,
    ) -> Optional[Alert]:
        """
        Say that condition C{kind} holds for C{subject} at time C{now}.

        :param kind: the alert kind (a documented word, e.g. ``port_scan``).
        :param subject: what the condition is about, hashable (e.g. the
            scanner's address octets): one alert per ``(kind, subject)``.
        :param now: seconds since the Unix epoch (capture clock).
        :param severity: one of L{loopy.model.SEVERITIES}.
        :param summary: one line for humans, as of now.
        :param evidence: JSON-shaped details, as of now.
        :param quiet_after: seconds without a signal before this alert is
            over [default: the book's].
        :returns: the revision emitted now, or None (an update held back by
            C{update_interval}, or a new alert past the bound).
        :raises ValueError: for an unknown severity.
        """
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r}")
        key = (kind, subject)
        entry = self._open.get(key)
        evidence = dict(evidence or {})
        if entry is None:
            if len(self._open) >= self.max_active:
                self.suppressed += 1
                return None
            self._seq += 1
            alert = Alert(
                agent_id=self.agent_id, epoch=self.epoch, seq=self._seq,
                ts=now, updated=now, kind=kind, severity=severity, state=ACTIVE,
                summary=summary, src=src, dst=dst, evidence=evidence,
            )
            self._open[key] = _Open(alert, now, quiet_after or self.quiet_after)
            self.raised += 1
            return self._emit(alert)
        entry.last_signal = now
        if quiet_after:
            entry.quiet_after = quiet_after
        old = entry.alert
        rising = SEVERITIES.index(severity) > SEVERITIES.index(old.severity)
        # Severity never falls within one alert: the worst seen is the truth.
        severity = severity if rising else old.severity
        if not rising and (summary, src, dst, evidence) == (
                old.summary, old.src, old.dst, old.evidence):
            # Nothing new to say: no update (the alert stays open).
            return None
        entry.alert = evolve(old, updated=now, severity=severity, summary=summary,
                             src=src, dst=dst, evidence=evidence)
        if rising or now - entry.last_emit >= self.update_interval:
            return self._publish(entry, now)
        entry.dirty = True
        return None

    def sweep(self, now: float) -> list[Alert]:
        """
        Emit held-back updates that are due, and end the alerts not
        signalled for their C{quiet_after} seconds.

        :param now: seconds since the Unix epoch (capture clock).
        :returns: the revisions emitted.
        """
        emitted = []
        for key, entry in list(self._open.items()):
            if now - entry.last_signal >= entry.quiet_after:
                del self._open[key]
                alert = evolve(entry.alert, revision=entry.alert.revision + 1,
                               updated=now, state=OVER)
                self._ended.append(alert)
                self.ended += 1
                emitted.append(self._emit(alert))
            elif entry.dirty and now - entry.last_emit >= self.update_interval:
                emitted.append(self._publish(entry, now))
        return emitted

    def _publish(self, entry: _Open, now: float) -> Alert:
        entry.alert = evolve(entry.alert, revision=entry.alert.revision + 1)
        entry.sent = entry.alert
        entry.last_emit = now
        entry.dirty = False
        self.updates += 1
        return self._emit(entry.alert)

    def _emit(self, alert: Alert) -> Alert:
        try:
            self.emit(alert)
        except Exception:
            self.emit_errors += 1
        return alert

    def recent(self, now: float) -> tuple[Alert, ...]:
        """
        The newest emitted revision of every open alert, then the alerts
        ended within C{linger} seconds of C{now}, newest first: what a
        report carries so that a lost delivery heals.

        An open alert's revision here is the last one emitted, so a report
        never carries a revision the hub will not also get at once.
        """
        while self._ended and now - self._ended[0].updated > self.linger:
            self._ended.popleft()
        opened = sorted((e.sent for e in self._open.values()), key=lambda a: -a.seq)
        return tuple(opened) + tuple(reversed(self._ended))

    def counts(self) -> dict[str, int]:
        """
        The book's counters and size, for the detect analyser's snapshot.
        """
        return {
            "alerts_open": len(self._open),
            "alerts_raised": self.raised,
            "alerts_updated": self.updates,
            "alerts_ended": self.ended,
            "alerts_suppressed": self.suppressed,
        }
