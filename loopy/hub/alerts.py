# -*- test-case-name: tests.test_hub_alerts -*-
"""
A table of alerts by identity ``(agent_id, epoch, seq)``: the newest
revision of each and who acknowledged it.  The hub keeps the fleet's alerts
in one; each UI keeps a copy, merged from the hub's pushes.  Pure logic:
times are passed in.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

from attrs import evolve

from loopy.model import ACTIVE, SEVERITIES, Alert, AlertEntry


class AlertBoard:
    """
    Alerts merged by version: an alert's higher revision replaces a lower
    one, the same revision again changes nothing, and an acknowledgement
    sticks to the alert across its later revisions; of two
    acknowledgements (made at two hubs of a mesh) the earlier is kept.  So
    the result does not depend on the order or number of deliveries.

    Bounded: at most C{max_alerts}.  At the bound the oldest alert that is
    over goes first (the oldest acknowledged one, then the oldest of any),
    counted in C{dropped}.

    :ivar merged: revisions that changed the table.
    :ivar duplicates: revisions at or below the one held (ignored).
    :ivar dropped: alerts forgotten at the bound.
    """

    def __init__(self, max_alerts: int = 10000,
                 on_drop: Callable[[tuple], None] = lambda key: None):
        """
        :param on_drop: called with the key of each alert dropped at the
            bound.
        """
        self.max_alerts = max_alerts
        self.on_drop = on_drop
        self._entries: dict[tuple, AlertEntry] = {}
        self.merged = self.duplicates = self.dropped = 0
        self._sorted: Optional[tuple[AlertEntry, ...]] = None
        self._markers: Optional[dict[str, tuple[int, str]]] = None

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple) -> Optional[AlertEntry]:
        """
        The entry of alert C{key} (``(agent_id, epoch, seq)``), or None.
        """
        return self._entries.get(key)

    def merge(self, alert: Alert, now: float) -> Optional[AlertEntry]:
        """
        Take one revision of an alert, as an agent sent it.

        :param now: this hub's clock, seconds since the Unix epoch.
        :returns: the entry now held if the revision was new, else None.
        """
        held = self._entries.get(alert.key)
        if held is not None and alert.revision <= held.alert.revision:
            self.duplicates += 1
            return None
        if held is None:
            entry = AlertEntry(alert=alert, received=now)
        else:
            entry = evolve(held, alert=alert, received=now)
        return self._put(entry)

    def apply(self, entry: AlertEntry) -> Optional[AlertEntry]:
        """
        Take an entry as another table holds it (a hub's push to a UI):
        the higher revision wins, and an acknowledgement on either side is
        kept.

        :returns: the entry now held if anything changed, else None.
        """
        held = self._entries.get(entry.alert.key)
        if held is None:
            return self._put(entry)
        alert = entry.alert if entry.alert.revision > held.alert.revision else held.alert
        received = entry.received if alert is entry.alert else held.received
        ack = held if _first_acknowledged(held, entry) else entry
        merged = AlertEntry(alert=alert, received=received,
                            acknowledged_by=ack.acknowledged_by,
                            acknowledged_at=ack.acknowledged_at)
        if merged == held:
            self.duplicates += 1
            return None
        return self._put(merged)

    def acknowledge(self, key: tuple, by: str, at: float) -> Optional[AlertEntry]:
        """
        Mark alert C{key} acknowledged by C{by} at C{at} (a hub's clock).
        The earliest acknowledgement is kept (of two at the same time, the
        greater C{by}); a later one changes nothing.

        :returns: the entry if it changed; None if unknown or already
            acknowledged earlier.
        """
        held = self._entries.get(key)
        if held is None:
            return None
        entry = evolve(held, acknowledged_by=by, acknowledged_at=at)
        if _first_acknowledged(held, entry):
            return None
        return self._put(entry)

    def _put(self, entry: AlertEntry) -> AlertEntry:
        key = entry.alert.key
        if key not in self._entries and len(self._entries) >= self.max_alerts:
            self._drop_one()
        self._entries[key] = entry
        self._sorted = self._markers = None
        self.merged += 1
        return entry

    def _drop_one(self) -> None:
        def age(entry: AlertEntry) -> tuple:
            alert = entry.alert
            return (alert.state == ACTIVE, entry.acknowledged_by is None, alert.updated)

        oldest = min(self._entries.values(), key=age)
        del self._entries[oldest.alert.key]
        self.dropped += 1
        self.on_drop(oldest.alert.key)

    def entries(self) -> tuple[AlertEntry, ...]:
        """
        Every alert, newest first (by the time it was raised).
        """
        if self._sorted is None:
            self._sorted = tuple(sorted(
                self._entries.values(),
                key=lambda e: (e.alert.ts, e.alert.agent_id, e.alert.epoch, e.alert.seq),
                reverse=True))
        return self._sorted

    def replace(self, entries: Iterable[AlertEntry]) -> None:
        """
        Hold exactly C{entries} (a UI's table after a full view).
        """
        self._entries = {}
        self._sorted = self._markers = None
        for entry in entries:
            self._put(entry)

    def markers(self) -> dict[str, tuple[int, str]]:
        """
        Per agent id: how many of its alerts are active and not
        acknowledged, and the highest severity among them.
        """
        if self._markers is not None:
            return self._markers
        out: dict[str, tuple[int, str]] = {}
        for entry in self._entries.values():
            alert = entry.alert
            if alert.state != ACTIVE or entry.acknowledged_by is not None:
                continue
            count, worst = out.get(alert.agent_id, (0, ""))
            if not worst or SEVERITIES.index(alert.severity) > SEVERITIES.index(worst):
                worst = alert.severity
            out[alert.agent_id] = (count + 1, worst)
        self._markers = out
        return out


def _first_acknowledged(held: AlertEntry, other: AlertEntry) -> bool:
    """
    Whether C{held}'s acknowledgement is the one to keep over C{other}'s:
    it has one and C{other} has none, or an earlier one (ties: the
    greater C{by}, as L{loopy.model.Acknowledgement.order}).
    """
    if held.acknowledged_by is None:
        return False
    if other.acknowledged_by is None:
        return True
    return ((-held.acknowledged_at, held.acknowledged_by)
            >= (-other.acknowledged_at, other.acknowledged_by))
