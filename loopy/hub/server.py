# -*- test-case-name: tests.test_hub_server -*-
"""
The hub's AMP server: agents say hello and send reports; UIs watch the fleet
and get pushes, or ask for it once.

Pushes to a UI are flow-controlled: at most one L{FleetUpdate} per UI is in
flight, at most one per push interval; a tick that finds the previous push
unanswered skips that UI (counted in C{updates_coalesced}), so what a slow UI
costs the hub is bounded by one view.

Alerts travel apart from the fleet view, and at once: an agent's
L{SendAlert} (or the alerts a report carries) is merged into the hub's
L{AlertBoard}, and every change (a new revision, an acknowledgement) is
pushed to every watching UI as an L{AlertUpdate} without waiting for the
push tick.  At most one L{AlertUpdate} per UI is in flight; changes made
meanwhile wait in that UI's pending table (one entry per alert, so it is
bounded by the board) and go in the next, at most L{ALERT_BATCH} a time.

Hubs form a mesh (L{loopy.hub.peers}, L{loopy.hub.mesh}): everything a hub
learns from its agents and UIs (links, reports, alerts, acknowledgements,
and its own heartbeat) is written as a replicated entry, and the entries
peers send are acted on through the same path, so a UI on any hub sees
every agent.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Optional

from attrs import evolve
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from loopy import __version__
from loopy.errors import HistoryError, WireError
from loopy.hub.alerts import AlertBoard
from loopy.hub import historysync, mesh
from loopy.hub.fleet import FleetState
from loopy.hub.peers import MAX_HUBS, PeerLinks
from loopy.model import Acknowledgement, AgentLink, AlertEntry, FleetView, HubInfo
from loopy.wire import (
    AcknowledgeAlert,
    AgentHello,
    AlertBatch,
    AlertUpdate,
    BoundedAMP,
    FleetUpdate,
    GetFleet,
    GetHistory,
    GossipPull,
    HistorySync,
    PeerHello,
    Report,
    SendAlert,
    Watch,
    to_json_value,
)

log = Logger()

#: Most alerts in one L{AlertUpdate}.
ALERT_BATCH = 200
#: Most alerts in a view (the newest), and most changes waiting for one UI:
#: past that the UI is sent the newest alerts whole instead.
VIEW_ALERTS = 1000
#: Most replication-age samples kept (the newest, at most a minute old).
AGE_SAMPLES = 4096


class HubProtocol(BoundedAMP):
    """
    One connection to the hub: an agent's, a UI's or a peer hub's, as its
    first command says.  The hub's own connections to its peers are of
    this class too (C{dialled} names the endpoint).
    """

    def __init__(self, hub: "Hub"):
        BoundedAMP.__init__(self)
        self.hub = hub
        self.agent_id: Optional[str] = None
        #: The agent's AgentHello: (hostname, epoch, link).
        self.agent_link: Optional[tuple[str, int, int]] = None
        self.peer_name: Optional[str] = None
        self.dialled: Optional[str] = None
        self.watching = False
        self.detail = ""
        self.push_in_flight = False
        self.alerts_in_flight = False
        self.pending_alerts: dict[tuple, AlertEntry] = {}
        self.resync_alerts = False
        self.on_protocol_error = lambda reason: hub.protocol_error()

    def connectionMade(self):
        BoundedAMP.connectionMade(self)
        if self.dialled is not None:
            self.hub.peers.dialled(self)

    def connectionLost(self, reason):
        BoundedAMP.connectionLost(self, reason)
        self.hub.connection_lost(self)

    def dataReceived(self, data):
        if self.peer_name is not None:
            self.hub.gossip_bytes_in += len(data)
        BoundedAMP.dataReceived(self, data)

    def sendBox(self, box):
        if self.peer_name is not None:
            self.hub.gossip_bytes_out += len(box.serialize())
        BoundedAMP.sendBox(self, box)

    @AgentHello.responder
    def agent_hello(self, agent_id, hostname, epoch, version, link=None):
        if self.agent_id is not None and self.agent_id != agent_id:
            raise WireError("this link already belongs to agent " + self.agent_id)
        if not agent_id:
            raise WireError("empty agent_id")
        if self.peer_name is not None:
            raise WireError("this is a peer hub's link")
        if self.agent_id is None:
            if not self.hub.fleet.linked(agent_id, hostname):
                raise WireError("the hub's agent table is full")
            self.agent_id = agent_id
            self.agent_link = (hostname, epoch, link or 0)
            self.hub.agent_linked(agent_id, hostname, epoch, link or 0, up=True)
            self.hub.agents_linked += 1
            log.info("agent {agent_id} ({hostname}, epoch {epoch}, {version}) linked "
                     "from {peer}", agent_id=agent_id, hostname=hostname, epoch=epoch,
                     version=version, peer=self.transport.getPeer())
        return {"hub": self.hub.name}

    @Report.responder
    def report(self, report):
        if self.agent_id is None or report.agent_id != self.agent_id:
            raise WireError("a report must follow AgentHello, for the same agent_id")
        for alert in report.alerts:
            self._check_alert(alert)
        return self.hub.take_report(report).addCallback(lambda new: {"accepted": new})

    @SendAlert.responder
    def send_alert(self, alert):
        self._check_alert(alert)
        return self.hub.merge_alert(alert).addCallback(lambda new: {"accepted": new})

    def _check_alert(self, alert) -> None:
        if self.agent_id is None or alert.agent_id != self.agent_id:
            raise WireError("an alert must follow AgentHello, for the same agent_id")

    @AcknowledgeAlert.responder
    def acknowledge_alert(self, agent_id, epoch, seq, by):
        return {"known": self.hub.acknowledge_alert((agent_id, epoch, seq), by[:200])}

    @Watch.responder
    def watch(self, detail):
        if not self.watching:
            self.watching = True
            self.hub.watchers.add(self)
        # The view carries the newest alerts: what was pending is in it.
        self.pending_alerts.clear()
        self.resync_alerts = False
        self.detail = detail
        return {"view": self.hub.view(detail={detail} if detail else ())}

    @GetFleet.responder
    def get_fleet(self):
        return {"view": self.hub.view(detail=True)}

    @PeerHello.responder
    def peer_hello(self, name, epoch, endpoint, version):
        if self.agent_id is not None or self.watching or self.peer_name is not None:
            raise WireError("PeerHello must be the first command on a link")
        if name == self.hub.name:
            raise WireError(f"this hub is named {name} too: hub names must be unique "
                            "in a mesh")
        self.hub.peers.attach(self, name, endpoint)
        return {"name": self.hub.name, "epoch": self.hub.epoch,
                "endpoint": self.hub.endpoint}

    @GossipPull.responder
    def gossip_pull(self, digest):
        if self.peer_name is None:
            raise WireError("GossipPull must follow PeerHello")
        return {"batch": self.hub.mesh.delta(digest.watermarks)}

    @HistorySync.responder
    def history_sync(self, since, have):
        if self.peer_name is None:
            raise WireError("HistorySync must follow PeerHello")
        if self.hub.history is None:
            raise HistoryError("this hub keeps no history")
        return historysync.answer(self.hub, since, have)

    @GetHistory.responder
    def get_history(self, query):
        return self.hub.query_history(query)


def _first_error(failure):
    """
    The first failure of a L{gatherResults} whose errors are consumed.
    """
    return failure.value.subFailure


class Hub(Factory):
    """
    The hub's state and its server factory.

    :ivar epoch: this hub run, its start time in microseconds (a restart
        is a new origin in the mesh).
    :ivar mesh: the replicated entries (L{loopy.hub.mesh.ReplicaStore}).
    :ivar peers: the peer links and heartbeats (a service for the tap to
        start).
    :ivar updates_coalesced: pushes skipped because the UI had not answered
        the previous one.
    :ivar protocol_errors: connections dropped for bad input.
    :ivar entries_rejected: entries from peers that did not parse (dropped).
    :ivar history: the history store (L{loopy.hub.history.IHistoryStore}),
        or None for a hub that keeps none (tests): then reports and alerts
        are answered once merged.
    :ivar syncer: history catch-up from peers (a service for the tap).
    """

    def __init__(self, name: str, endpoint: str, clock, stale_after: float = 3.0,
                 push_interval: float = 1.0, max_agents: int = 10000,
                 max_alerts: int = 10000, peers: tuple[str, ...] = (),
                 gossip_interval: float = 0.25, peer_timeout: float = 3.0,
                 epoch: Optional[int] = None, history=None):
        self.name = name
        self.endpoint = endpoint
        self.clock = clock
        self.started = clock.seconds()
        self.epoch = int(self.started * 1_000_000) if epoch is None else epoch
        self.fleet = FleetState(name, stale_after=stale_after, max_agents=max_agents)
        self.alerts = AlertBoard(max_alerts=max_alerts, on_drop=self._alert_dropped)
        self.mesh = mesh.ReplicaStore(name, self.epoch, limits={
            "hub": MAX_HUBS, "link": max_agents, "report": max_agents,
            # The board's bound decides which alert goes (see _alert_dropped).
            "alert": max_alerts + 1, "ack": max_alerts + 1,
        })
        self.peers = PeerLinks(self, peers, clock, gossip_interval=gossip_interval,
                               peer_timeout=peer_timeout)
        self.history = history
        self.syncer = historysync.HistorySyncer(self, clock)
        self.watchers: set[HubProtocol] = set()
        self.agents_linked = 0
        self.alert_resyncs = 0
        self.updates_coalesced = 0
        self.protocol_errors = 0
        self.gossip_bytes_in = self.gossip_bytes_out = 0
        self.entries_replicated = self.entries_rejected = 0
        self._ages: deque[tuple[float, float]] = deque(maxlen=AGE_SAMPLES)
        self._push = LoopingCall(self.push)
        self._push.clock = clock
        self._push_interval = push_interval
        self._acting = {
            "hub": self._beat_written,
            "link": self._link_written,
            "report": self._report_written,
            "alert": self._alert_written,
            "ack": self._ack_written,
        }

    def buildProtocol(self, addr):
        return HubProtocol(self)

    def startFactory(self):
        if not self._push.running:
            self._push.start(self._push_interval, now=False)

    def stopFactory(self):
        if self._push.running:
            self._push.stop()

    def protocol_error(self) -> None:
        self.protocol_errors += 1

    def connection_lost(self, proto: HubProtocol) -> None:
        self.watchers.discard(proto)
        if proto.peer_name is not None:
            self.peers.detach(proto)
        if proto.agent_id is not None:
            self.agents_linked -= 1
            self.fleet.unlinked(proto.agent_id)
            hostname, epoch, link = proto.agent_link
            self.agent_linked(proto.agent_id, hostname, epoch, link, up=False)
            log.info("agent {agent_id} unlinked", agent_id=proto.agent_id)

    def agent_linked(self, agent_id: str, hostname: str, epoch: int, link: int,
                     up: bool) -> None:
        """
        An agent's link to this hub opened or closed: tell the mesh.
        """
        self.write("link", AgentLink(agent_id=agent_id, hostname=hostname, hub=self.name,
                                     epoch=epoch, link=link, up=up))

    # Replication: every change goes through write() (made here) or
    # replicate() (from a peer), and is acted on in _acting[kind].

    def write(self, kind: str, record: Any) -> Optional[mesh.Entry]:
        """
        Record C{record} as this hub's replicated entry of C{kind} and act
        on it.

        :returns: the entry, or None if the hub held a newer one (or the
            kind is at its bound).
        """
        entry = mesh.write(self.mesh, kind, record)
        if entry is not None:
            self._acting[kind](record, False)
        return entry

    def replicate(self, batch: mesh.Batch) -> None:
        """
        Take a peer's answer to a pull: entries that do not parse are
        dropped (counted in C{entries_rejected}); those newer than what
        this hub holds are acted on.
        """
        entries = []
        for entry in batch.entries:
            try:
                mesh.parse(entry)
            except WireError as e:
                self.entries_rejected += 1
                log.warn("dropping an entry from a peer: {error}", error=e)
                continue
            entries.append(entry)
        if len(entries) != len(batch.entries):
            batch = mesh.Batch(entries=tuple(entries), complete=batch.complete,
                               more=batch.more)
        for entry in self.mesh.apply(batch):
            self.entries_replicated += 1
            try:
                self._acting[entry.kind](entry.record, True)
            except Exception:
                log.failure("acting on a replicated {kind} entry failed", kind=entry.kind)

    def _beat_written(self, beat, remote: bool) -> None:
        self.peers.beat_applied(beat, self.clock.seconds())

    def _link_written(self, link: AgentLink, remote: bool) -> None:
        self.fleet.link_changed(link)
        if remote and link.up and link.hub == self.name:
            # A previous run of this hub had that link; this run does not:
            # say it is down, so the mesh stops counting the agent linked.
            self.write("link", evolve(link, up=False))

    def _report_written(self, report, remote: bool) -> None:
        now = self.clock.seconds()
        if not remote:
            self.fleet.merge(report, now)
            return
        entry = self.mesh.get("report", report.agent_id)
        if self.history is not None:
            self._keep(self.history.add_report(entry.value), "a peer's report")
        if self.fleet.merge_head(report.agent_id, report.hostname, report.version,
                                 report.summary, now,
                                 load=lambda: mesh.load_report(entry)):
            self._ages.append((now, now - report.ts))

    def _alert_written(self, alert, remote: bool) -> None:
        if remote and self.history is not None:
            self._keep(self.history.add_alert(alert), "a peer's alert")
        entry = self.alerts.merge(alert, self.clock.seconds())
        if entry is None:
            return
        ack = self.mesh.get("ack", alert.key)
        if ack is not None:
            entry = self.alerts.acknowledge(alert.key, ack.record.by, ack.record.at) or entry
        self.alert_changed(entry)

    def _ack_written(self, ack: Acknowledgement, remote: bool) -> None:
        entry = self.alerts.acknowledge((ack.agent_id, ack.epoch, ack.seq), ack.by, ack.at)
        if entry is not None:
            log.info("alert {key} acknowledged by {by}", key=entry.alert.key, by=ack.by)
            self.alert_changed(entry)

    def _alert_dropped(self, key: tuple) -> None:
        self.mesh.forget("alert", key)
        self.mesh.forget("ack", key)

    def replication_ages(self) -> tuple[float, float]:
        """
        The median and 99th percentile of the ages of reports taken from
        peers in the last minute (seconds), or zeros.
        """
        now = self.clock.seconds()
        ages = sorted(age for at, age in self._ages if now - at <= 60.0)
        if not ages:
            return 0.0, 0.0
        return ages[len(ages) // 2], ages[min(len(ages) - 1, int(len(ages) * 0.99))]

    def info(self) -> HubInfo:
        age_p50, age_p99 = self.replication_ages()
        return HubInfo(
            name=self.name,
            endpoint=self.endpoint,
            version=__version__,
            started=self.started,
            now=self.clock.seconds(),
            agents_linked=self.agents_linked,
            uis_linked=len(self.watchers),
            updates_coalesced=self.updates_coalesced,
            protocol_errors=self.protocol_errors,
            alerts_held=len(self.alerts),
            alerts_dropped=self.alerts.dropped,
            push_interval=self._push_interval,
            peers_linked=len(self.peers.linked),
            gossip_bytes_in=self.gossip_bytes_in,
            gossip_bytes_out=self.gossip_bytes_out,
            entries_replicated=self.entries_replicated,
            entries_rejected=self.entries_rejected,
            entries_refused=sum(self.mesh.refused.values()) + self.mesh.origins_dropped,
            replication_age_p50=age_p50,
            replication_age_p99=age_p99,
            **self._history_info(),
        )

    def _history_info(self) -> dict:
        if self.history is None:
            return {}
        stats = self.history.stats()
        return {
            "history_reports": stats["reports"],
            "history_duplicates": stats["duplicates"],
            "history_pending": stats["pending"],
            "history_refused": stats["refused"],
            "history_errors": stats["errors"],
            "history_bytes": stats["bytes"],
            "history_commit_p99": stats["commit_p99"],
            "history_synced": self.syncer.rows,
        }

    def view(self, detail=(), alerts: bool = True) -> FleetView:
        """
        The fleet as a UI sees it, with full reports for C{detail} (a set of
        agent ids, or True for every agent), and every alert if C{alerts}.
        """
        now = self.clock.seconds()
        return FleetView(
            hub=self.info(),
            agents=self.fleet.entries(now, detail, self.alerts.markers(), self.peers.alive),
            alerts=self.alerts.entries()[:VIEW_ALERTS] if alerts else (),
            hubs=self.peers.states(now),
        )

    def take_report(self, report) -> Deferred:
        """
        Take one report from an agent: merge it (if it is the agent's
        newest) and its alerts, and write it and them to the history.

        :returns: a Deferred firing, once the history commit holding the
            report and its alerts is done, with whether the report was new
            to the history (without a history: new to the fleet state); or
            failing with L{HistoryError}.
        """
        value = to_json_value(report)
        entry = mesh.write(self.mesh, "report", report, value=value)
        if entry is not None:
            self._report_written(report, False)
        alerts = [self.merge_alert(alert) for alert in report.alerts]
        if self.history is None:
            return succeed(entry is not None)
        written = [self.history.add_report(value)] + alerts
        d = gatherResults(written, consumeErrors=True)
        d.addCallbacks(lambda results: results[0], _first_error)
        return d

    def merge_alert(self, alert) -> Deferred:
        """
        Take one alert revision from an agent.

        :returns: a Deferred firing, once the revision is committed to the
            history, with whether it was new (without a history: new to
            the alert board); or failing with L{HistoryError}.
        """
        new = self.write("alert", alert) is not None
        if self.history is None:
            return succeed(new)
        return self.history.add_alert(alert)

    def query_history(self, query) -> Deferred:
        """
        Answer a UI's L{GetHistory}.

        :returns: a Deferred firing with ``{"history": History}``, or
            failing with L{HistoryError}.
        """
        if self.history is None:
            return fail(HistoryError("this hub keeps no history"))
        d = self.history.query(query, self.clock.seconds())
        return d.addCallback(lambda history: {"history": history})

    def _keep(self, d: Deferred, what: str) -> None:
        """
        Log a failed history write of C{what} that no agent waits for (the
        store counts it).
        """
        d.addErrback(lambda f: log.warn("writing {what} to the history failed: {error}",
                                        what=what, error=f.getErrorMessage()))

    def acknowledge_alert(self, key: tuple, by: str) -> bool:
        """
        Acknowledge alert C{key} for user C{by} at this hub's time.

        :returns: whether the hub holds that alert.
        """
        agent_id, epoch, seq = key
        if self.alerts.get(key) is not None:
            self.write("ack", Acknowledgement(agent_id=agent_id, epoch=epoch, seq=seq, by=by,
                                              at=self.clock.seconds()))
        return self.alerts.get(key) is not None

    def alert_changed(self, entry: AlertEntry) -> None:
        """
        Queue C{entry} for every watching UI and push at once to those with
        no alert push in flight.
        """
        for proto in list(self.watchers):
            if not proto.resync_alerts:
                proto.pending_alerts[entry.alert.key] = entry
                if len(proto.pending_alerts) > VIEW_ALERTS:
                    proto.pending_alerts.clear()
                    proto.resync_alerts = True
                    self.alert_resyncs += 1
            if not proto.alerts_in_flight:
                self._push_alerts(proto)

    def _push_alerts(self, proto: HubProtocol) -> None:
        pending = proto.pending_alerts
        if proto.resync_alerts:
            proto.resync_alerts = False
            batch = AlertBatch(alerts=self.alerts.entries()[:VIEW_ALERTS], full=True)
        elif pending:
            keys = list(pending)[:ALERT_BATCH]
            batch = AlertBatch(alerts=tuple(pending.pop(k) for k in keys))
        else:
            return
        proto.alerts_in_flight = True
        d = proto.callRemote(AlertUpdate, batch=batch)

        def done(_):
            proto.alerts_in_flight = False
            if proto in self.watchers:
                self._push_alerts(proto)

        def failed(failure):
            proto.alerts_in_flight = False
            log.warn("alert push to UI {peer} failed: {error}",
                     peer=proto.transport.getPeer() if proto.transport is not None else None,
                     error=failure.getErrorMessage())

        d.addCallbacks(done, failed)

    def push(self) -> None:
        """
        Send each watching UI the current view, unless its last push is
        still unanswered.
        """
        try:
            for proto in list(self.watchers):
                if proto.push_in_flight:
                    self.updates_coalesced += 1
                    continue
                self._push_to(proto)
        except Exception:
            log.failure("pushing fleet updates failed")

    def _push_to(self, proto: HubProtocol) -> None:
        proto.push_in_flight = True
        view = self.view(detail={proto.detail} if proto.detail else (), alerts=False)
        d = proto.callRemote(FleetUpdate, view=view)

        def done(result):
            proto.push_in_flight = False

        def failed(failure):
            proto.push_in_flight = False
            log.warn("push to UI {peer} failed: {error}", peer=proto.transport.getPeer()
                     if proto.transport is not None else None,
                     error=failure.getErrorMessage())

        d.addCallbacks(done, failed)
