"""
Tests for L{loopy.detect.host}: the settings file, and the detect analyser
routing packets to detectors and checking them on time.
"""

from __future__ import annotations

from attrs import frozen
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from twisted.trial.unittest import SynchronousTestCase

from loopy.analysis.base import AnalyserConfig
from loopy.detect import host
from loopy.detect.alerts import AlertBook
from loopy.detect.base import ARP as ARP_CLASS, DNS as DNS_CLASS, ICMP as ICMP_CLASS
from loopy.detect.base import TCP as TCP_CLASS, UDP as UDP_CLASS, DetectorSettings
from loopy.detect.host import DetectAnalyser, DetectSettings, load_settings, parse_settings
from loopy.dissect.headers import decode
from loopy.errors import ConfigError
from loopy.model import DetectSnapshot

T0 = 1_700_000_000.0
MACS = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


@frozen
class ProbeSettings(DetectorSettings):
    """
    :ivar threshold: packets before the probe signals.
    """

    threshold: int = 3


class Probe:
    """
    A detector that records what it is given and signals past a count.
    """

    settings_type = ProbeSettings
    kinds = ("probe",)

    def __init__(self, settings, context, name="probe",
                 protocols=frozenset({TCP_CLASS, UDP_CLASS, ICMP_CLASS, ARP_CLASS, DNS_CLASS})):
        self.name = name
        self.protocols = protocols
        self.settings = settings
        self.context = context
        self.packets = []
        self.messages = []
        self.evaluations = []

    def observe(self, packet):
        self.packets.append(packet)

    def observe_dns(self, packet, message):
        self.messages.append(message.qname)

    def evaluate(self, now, book):
        self.evaluations.append(now)
        if len(self.packets) >= self.settings.threshold:
            book.signal("probe", "all", now, "warning", f"{len(self.packets)} packets")

    def stats(self):
        return {"packets": len(self.packets)}


class Broken(Probe):
    def observe(self, packet):
        raise RuntimeError("bad detector")

    def evaluate(self, now, book):
        raise RuntimeError("bad detector")


class Plugin:
    def __init__(self, name, cls):
        self.name = name
        self.cls = cls

    def detector_class(self):
        return self.cls


def frame(layers, ts=T0, outgoing=False):
    return decode(bytes(Ether(**MACS) / layers), ts, outgoing=outgoing)


class HostTests(SynchronousTestCase):
    def setUp(self):
        self.plugins = {"probe": Plugin("probe", Probe)}
        self.patch(host, "detector_plugins", lambda: self.plugins)

    def analyser(self, **settings):
        return DetectAnalyser(AnalyserConfig(detect=DetectSettings(gateways=(), **settings)))

    def test_routing(self):
        """
        Each packet class reaches the detector; DNS messages on the DNS
        ports are parsed once and given to observe_dns too.
        """
        analyser = self.analyser(detectors={"probe": {"threshold": 100}})
        (probe,) = analyser.detectors
        packets = [
            IP(src="192.0.2.1", dst="192.0.2.2") / TCP(dport=80, flags="S"),
            IP(src="192.0.2.1", dst="192.0.2.2") / UDP(dport=123),
            IP(src="192.0.2.1", dst="192.0.2.2") / ICMP(),
            ARP(op=1, psrc="192.0.2.1", pdst="192.0.2.2", hwsrc=MACS["src"]),
            IP(src="192.0.2.1", dst="192.0.2.53") / UDP(sport=5000, dport=53)
            / DNS(id=1, qd=DNSQR(qname="example.com")),
        ]
        for layers in packets:
            analyser.observe(frame(layers))
        self.assertEqual(len(probe.packets), 5)
        self.assertEqual(probe.messages, ["example.com"])

    def test_onlyAskedClasses(self):
        """
        A detector gets only the classes in its protocols.
        """
        class TcpOnly(Probe):
            def __init__(self, settings, context):
                Probe.__init__(self, settings, context, "tcponly", frozenset({TCP_CLASS}))

        self.plugins = {"tcponly": Plugin("tcponly", TcpOnly)}
        analyser = self.analyser()
        (probe,) = analyser.detectors
        analyser.observe(frame(IP(src="192.0.2.1", dst="192.0.2.2") / UDP(dport=53)))
        analyser.observe(frame(IP(src="192.0.2.1", dst="192.0.2.2") / TCP()))
        self.assertEqual([p.proto for p in probe.packets], [6])

    def test_checkInterval(self):
        """
        Detectors are evaluated when a packet's time passes the next check
        (every check_interval seconds), or by check() with no packet.
        """
        emitted = []
        analyser = self.analyser(check_interval=0.25)
        analyser.bind_alerts(AlertBook("web1", 1, emit=emitted.append))
        (probe,) = analyser.detectors
        tcp = IP(src="192.0.2.1", dst="192.0.2.2") / TCP()
        analyser.observe(frame(tcp, T0))
        analyser.observe(frame(tcp, T0 + 0.1))
        analyser.observe(frame(tcp, T0 + 0.2))
        self.assertEqual(probe.evaluations, [T0])
        self.assertEqual(emitted, [])
        analyser.check(T0 + 0.24)
        self.assertEqual(probe.evaluations, [T0])
        analyser.check(T0 + 0.25)
        self.assertEqual(probe.evaluations, [T0, T0 + 0.25])
        self.assertEqual([(a.agent_id, a.kind, a.summary) for a in emitted],
                         [("web1", "probe", "3 packets")])

    def test_snapshot(self):
        """
        A report's snapshot evaluates, sweeps, and gives each detector's
        stats and the book's counts.
        """
        analyser = self.analyser(quiet_after=5.0)
        analyser.bind_alerts(AlertBook("web1", 1, quiet_after=5.0))
        for n in range(3):
            analyser.observe(frame(IP(src="192.0.2.1", dst="192.0.2.2") / TCP(), T0))
        snap = analyser.snapshot(T0 + 1, 1.0)
        self.assertIsInstance(snap, DetectSnapshot)
        self.assertEqual(snap.detectors, {"probe": {"packets": 3}})
        self.assertEqual((snap.alerts_open, snap.alerts_raised), (1, 1))

    def test_learnsLocal(self):
        """
        Sources of packets this host sent are learned as local.
        """
        analyser = self.analyser()
        analyser.observe(frame(IP(src="198.51.100.7", dst="192.0.2.2") / TCP(), outgoing=True))
        context = analyser.context
        self.assertTrue(context.is_local(bytes([198, 51, 100, 7])))
        self.assertFalse(context.is_local(bytes([192, 0, 2, 2])))
        self.assertTrue(context.is_local(bytes([127, 0, 0, 9])))

    def test_brokenDetector(self):
        """
        A detector that raises is counted and logged; others still run.
        """
        self.plugins = {"a": Plugin("a", Broken), "probe": Plugin("probe", Probe)}
        analyser = self.analyser()
        broken, probe = analyser.detectors
        analyser.observe(frame(IP(src="192.0.2.1", dst="192.0.2.2") / TCP()))
        analyser.snapshot(T0 + 1, 1.0)
        # One failed observe, two failed evaluations (first packet, report).
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 3)
        self.assertEqual(analyser.errors, 3)
        self.assertEqual((len(probe.packets), probe.evaluations), (1, [T0, T0 + 1]))

    def test_disabled(self):
        analyser = self.analyser(detectors={"probe": {"enabled": False}})
        self.assertEqual(analyser.detectors, [])


class SettingsTests(SynchronousTestCase):
    def setUp(self):
        self.patch(host, "detector_plugins", lambda: {"probe": Plugin("probe", Probe)})

    def test_parse(self):
        settings = parse_settings(
            '[detect]\ncheck_interval = 0.5\nallow = ["192.0.2.10", "2001:db8::/32"]\n'
            '[probe]\nthreshold = 7\nallow = ["198.51.100.0/24"]\n')
        self.assertEqual((settings.check_interval, settings.allow),
                         (0.5, ("192.0.2.10", "2001:db8::/32")))
        analyser = DetectAnalyser(AnalyserConfig(detect=settings))
        (probe,) = analyser.detectors
        self.assertEqual(probe.settings, ProbeSettings(threshold=7, allow=("198.51.100.0/24",)))
        self.assertIn(bytes([192, 0, 2, 10]), analyser.context.allow)

    def assertBad(self, text, message):
        with self.assertRaises(ConfigError) as caught:
            parse_settings(text, "agent.toml")
        self.assertIn(message, str(caught.exception))

    def test_errors(self):
        self.assertBad("[detect\n", "agent.toml: not TOML")
        self.assertBad("[detect]\ncheck_intervl = 1\n", "check_intervl")
        self.assertBad('[detect]\ncheck_interval = "x"\n', "check_interval")
        self.assertBad("[probe]\nthreshhold = 3\n", "threshhold")
        self.assertBad("[portscan]\nports = 3\n", "no detector named portscan")
        self.assertBad('[detect]\nallow = ["10.0.0.300"]\n', "allow")
        self.assertBad('[probe]\nallow = ["nonsense"]\n', "[probe] allow")
        self.assertBad("probe = 3\n", "probe must be a table")

    def test_load(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("[probe]\nthreshold = 9\n")
        self.assertEqual(load_settings(path).detectors, {"probe": {"threshold": 9}})
        self.assertRaises(ConfigError, load_settings, path + ".missing")


@frozen
class CheckedSettings(DetectorSettings):
    """
    :ivar window: seconds, above 0.
    """

    window: float = 1.0

    def __attrs_post_init__(self):
        if not self.window > 0:
            raise ValueError(f"'window' must be > 0: {self.window}")


class Checked(Probe):
    settings_type = CheckedSettings


class ValidatorMessageTests(SynchronousTestCase):
    def test_message(self):
        """
        A detector's own check of a value is quoted in the error, with the
        table it is in.
        """
        self.patch(host, "detector_plugins", lambda: {"probe": Plugin("probe", Checked)})
        with self.assertRaises(ConfigError) as caught:
            parse_settings("[probe]\nwindow = 0\n")
        self.assertEqual(str(caught.exception),
                         "bad settings: invalid value: 'window' must be > 0: 0.0 @ [probe]")
