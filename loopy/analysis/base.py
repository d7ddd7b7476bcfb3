# -*- test-case-name: tests.test_analysis_plugins -*-
"""
The analyser interface, bounded-table helpers and plugin discovery.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

import importlib

from attrs import frozen
from twisted.plugin import IPlugin
from zope.interface import Attribute, Interface, implementer


@frozen
class AnalyserConfig:
    """
    Bounds and knobs shared by the built-in analysers.  Defaults are sized
    for a busy server.  Measured with C{bench/hotpath.py} after a million
    distinct flows (every table full): a TCP connection costs about 650
    octets (the whole table at its 100,000 cap, 62 MiB), an IP host or
    conversation and a DNS name or pending query a few hundred, so the
    built-in analysers hold about 70 MiB of objects at the default caps
    (an agent replaying those flows from a pcap file peaks at 140 MB RSS).

    :ivar hosts_max: entries in the IP host table.
    :ivar conversations_max: entries in the IP conversation table.
    :ivar top_n: rows in each top list of a report.
    :ivar tcp_connections_max: entries in the TCP connection table.
    :ivar tcp_idle_timeout: seconds an established connection may be idle
        before it is dropped from the table (counted as expired).
    :ivar tcp_half_open_timeout: seconds a half-open connection is kept.
    :ivar tcp_linger: seconds a closed or reset connection stays in reports.
    :ivar report_connections: connections in each report, most recent first.
    :ivar dns_ports: ports whose UDP and TCP payloads are parsed as DNS.
    :ivar dns_pending_max: queries awaiting a response.
    :ivar dns_timeout: seconds before a query counts as unanswered.
    :ivar dns_names_max: entries in the query-name table.
    :ivar dns_answers_per_second: responses whose answers are dissected with
        scapy per second; the rest are counted as budgeted out.
    :ivar report_queries: DNS transactions in each report, newest first.
    :ivar detect: the detectors' settings (a
        L{loopy.detect.host.DetectSettings}), or None for the defaults.
    """

    hosts_max: int = 10000
    conversations_max: int = 10000
    top_n: int = 20
    tcp_connections_max: int = 100000
    tcp_idle_timeout: float = 300.0
    tcp_half_open_timeout: float = 30.0
    tcp_linger: float = 60.0
    report_connections: int = 200
    dns_ports: frozenset = frozenset({53})
    dns_pending_max: int = 10000
    dns_timeout: float = 5.0
    dns_names_max: int = 10000
    dns_answers_per_second: int = 2000
    report_queries: int = 200
    detect: Any = None


class IAnalyser(Interface):
    """
    Looks at packets and says what it saw.
    """

    name = Attribute("The analyser's name: its key in a report's analysers.")

    def observe(packet):
        """
        Account for one packet (a L{loopy.dissect.headers.PacketSummary}).
        Must not raise for any packet the header parser produced.
        """

    def snapshot(now, interval):
        """
        Age out state older than allowed at time C{now} (seconds since epoch)
        and return a frozen record of what was seen; rates cover the last
        C{interval} seconds.
        """


class IAnalyserFactory(Interface):
    """
    A plugin that makes an analyser.
    """

    name = Attribute("The analyser's name.")

    def build(config):
        """
        Make an L{IAnalyser} with an L{AnalyserConfig}.
        """


@implementer(IPlugin, IAnalyserFactory)
@frozen
class AnalyserPlugin:
    """
    A plugin declaration: analyser C{name} is class C{cls} of C{module},
    imported only when an agent builds it.
    """

    name: str
    module: str
    cls: str

    def build(self, config):
        module = importlib.import_module(self.module)
        return getattr(module, self.cls)(config)


def top(items: Iterable[Any], n: int, key: Callable[[Any], Any]) -> list:
    """
    The C{n} largest of C{items} by C{key}, largest first.
    """
    import heapq

    return heapq.nlargest(n, items, key=key)


def prune_half(table: dict, weight: Callable[[Any], Any]) -> int:
    """
    The policy at a bounded counting table's cap: keep the heavier half of the
    entries by C{weight(value)}, drop the rest.  Amortised O(log n) per insert.

    :returns: how many entries were dropped.
    """
    keep = len(table) // 2
    heavy = top(table.items(), keep, key=lambda kv: weight(kv[1]))
    dropped = len(table) - len(heavy)
    table.clear()
    table.update(heavy)
    return dropped


def find_analysers(config: AnalyserConfig, names: Optional[Iterable[str]] = None):
    """
    Build the analysers found as plugins.

    :param names: the analysers wanted, or None for all found.
    :returns: the analysers, in name order.
    :raises ConfigError: if a wanted name has no plugin.
    """
    from twisted.plugin import getPlugins

    from loopy import plugins
    from loopy.errors import ConfigError

    factories = {f.name: f for f in getPlugins(IAnalyserFactory, plugins)}
    wanted = sorted(factories) if names is None else list(names)
    missing = [n for n in wanted if n not in factories]
    if missing:
        raise ConfigError(
            f"no analyser plugin named {', '.join(missing)} "
            f"(found: {', '.join(sorted(factories))})"
        )
    return [factories[n].build(config) for n in wanted]
