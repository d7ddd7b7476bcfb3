# -*- test-case-name: tests.test_fleet -*-
"""
A hub's knowledge of its fleet: per agent, the newest report by version
``(epoch, seq)``, the hub it reports through (the newest L{AgentLink} in
the mesh) and whether that link is up.  Pure logic: times are passed in,
nothing here touches the network.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Optional

from loopy.model import (
    OFFLINE,
    ONLINE,
    STALE,
    AgentEntry,
    AgentLink,
    AgentReport,
    AgentSummary,
    summarize,
)


class _Agent:
    __slots__ = ("agent_id", "hostname", "hub", "links", "link", "report", "load",
                 "summary", "last_heard", "epoch", "seq")

    def __init__(self, agent_id: str, hostname: str, hub: str):
        self.agent_id = agent_id
        self.hostname = hostname
        self.hub = hub
        #: Open connections of the agent to this hub.
        self.links = 0
        #: The newest link record in the mesh, or None.
        self.link: Optional[AgentLink] = None
        self.report: Optional[AgentReport] = None
        #: Makes C{report} when it is first asked for (a peer's report).
        self.load: Optional[Callable[[], AgentReport]] = None
        self.summary = AgentSummary()
        self.last_heard: Optional[float] = None
        self.epoch = 0
        self.seq = 0


class FleetState:
    """
    The agents a hub knows.

    Bounded: at most C{max_agents}; a new agent past the bound is refused
    (C{agents_refused}) rather than forgetting a known one.

    :ivar stale_after: seconds without a report before a linked agent is
        L{STALE}.
    :ivar reports_merged: reports that were newer than what was held.
    :ivar reports_duplicate: reports at or below the held version (ignored).
    :ivar reports_unreadable: peers' reports that did not make a record
        when a UI asked for them (listed without the report).
    """

    def __init__(self, hub_name: str, stale_after: float = 3.0, max_agents: int = 10000):
        self.hub_name = hub_name
        self.stale_after = stale_after
        self.max_agents = max_agents
        self._agents: dict[str, _Agent] = {}
        self.reports_merged = 0
        self.reports_duplicate = 0
        self.reports_unreadable = 0
        self.agents_refused = 0

    def __len__(self) -> int:
        return len(self._agents)

    def _agent(self, agent_id: str, hostname: str) -> Optional[_Agent]:
        agent = self._agents.get(agent_id)
        if agent is None:
            if len(self._agents) >= self.max_agents:
                self.agents_refused += 1
                return None
            agent = self._agents[agent_id] = _Agent(agent_id, hostname, self.hub_name)
        return agent

    def linked(self, agent_id: str, hostname: str) -> bool:
        """
        An agent said hello on a link to this hub.

        :returns: False if the agent table is full and the agent is new.
        """
        agent = self._agent(agent_id, hostname)
        if agent is None:
            return False
        agent.hostname = hostname
        agent.links += 1
        if agent.link is None:
            agent.hub = self.hub_name
        return True

    def link_changed(self, link: AgentLink) -> bool:
        """
        Take a link record (this hub's or a peer's) if it is newer than the
        one held: it says which hub the agent reports through.

        :returns: False if the record is not newer, or the agent table is
            full and the agent is new.
        """
        agent = self._agent(link.agent_id, link.hostname)
        if agent is None or (agent.link is not None and link.order <= agent.link.order):
            return False
        agent.link = link
        agent.hub = link.hub
        return True

    def unlinked(self, agent_id: str) -> None:
        """
        A link of the agent to this hub closed.
        """
        agent = self._agents.get(agent_id)
        if agent is not None and agent.links:
            agent.links -= 1

    def merge(self, report: AgentReport, now: float) -> bool:
        """
        Keep C{report} if it is newer than the agent's held report.

        :param now: hub clock, seconds since the Unix epoch.
        :returns: True if it was newer and is now held.
        """
        return self.merge_head(report.agent_id, report.hostname, report.version,
                               summarize(report), now, report=report)

    def merge_head(self, agent_id: str, hostname: str, version: tuple[int, int],
                   summary: AgentSummary, now: float,
                   report: Optional[AgentReport] = None,
                   load: Optional[Callable[[], AgentReport]] = None) -> bool:
        """
        As L{merge}, for a report given by its identity and summary, with
        the report itself or a C{load} that makes it when first asked for
        (it may raise; the view then has no report, counted in
        C{reports_unreadable}).
        """
        agent = self._agent(agent_id, hostname)
        if agent is None:
            return False
        if (agent.epoch, agent.seq) >= version and agent.last_heard is not None:
            self.reports_duplicate += 1
            return False
        agent.report, agent.load = report, load
        agent.summary = summary
        agent.hostname = hostname
        agent.epoch, agent.seq = version
        agent.last_heard = now
        self.reports_merged += 1
        return True

    def _report(self, agent: _Agent) -> Optional[AgentReport]:
        if agent.report is None and agent.load is not None:
            load, agent.load = agent.load, None
            try:
                agent.report = load()
            except Exception:
                self.reports_unreadable += 1
        return agent.report

    def status(self, agent_id: str, now: float,
               alive: Callable[[str, float], bool] = lambda hub, now: False) -> str:
        """
        L{ONLINE}, L{STALE} or L{OFFLINE} at hub time C{now}.  An agent is
        linked if it has a connection to this hub, or if the newest link
        record in the mesh says it is up at another hub that is C{alive}.

        :param alive: whether the named hub is alive at C{now}.
        """
        agent = self._agents[agent_id]
        link = agent.link
        remote = (link is not None and link.up and link.hub != self.hub_name
                  and alive(link.hub, now))
        if not agent.links and not remote:
            return OFFLINE
        if agent.last_heard is None or now - agent.last_heard > self.stale_after:
            return STALE
        return ONLINE

    def entries(self, now: float, detail: Iterable[str] | bool = (),
                markers: Mapping[str, tuple[int, str]] = {},
                alive: Callable[[str, float], bool] = lambda hub, now: False,
                ) -> tuple[AgentEntry, ...]:
        """
        Every agent, sorted by id.

        :param detail: agent ids whose full report to include, or True for all.
        :param markers: agent id to its unacknowledged active alerts and
            their highest severity (L{loopy.hub.alerts.AlertBoard.markers}).
        :param alive: as for L{status}.
        """
        out = []
        for agent_id in sorted(self._agents):
            agent = self._agents[agent_id]
            with_report = detail is True or (detail is not False and agent_id in detail)
            out.append(AgentEntry(
                agent_id=agent_id,
                hostname=agent.hostname,
                status=self.status(agent_id, now, alive),
                hub=agent.hub,
                epoch=agent.epoch,
                seq=agent.seq,
                last_heard=agent.last_heard,
                summary=agent.summary,
                report=self._report(agent) if with_report else None,
                alerts_active=markers.get(agent_id, (0, ""))[0],
                alert_severity=markers.get(agent_id, (0, ""))[1],
            ))
        return tuple(out)
