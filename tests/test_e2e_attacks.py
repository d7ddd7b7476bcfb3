"""
End to end on real attacks: each kind of attack, made with a real tool
(nmap, hping3, ping -f, arpspoof, arping, dig, curl, and scapy for spoofed
DNS responses) from an attacker namespace against a victim namespace that
runs a real hub and agent (tests/netns.py, tests/support/attacks.py), must
raise the right alert, and the alert must reach a UI on the hub
(``loopy-ui --json``) with its kind, severity, ``src``/``dst`` and key
evidence; where its condition ends within seconds, the test also waits for
the alert to go ``over``.  Ordinary traffic must raise no alert.

The detectors run with their default thresholds; only the novelty
detectors' learning period (5 s) and the time an alert takes to end after
its condition stops (``quiet_after``, 2 s) are shortened
(L{tests.netns.detect_config}).

One lab (namespaces, services, hub and agent) serves all the attack tests,
and another the benign one; each is made for its first test and removed
when the process exits.  Every attack comes from fresh addresses, so
alerts never merge across tests.
"""

from __future__ import annotations

import atexit
import os
import time
from pathlib import Path

from twisted.trial import unittest

from tests import netns
from tests.support import attacks

#: Seconds an alert may take to appear: the goal is one (bench/detect
#: measures it); this leaves room for a loaded machine and for each
#: ``loopy-ui`` run's own start.
ALERT_TIMEOUT = 15.0
#: Seconds for an alert to go over once its attack stopped.
OVER_TIMEOUT = 20.0

_labs: dict[str, object] = {}


def _shared_lab(case: LabCase) -> tuple[netns.Lab, netns.Loopy]:
    """
    The lab of C{case}'s class (by its C{lab_name}): made on first use (a
    failure to make it is remembered and raised again for the other tests
    that share it), removed when the process exits.
    """
    key = case.lab_name
    if key not in _labs:
        try:
            directory = Path(case.mktemp())
            directory.mkdir(parents=True)
            lab, loopy = attacks.prepared_lab(directory)
            atexit.register(lab.destroy)
            _labs[key] = (lab, loopy)
        except Exception as e:
            _labs[key] = e
    made = _labs[key]
    if isinstance(made, Exception):
        raise AssertionError(f"the lab could not be made: {made}") from made
    return made


def _require() -> None:
    if os.geteuid() != 0:
        raise unittest.SkipTest("attack tests need root (network namespaces, raw sockets)")
    missing = attacks.tool_missing()
    if missing:
        raise unittest.SkipTest(
            f"{missing} is missing; `make test` installs the attack tools (TEST_DEBS)")


class LabCase(unittest.SynchronousTestCase):
    """
    Runs attacks in a shared lab and finds their alerts.

    :cvar lab_name: the classes with the same name share one lab.
    """

    lab_name = "attacks"

    def setUp(self):
        _require()
        self.lab, self.loopy = _shared_lab(self)

    def raise_alert(self, attack: attacks.Attack, timeout: float = ALERT_TIMEOUT) -> dict:
        """
        Start C{attack}, wait until ``loopy-ui --json`` shows its alert, stop
        the attack, and return the alert (checked against what the attack
        must raise).
        """
        attack.start(self.lab)
        try:
            def shown():
                return [a for a in netns.alerts(self.loopy.fleet()) if attack.matches(a)]

            try:
                found = netns.poll(shown, timeout, what=f"a {attack.kind} alert")
            except AssertionError as e:
                raise AssertionError(self.missed(attack, e)) from None
        finally:
            attack.stop(self.lab)
        alert = found[-1]  # the oldest: the one the attack raised first
        self.assertEqual(attack.mismatches(alert), [], alert)
        self.assertEqual(alert["agent_id"], netns.AGENT_ID)
        self.assertEqual(alert["condition"], "active")
        self.assertEqual(len(found), 1, f"more than one alert for one attack: {found}")
        self.assertTrue(alert["summary"])
        self.assertTrue(alert["evidence"].get("samples"), alert)
        return alert

    def missed(self, attack: attacks.Attack, error: Exception) -> str:
        """
        What to say when an attack raised no alert: the detector's stats,
        the alerts shown, and the tool's output.
        """
        doc = self.loopy.fleet()
        stats = netns.detect_stats(doc)
        return (f"{attack.name} raised no {attack.kind} alert from {attack.src} to "
                f"{attack.dst}: {error}\ndetector {attack.detector}: "
                f"{stats.get('detectors', {}).get(attack.detector)}\n"
                f"alerts: {[(a['kind'], a['src'], a['dst']) for a in netns.alerts(doc)]}\n"
                f"tool output: {attack.output(self.lab)}")

    def assert_over(self, alert: dict, timeout: float = OVER_TIMEOUT) -> dict:
        """
        Wait until C{alert} (the same ``(agent_id, epoch, seq)``) is over,
        still one alert with a later revision.
        """
        key = (alert["agent_id"], alert["epoch"], alert["seq"])

        def ended():
            for a in netns.alerts(self.loopy.fleet()):
                if (a["agent_id"], a["epoch"], a["seq"]) == key and a["condition"] == "over":
                    return a
            return None

        over = netns.poll(ended, timeout, what=f"{alert['kind']} alert {key} over")
        self.assertEqual(over["state"], "over")
        self.assertGreater(over["revision"], alert["revision"])
        self.assertEqual((over["kind"], over["src"], over["dst"], over["ts"]),
                         (alert["kind"], alert["src"], alert["dst"], alert["ts"]))
        return over


class PortScanTests(LabCase):
    """
    nmap's scans, each from its own source address.
    """

    def test_syn_scan(self):
        """
        ``nmap -sS`` of 100 ports: a critical port scan (100 ports is the
        critical threshold) naming the technique, every port tried and the
        open one (the victim's web server); over once the window has passed.
        """
        alert = self.raise_alert(attacks.port_scan(self.lab, "syn"))
        self.assertEqual(alert["severity"], "critical")
        evidence = alert["evidence"]
        self.assertEqual(evidence["ports_count"], 100)
        self.assertEqual(evidence["ports"][:3], [1, 2, 3])
        self.assertEqual(evidence["open"], [f"{self.lab.victim.address}:80"])
        self.assertIn("SYN", alert["summary"])
        self.assert_over(alert)

    def test_connect_scan(self):
        """
        ``nmap -sT`` (full connections, torn down at once) of 100 ports.
        """
        alert = self.raise_alert(attacks.port_scan(self.lab, "connect"))
        self.assertEqual(alert["evidence"]["ports_count"], 100)

    def test_fin_null_xmas_scans(self):
        """
        ``nmap -sF``, ``-sN`` and ``-sX`` of 20 ports: each its own alert,
        named by its technique.
        """
        for technique in ("fin", "null", "xmas"):
            alert = self.raise_alert(attacks.port_scan(self.lab, technique))
            self.assertEqual(alert["evidence"]["outcomes"], {"stealth": 20})
            self.assertEqual(alert["severity"], "warning")

    def test_udp_scan(self):
        """
        ``nmap -sU`` of 20 ports: the victim rate-limits its ICMP port
        unreachables, so most probes fail unanswered.
        """
        alert = self.raise_alert(attacks.port_scan(self.lab, "udp"))
        self.assertEqual(alert["evidence"]["ports_count"], 20)

    def test_horizontal_scan(self):
        """
        ``nmap -sS -p 23`` of 40 addresses: one port on many hosts.
        """
        alert = self.raise_alert(attacks.horizontal_scan(self.lab))
        self.assertEqual(alert["evidence"]["horizontal"]["port"], 23)
        self.assertEqual(alert["evidence"]["ports_count"], 1)

    def test_ipv6_scan(self):
        """
        ``nmap -6 -sS`` of 100 ports over IPv6.
        """
        alert = self.raise_alert(attacks.port_scan(self.lab, "syn", family=6))
        self.assertEqual(alert["evidence"]["ports_count"], 100)


class FloodTests(LabCase):
    """
    Floods, each at a fresh target address; each alert goes over once the
    flood stops.
    """

    def test_syn_flood_from_one_source(self):
        """
        hping3 SYNs from one address: the service answers SYN-ACK and no
        handshake completes.
        """
        alert = self.raise_alert(attacks.syn_flood(self.lab))
        evidence = alert["evidence"]
        self.assertGreaterEqual(evidence["syn_per_second"], 200)
        self.assertLess(evidence["completion_ratio"], 0.5)
        self.assertEqual(evidence["top_sources"][0]["src"], alert["src"])
        self.assert_over(alert)

    def test_syn_flood_from_spoofed_sources(self):
        """
        ``hping3 --rand-source``: no single source, many likely spoofed.
        """
        alert = self.raise_alert(attacks.syn_flood(self.lab, spoofed=True))
        self.assertGreaterEqual(alert["evidence"]["sources_count"], 100)
        self.assert_over(alert)

    def test_icmp_flood(self):
        """
        ``ping -f``.
        """
        alert = self.raise_alert(attacks.icmp_flood(self.lab))
        self.assertGreaterEqual(alert["evidence"]["packets_per_second"], 500)
        self.assert_over(alert)

    def test_udp_flood(self):
        """
        ``hping3 --udp`` at one closed port.
        """
        alert = self.raise_alert(attacks.udp_flood(self.lab))
        evidence = alert["evidence"]
        self.assertGreaterEqual(evidence["packets_per_second"], 2000)
        self.assertEqual(evidence["replies_per_second"], 0)
        self.assert_over(alert)

    def test_dns_amplification(self):
        """
        Large spoofed DNS responses from 4 reflectors to an address that
        never asked.
        """
        alert = self.raise_alert(attacks.dns_amplification(self.lab))
        evidence = alert["evidence"]
        self.assertGreaterEqual(evidence["mean_response_octets"], 1000)
        self.assertEqual(set(evidence["qtypes"]), {"ANY"})
        self.assert_over(alert)


class ArpTests(LabCase):
    """
    ARP poisoning of the victim's gateway entry, and gratuitous ARP storms.
    """

    def test_arpspoof_of_the_gateway(self):
        """
        ``arpspoof -t VICTIM GATEWAY``: the gateway's address moves to the
        attacker's MAC while the gateway still answers: critical.
        """
        alert = self.raise_alert(attacks.arp_spoof(self.lab))
        self.assertIn(self.lab.attacker.mac, alert["evidence"]["macs"])
        self.assertIn(self.lab.gateway.mac, alert["evidence"]["macs"])

    def test_gratuitous_arp_storm(self):
        """
        40 ``arping -U`` at once: about 40 gratuitous ARPs a second from
        one MAC; over once they stop.
        """
        alert = self.raise_alert(attacks.arp_storm(self.lab))
        self.assertGreaterEqual(alert["evidence"]["gratuitous"], 40)
        self.assert_over(alert)


class DnsAbuseTests(LabCase):
    """
    DNS tunnels and NXDOMAIN storms from the victim (the compromised host)
    to the attacker's DNS server.
    """

    def test_dns_tunnel(self):
        """
        80 TXT queries for long random labels under one domain.
        """
        alert = self.raise_alert(attacks.dns_tunnel(self.lab))
        evidence = alert["evidence"]
        self.assertGreaterEqual(evidence["unique_subdomains"], 50)
        self.assertEqual(evidence["qtypes"], {"TXT": evidence["queries"]})

    def test_nxdomain_storm(self):
        """
        80 random names under 40 random domains, all NXDOMAIN.
        """
        alert = self.raise_alert(attacks.dns_nxdomain(self.lab))
        evidence = alert["evidence"]
        self.assertGreaterEqual(evidence["nxdomains"], 50)
        self.assertGreaterEqual(evidence["distinct_domains"], 20)


class NoveltyTests(LabCase):
    """
    A new listener and a new outbound port, after the learning period.
    """

    def test_new_listener(self):
        """
        A web server started on the victim on a new port, and a client.
        """
        alert = self.raise_alert(attacks.new_listener(self.lab))
        self.assertEqual(alert["evidence"]["first_client"], alert["src"])
        self.assert_over(alert)

    def test_new_outbound(self):
        """
        The victim fetching a page from a port it never used.
        """
        alert = self.raise_alert(attacks.new_outbound(self.lab))
        self.assertEqual(alert["evidence"]["first_destination"], alert["dst"])
        self.assert_over(alert)


class BenignTrafficTests(LabCase):
    """
    Ordinary traffic, in a lab of its own (no attack ever touched it).
    """

    lab_name = "benign"

    def test_ordinary_traffic_raises_no_alert(self):
        """
        Web pages both ways, DNS lookups answered (and one NXDOMAIN), NTP
        and pings raise no alert, also once every windowed detector has
        judged them.
        """
        before = netns.detect_stats(self.loopy.fleet())
        for _ in range(3):
            attacks.benign_round(self.lab, web=20, names=8)
        end = time.time()

        # Every flood window (2 s) and probe timeout (1 s) that saw the
        # traffic has been judged once the agent reports from 3 s later.
        def judged():
            doc = self.loopy.fleet()
            entry = netns.agent(doc)
            return doc if entry and entry.get("ts", 0) > end + 3 else None

        doc = netns.poll(judged, 15, what="a report made after the traffic was judged")
        stats = netns.detect_stats(doc)
        self.assertEqual(netns.alerts(doc), [])
        self.assertEqual(stats["alerts_raised"], 0, stats)
        self.assertEqual(stats["errors"], 0)
        self.assertGreater(stats["checks"], before["checks"])
