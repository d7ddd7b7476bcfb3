"""
A mesh of real L{Hub}s in one process for deterministic tests: peer links
and agent links are AMP over L{twisted.test.iosim}, and every hub shares
one L{task.Clock}.  Links can be cut (bytes stop moving, as when a cable
is pulled: no FIN), healed (a new connection, as the dialler would make),
and hubs restarted (a new Hub with a new epoch, its state gone).
"""

from __future__ import annotations

import os
from typing import Optional

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.test.iosim import FakeTransport, connect

from attrs import evolve

from loopy import __version__, testing
from loopy.hub import sqlhistory
from loopy.hub.history import parse_tiers
from loopy.hub.server import Hub, HubProtocol
from loopy.wire import AgentHello, BoundedAMP, Report, SendAlert

EPOCH = 1_700_000_000_000_000
#: Seconds of mesh time per lab step.
STEP = 0.05


class Link:
    """
    One iosim connection: C{client} dialled C{server}.
    """

    def __init__(self, client, server, clock: Clock):
        self.client, self.server = client, server
        self.cut = False
        self.pump = connect(server, FakeTransport(server, True),
                            client, FakeTransport(client, False),
                            greet=False, clock=clock)

    def flush(self) -> None:
        if not self.cut:
            self.pump.flush()
            return
        # No bytes cross a cut link, but a side that aborts its end (after
        # its own timeout) sees it closed at once, as with TCP.
        for io in (self.pump.clientIO, self.pump.serverIO):
            if io.disconnecting and not io.disconnected:
                io.disconnected = True
                io.reportDisconnect()

    @property
    def closed(self) -> bool:
        return self.pump.clientIO.disconnected and self.pump.serverIO.disconnected

    def close(self) -> None:
        self.cut = False
        for proto in (self.client, self.server):
            if proto.transport is not None and not proto.transport.disconnected:
                proto.transport.loseConnection()
        self.pump.flush()


class Agent(BoundedAMP):
    """
    A scripted agent: says hello to a hub and sends reports and alerts.
    """

    def __init__(self, agent_id: str, epoch: int = EPOCH):
        BoundedAMP.__init__(self)
        self.agent_id, self.epoch = agent_id, epoch
        self.links = 0
        self.seq = 0

    def hello(self) -> Deferred:
        self.links += 1
        return self.callRemote(AgentHello, agent_id=self.agent_id, hostname=self.agent_id,
                               epoch=self.epoch, version=__version__, link=self.links)

    def report(self, ts: float) -> Deferred:
        self.seq += 1
        report = testing.report(agent_id=self.agent_id, epoch=self.epoch, seq=self.seq,
                                hostname=self.agent_id)
        return self.callRemote(Report, report=evolve(report, ts=ts))

    def alert(self, seq: int, revision: int = 0, **changes) -> Deferred:
        alert = testing.alert(agent_id=self.agent_id, seq=seq, revision=revision)
        return self.callRemote(SendAlert, alert=evolve(alert, epoch=self.epoch, **changes))


class MeshLab:
    """
    Hubs by name, their peer links, and agents linked to them.
    """

    def __init__(self, names, gossip_interval: float = 0.25, peer_timeout: float = 3.0,
                 history: Optional[str] = None):
        """
        :param history: a directory: each hub keeps its history in a real
            SQLite file under it (``DIR/NAME``, kept across restarts), with
            transactions run at once (L{sqlhistory.open_sync}), and runs its
            history catch-up from peers.
        """
        self.history = history
        self.clock = Clock()
        self.clock.advance(testing.T0)
        self.gossip_interval, self.peer_timeout = gossip_interval, peer_timeout
        self.hubs: dict[str, Hub] = {}
        self.links: list[Link] = []
        self.agents: dict[str, tuple[Agent, Link]] = {}
        self.restarts = 0
        for name in names:
            self.start_hub(name)

    def start_hub(self, name: str) -> Hub:
        history = None
        if self.history is not None:
            history = sqlhistory.open_sync(os.path.join(self.history, name), name,
                                           parse_tiers("1s:1h,1m:1d"), self.clock)
        hub = Hub(name, f"tcp:{name}:7420", self.clock, stale_after=3.0,
                  gossip_interval=self.gossip_interval, peer_timeout=self.peer_timeout,
                  epoch=EPOCH + int(self.clock.seconds() * 1000) + self.restarts,
                  history=history)
        self.restarts += 1
        hub.doStart()
        hub.peers.startService()
        if history is not None:
            hub.syncer.startService()
        self.hubs[name] = hub
        return hub

    def stop_hub(self, name: str) -> None:
        """
        The hub dies: its links close at once (the kernel sends FIN for a
        killed process) and its loops stop.
        """
        hub = self.hubs.pop(name)
        for link in list(self.links):
            if hub in (link.client.hub, link.server.hub):
                self._drop(link)
        for proto, link in self.agents.values():
            if link.server.hub is hub:
                link.close()
        hub.peers.stopService()
        hub.doStop()
        if hub.history is not None:
            hub.syncer.stopService()
            hub.history.close()

    def _drop(self, link: Link) -> None:
        link.close()
        self.links.remove(link)

    def peer(self, a: str, b: str) -> Link:
        """
        Hub C{a} dials hub C{b}.
        """
        client = HubProtocol(self.hubs[a])
        client.dialled = f"tcp:{b}:7420"
        server = self.hubs[b].buildProtocol(None)
        link = Link(client, server, self.clock)
        self.links.append(link)
        link.flush()
        return link

    def peers(self, pairs) -> None:
        for a, b in pairs:
            self.peer(a, b)

    def cut(self, a: str, b: str) -> list[Link]:
        """
        Stop moving bytes on every link between C{a} and C{b}.
        """
        out = [link for link in self.links if {link.client.hub.name, link.server.hub.name}
               == {a, b}]
        for link in out:
            link.cut = True
        return out

    def agent(self, agent_id: str, hub: str, epoch: int = EPOCH) -> Agent:
        proto = Agent(agent_id, epoch)
        link = Link(proto, self.hubs[hub].buildProtocol(None), self.clock)
        self.agents[agent_id] = (proto, link)
        proto.hello()
        link.flush()
        return proto

    def move_agent(self, agent_id: str, hub: str) -> Agent:
        """
        The agent's link is gone (its hub died); it links to C{hub}.
        """
        old_proto, old = self.agents[agent_id]
        old.close()
        proto = Agent(agent_id, old_proto.epoch)
        proto.links, proto.seq = old_proto.links, old_proto.seq
        link = Link(proto, self.hubs[hub].buildProtocol(None), self.clock)
        self.agents[agent_id] = (proto, link)
        proto.hello()
        link.flush()
        return proto

    def run(self, seconds: float, report_every: float = 1.0) -> None:
        """
        Move time on by C{seconds} in small steps, every agent reporting
        every C{report_every} seconds from the first step (0: none), and
        every live link moving its bytes.
        """
        steps = round(seconds / STEP)
        per_report = round(report_every / STEP)
        for step in range(1, steps + 1):
            self.clock.advance(STEP)
            if per_report and (step - 1) % per_report == 0:
                for proto, link in self.agents.values():
                    if proto.transport is not None and not link.cut \
                            and not proto.transport.disconnected:
                        proto.report(self.clock.seconds())
            self.flush()

    def flush(self) -> None:
        for link in list(self.links):
            link.flush()
            if link.closed:
                self.links.remove(link)
        for proto, link in self.agents.values():
            link.flush()

    def views(self):
        """
        Hub name to its fleet view.
        """
        return {name: hub.view(detail=True) for name, hub in self.hubs.items()}

    def stop(self) -> None:
        for name in list(self.hubs):
            self.stop_hub(name)
        for proto, link in self.agents.values():
            link.close()

