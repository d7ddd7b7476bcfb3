# -*- test-case-name: tests.test_analysis_plugins -*-
"""
Tests for L{loopy.analysis.base}: plugin discovery and the bounded-table
helpers.
"""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from twisted.plugin import IPlugin, getPlugins
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from loopy import plugins
from loopy.analysis.base import (
    AnalyserConfig,
    IAnalyser,
    IAnalyserFactory,
    find_analysers,
    prune_half,
    top,
)
from loopy.analysis.dns import DnsAnalyser
from loopy.analysis.ip import IpAnalyser
from loopy.analysis.tcp import TcpAnalyser
from loopy.detect.host import DetectAnalyser
from loopy.dissect.headers import decode
from loopy.errors import ConfigError, LoopyError


class FindAnalysersTests(SynchronousTestCase):
    """
    L{find_analysers} finds the built-in analysers through L{twisted.plugin}.
    """

    def test_plugins(self):
        """
        The built-in analysers are declared as L{IAnalyserFactory} plugins
        in L{loopy.plugins}.
        """
        factories = {f.name: f for f in getPlugins(IAnalyserFactory, plugins)}
        self.assertEqual(sorted(factories), ["detect", "dns", "ip", "tcp"])
        for factory in factories.values():
            verifyObject(IPlugin, factory)
            verifyObject(IAnalyserFactory, factory)

    def test_all(self):
        """
        Without names, every analyser found, in name order, built with the
        configuration given.
        """
        analysers = find_analysers(AnalyserConfig())
        self.assertEqual([type(a) for a in analysers],
                         [DetectAnalyser, DnsAnalyser, IpAnalyser, TcpAnalyser])
        self.assertEqual([a.name for a in analysers], ["detect", "dns", "ip", "tcp"])
        for analyser in analysers:
            verifyObject(IAnalyser, analyser)

    def test_named(self):
        """
        With names, those analysers in the order asked.
        """
        analysers = find_analysers(AnalyserConfig(), ["tcp", "ip"])
        self.assertEqual([type(a) for a in analysers], [TcpAnalyser, IpAnalyser])

    def test_configuration(self):
        """
        The analysers are built with the configuration given: a TCP table cap
        of 1 shows in their snapshots.
        """
        (tcp,) = find_analysers(AnalyserConfig(tcp_connections_max=1), ["tcp"])
        for sport in (1001, 1002):
            frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                          / IP(src="10.0.0.1", dst="10.0.0.2")
                          / TCP(sport=sport, dport=80, flags="S"))
            tcp.observe(decode(frame, 1.0))
        snapshot = tcp.snapshot(1.0, 1.0)
        self.assertEqual((snapshot.connections_tracked, snapshot.connections_evicted),
                         (1, 1))

    def test_unknownName(self):
        """
        A name no plugin has raises L{ConfigError} naming it and the
        analysers there are.
        """
        error = self.assertRaises(ConfigError, find_analysers, AnalyserConfig(),
                                  ["ip", "http", "smtp"])
        self.assertEqual(
            str(error),
            "no analyser plugin named http, smtp (found: detect, dns, ip, tcp)",
        )
        self.assertIsInstance(error, LoopyError)

    def test_noNames(self):
        """
        An empty list of names builds nothing.
        """
        self.assertEqual(find_analysers(AnalyserConfig(), []), [])


class TableHelperTests(SynchronousTestCase):
    """
    L{top} and L{prune_half}.
    """

    def test_top(self):
        """
        The largest by key, largest first; ties keep their order.
        """
        items = [("a", 3), ("b", 9), ("c", 3), ("d", 5), ("e", 3)]
        self.assertEqual(top(items, 3, key=lambda kv: kv[1]),
                         [("b", 9), ("d", 5), ("a", 3)])
        self.assertEqual(top(items, 0, key=lambda kv: kv[1]), [])
        self.assertEqual(len(top(items, 10, key=lambda kv: kv[1])), 5)

    def test_pruneHalf(self):
        """
        The heavier half stays; the count dropped is returned.
        """
        table = {f"h{i}": [i, i * 100] for i in range(10)}
        dropped = prune_half(table, lambda v: v[1])
        self.assertEqual(dropped, 5)
        self.assertEqual(sorted(table), ["h5", "h6", "h7", "h8", "h9"])
        self.assertEqual(table["h9"], [9, 900])

    def test_pruneHalfOdd(self):
        """
        Of an odd count the smaller half stays.
        """
        table = dict.fromkeys("abcde", 1)
        table["c"] = 2
        table["e"] = 3
        self.assertEqual(prune_half(table, lambda v: v), 3)
        self.assertEqual(table, {"e": 3, "c": 2})

    def test_pruneHalfOne(self):
        """
        A table of one entry is emptied.
        """
        table = {"only": 7}
        self.assertEqual(prune_half(table, lambda v: v), 1)
        self.assertEqual(table, {})
