# -*- test-case-name: tests.test_hub_tap -*-
"""
``twistd loopy-hub``: options and the composition root of the hub.
"""

from __future__ import annotations

import socket

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.error import CannotListenError
from twisted.python import usage

from loopy import DEFAULT_HUB_PORT
from loopy.endpoints import listen_port
from loopy.errors import ConfigError
from loopy.options import (
    LoopyOptions,
    default_data_dir,
    hub_option,
    positive_float,
    positive_int,
)


class Options(LoopyOptions):
    """
    Options of ``twistd loopy-hub``.
    """

    synopsis = "[options]"
    longdesc = (
        "Accept Loopy agents and UIs over AMP, keep the newest state of every "
        "agent and push it to watching UIs; with --peer, replicate everything "
        "with the other hubs of a mesh, so a UI on any hub sees every agent."
    )

    def __init__(self):
        LoopyOptions.__init__(self)
        self["peers"] = []

    def opt_peer(self, value):
        """
        Another hub to peer with: HOST[:PORT] or a client endpoint string
        (repeat for more; peering is symmetric, so one of two hubs listing
        the other is enough).
        """
        self["peers"].append(hub_option(value, "--peer"))

    optParameters = [
        ["listen", None, f"tcp:{DEFAULT_HUB_PORT}:interface=127.0.0.1",
         "Server endpoint string for agents and UIs (e.g. tcp:7420 for every "
         "address)."],
        ["name", None, None, "This hub's name [default: host name]."],
        ["advertise", None, None,
         "How others reach this hub, shown in every hub list of the mesh: "
         "HOST[:PORT] or a client endpoint string [default: the --listen "
         "string]."],
        ["stale-after", None, 3.0,
         "Seconds without a report before a linked agent shows as stale.",
         positive_float],
        ["push-interval", None, 1.0, "Seconds between pushes to each UI.",
         positive_float],
        ["max-agents", None, 10000, "Agents this hub will track.", positive_int],
        ["max-alerts", None, 10000,
         "Alerts this hub keeps (at the bound the oldest ended alert is "
         "forgotten first).", positive_int],
        ["gossip-interval", None, 0.25,
         "Seconds between pulls from each peer hub.", positive_float],
        ["peer-timeout", None, 3.0,
         "Seconds without an answer from a peer (or a heartbeat of a hub) "
         "before it is down.", positive_float],
        ["data", None, None,
         "Directory of this hub's history (history.sqlite) [default: "
         "$XDG_DATA_HOME/loopy/hub-NAME, or ~/.local/share/loopy/hub-NAME]."],
        ["tiers", None, "1s:6h,1m:30d,1h:365d",
         "History downsampling tiers, STEP:RETENTION,… finest first "
         "(units s, m, h, d, w)."],
        ["history-top", None, 10,
         "Rows of each top list (talkers, conversations, DNS names, TCP "
         "connections) the history keeps per agent in each closed bucket of "
         "the coarser tiers.", positive_int],
    ]

    def postOptions(self):
        from twisted.internet import reactor
        from twisted.internet.endpoints import serverFromString

        try:
            serverFromString(reactor, self["listen"])
        except (ValueError, KeyError, TypeError) as e:
            raise usage.UsageError(f"bad --listen {self['listen']!r}: {e}") from None
        port = listen_port(self["listen"])
        if port is not None and not 0 <= port < 65536:
            raise usage.UsageError(f"bad --listen {self['listen']!r}: use a port 0-65535")
        self["name"] = self["name"] or socket.gethostname()
        if self["advertise"] is not None:
            self["advertise"] = hub_option(self["advertise"], "--advertise")
        self["peers"] = tuple(dict.fromkeys(self["peers"]))
        if self["peer-timeout"] <= self["gossip-interval"]:
            raise usage.UsageError("--peer-timeout must be longer than --gossip-interval")
        from loopy.hub.history import parse_tiers

        try:
            self["tiers"] = parse_tiers(self["tiers"])
        except ConfigError as e:
            raise usage.UsageError(f"bad --tiers: {e}") from None
        if self["data"] is None:
            self["data"] = str(default_data_dir() / f"hub-{self['name']}")


class ListeningService(StreamServerEndpointService):
    """
    The hub's server endpoint.  A port that cannot be bound (in use, no
    privilege) stops twistd's start-up with one line saying so, instead of
    a traceback or a hub that listens nowhere.
    """

    def __init__(self, endpoint, factory, description: str):
        StreamServerEndpointService.__init__(self, endpoint, factory)
        self.description = description
        # As twisted.application.strports does: fail start-up at once.
        self._raiseSynchronously = True

    def privilegedStartService(self):
        """
        :raises SystemExit: with the reason, when the port cannot be bound.
        """
        try:
            StreamServerEndpointService.privilegedStartService(self)
        except CannotListenError as e:
            reason = getattr(e.socketError, "strerror", None) or str(e.socketError)
            raise SystemExit(
                f"loopy-hub: cannot listen on {self.description}: {reason}") from None


def makeService(options: Options, reactor=None):
    """
    Assemble the hub: one AMP server endpoint, the peer links, the history
    and its catch-up from peers.  Opens the history store; starts nothing.

    :raises usage.UsageError: if the history directory or file cannot be
        used.
    """
    if reactor is None:
        from twisted.internet import reactor
    from twisted.application.service import MultiService
    from twisted.internet.endpoints import serverFromString

    from loopy.hub.historysync import HistoryKeeper
    from loopy.hub.sqlhistory import open_history
    from loopy.hub.server import Hub

    try:
        history = open_history(options["data"], options["name"], options["tiers"], reactor,
                               keep=options["history-top"])
    except ConfigError as e:
        raise usage.UsageError(f"--data {options['data']}: {e}") from None
    hub = Hub(
        options["name"],
        options["advertise"] or options["listen"],
        reactor,
        stale_after=options["stale-after"],
        push_interval=options["push-interval"],
        max_agents=options["max-agents"],
        max_alerts=options["max-alerts"],
        peers=options["peers"],
        gossip_interval=options["gossip-interval"],
        peer_timeout=options["peer-timeout"],
        history=history,
    )
    top = MultiService()
    # Stopped in the reverse order: the store closes after the server.
    HistoryKeeper(history, reactor).setServiceParent(top)
    server = ListeningService(serverFromString(reactor, options["listen"]), hub,
                              options["listen"])
    server.setServiceParent(top)
    hub.peers.setServiceParent(top)
    hub.syncer.setServiceParent(top)
    top.hub = hub
    return top
