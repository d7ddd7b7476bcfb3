# -*- test-case-name: tests.test_mesh_hubs -*-
"""
A hub's links to the other hubs of its mesh: dialling the configured peers
(C{--peer}) with backoff, the pulls of anti-entropy over every live link
(L{loopy.hub.mesh}), and the hub's heartbeat.

Peering is symmetric: the hub that dials says L{PeerHello}, and from then
on either hub pulls from the other over that one connection.  Each hub
pulls from its linked peers one after the other (each round starting one
peer further on), one pull in flight, every gossip interval; a pull whose
answer says there is more is followed by the next at once.  Pulling in turn means an entry that reached this hub from
one peer is in the digest sent to the next, so a full mesh does not carry
each entry to a hub once per peer.

A pull unanswered for the peer timeout means the link is dead (a cut
link sends no FIN): the connection is aborted, and redialled if it is one
this hub dials.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.endpoints import clientFromString
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from loopy import __version__
from loopy.model import DOWN, LINKED, REACHABLE, SELF, HubBeat, HubState
from loopy.wire import Digest, GossipPull, PeerHello

if TYPE_CHECKING:
    from loopy.hub.server import Hub, HubProtocol

log = Logger()

#: Redial delays: 0.5 s × 1.5^attempts, at most 5 s, plus up to 1 s of jitter.
DIAL_POLICY = backoffPolicy(initialDelay=0.5, maxDelay=5.0, factor=1.5)
#: Most hubs a hub keeps heartbeats of.
MAX_HUBS = 256


class PeerLinks(Service):
    """
    Dials C{endpoints}, keeps the live peer links (dialled or accepted) by
    peer name, pulls from them, and writes this hub's heartbeat.

    :ivar pulls: pulls answered.
    :ivar pulls_failed: pulls that failed or timed out.
    """

    def __init__(self, hub: "Hub", endpoints: tuple[str, ...], reactor,
                 gossip_interval: float = 0.25, peer_timeout: float = 3.0):
        self.hub = hub
        self.reactor = reactor
        self.gossip_interval = gossip_interval
        self.peer_timeout = peer_timeout
        self.links: dict[str, list["HubProtocol"]] = {}
        #: Peer name to this hub's clock when its newest heartbeat arrived.
        self.heard: dict[str, float] = {}
        self.beats: dict[str, HubBeat] = {}
        self.pulls = self.pulls_failed = 0
        self._beat = 0
        self._rounds = 0
        self._round: Optional[Deferred] = None
        self._dialers = [self._dialer(endpoint) for endpoint in endpoints]
        self._gossip = LoopingCall(self.round)
        self._gossip.clock = reactor
        self._heartbeat = LoopingCall(self.heartbeat)
        self._heartbeat.clock = reactor

    def _dialer(self, endpoint: str) -> ClientService:
        from loopy.hub.server import HubProtocol

        def build():
            proto = HubProtocol(self.hub)
            proto.dialled = endpoint
            return proto

        return ClientService(clientFromString(self.reactor, endpoint),
                             Factory.forProtocol(build), retryPolicy=DIAL_POLICY,
                             clock=self.reactor)

    def startService(self):
        Service.startService(self)
        for dialer in self._dialers:
            dialer.startService()
        self._heartbeat.start(min(1.0, self.peer_timeout / 3), now=True)
        self._gossip.start(self.gossip_interval, now=False)

    def stopService(self):
        Service.stopService(self)
        for loop in (self._gossip, self._heartbeat):
            if loop.running:
                loop.stop()
        return Deferred.fromCoroutine(self._stop_dialers())

    async def _stop_dialers(self):
        for dialer in self._dialers:
            await dialer.stopService()

    @property
    def linked(self) -> list[str]:
        """
        Names of the peers with a live link, sorted.
        """
        return sorted(name for name, protos in self.links.items() if protos)

    def dialled(self, proto: "HubProtocol") -> None:
        """
        A connection this hub dialled is up: introduce this hub.
        """
        d = proto.callRemote(PeerHello, name=self.hub.name, epoch=self.hub.epoch,
                             endpoint=self.hub.endpoint, version=__version__)

        def accepted(answer):
            if answer["name"] == self.hub.name:
                log.error("peer {endpoint} is this hub itself (or another hub named "
                          "{name}); not peering", endpoint=proto.dialled, name=answer["name"])
                proto.transport.loseConnection()
                return
            self.attach(proto, answer["name"], answer["endpoint"])

        def refused(failure):
            log.warn("peer {endpoint} refused this hub: {error}",
                     endpoint=proto.dialled, error=failure.getErrorMessage())
            if proto.transport is not None:
                proto.transport.loseConnection()

        d.addCallbacks(accepted, refused)

    def attach(self, proto: "HubProtocol", name: str, endpoint: str) -> None:
        """
        A peer link to hub C{name} is up (its hello said or answered so).
        """
        proto.peer_name = name
        first = not self.links.get(name)
        self.links.setdefault(name, []).append(proto)
        if first:
            log.info("peer hub {name} ({endpoint}) linked", name=name, endpoint=endpoint)
            self.hub.syncer.peer_linked(name)

    def detach(self, proto: "HubProtocol") -> None:
        """
        A peer link closed.
        """
        protos = self.links.get(proto.peer_name, [])
        if proto in protos:
            protos.remove(proto)
            if not protos:
                log.warn("peer hub {name} unlinked", name=proto.peer_name)

    def heartbeat(self) -> None:
        """
        Write this hub's heartbeat entry.
        """
        self._beat += 1
        self.hub.write("hub", HubBeat(
            name=self.hub.name, endpoint=self.hub.endpoint, epoch=self.hub.epoch,
            started=self.hub.started, beat=self._beat, peers=tuple(self.linked),
            agents_linked=self.hub.agents_linked))

    def beat_applied(self, beat: HubBeat, now: float) -> None:
        """
        A heartbeat newer than the one held arrived (or was written); the
        store bounds how many hubs there are (L{MAX_HUBS}).
        """
        self.beats[beat.name] = beat
        self.heard[beat.name] = now

    def alive(self, name: str, now: float) -> bool:
        """
        Whether hub C{name} is this hub or was heard from within the peer
        timeout.
        """
        if name == self.hub.name:
            return True
        heard = self.heard.get(name)
        return heard is not None and now - heard <= self.peer_timeout

    def states(self, now: float) -> tuple[HubState, ...]:
        """
        Every hub known, this one first, then by name.
        """
        linked = set(self.linked)
        out = []
        for name in sorted(self.beats, key=lambda n: (n != self.hub.name, n)):
            beat = self.beats[name]
            if name == self.hub.name:
                state = SELF
            elif name in linked:
                state = LINKED
            elif self.alive(name, now):
                state = REACHABLE
            else:
                state = DOWN
            out.append(HubState(name=name, endpoint=beat.endpoint, state=state,
                                last_heard=self.heard.get(name), epoch=beat.epoch,
                                agents_linked=beat.agents_linked, peers=beat.peers))
        return tuple(out)

    def round(self) -> Deferred:
        """
        Pull from every linked peer in turn.  The gossip loop waits for
        the returned Deferred, so rounds never overlap.
        """
        return Deferred.fromCoroutine(self._round_of_pulls())

    async def _round_of_pulls(self):
        # Each round starts one peer further on, so no peer serves every
        # hub's first (largest) pull of each round.
        names = self.linked
        self._rounds += 1
        start = self._rounds % len(names) if names else 0
        for name in names[start:] + names[:start]:
            more = True
            while more and self.links.get(name):
                more = await self._pull(self.links[name][0])

    def _pull(self, proto: "HubProtocol") -> Deferred:
        """
        One pull from C{proto}'s peer.

        :returns: a Deferred firing with whether the peer has more.
        """
        d = proto.callRemote(GossipPull, digest=Digest(self.hub.mesh.digest()))
        d.addTimeout(self.peer_timeout, self.reactor)

        def answered(answer):
            self.pulls += 1
            self.hub.replicate(answer["batch"])
            return answer["batch"].more

        def failed(failure):
            self.pulls_failed += 1
            if failure.check(TimeoutError):
                log.warn("peer hub {name} did not answer a pull within {timeout} s; "
                         "dropping the link", name=proto.peer_name, timeout=self.peer_timeout)
            else:
                log.warn("pull from peer hub {name} failed: {error}", name=proto.peer_name,
                         error=failure.getErrorMessage())
            if proto.transport is not None:
                proto.transport.abortConnection()
            return False

        return d.addCallbacks(answered, failed)
