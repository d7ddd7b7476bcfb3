"""
Test doubles shipped with Loopy (STYLE.md item 16): sample records, frames
and AMP boxes for unit tests of Loopy and of plugins.

Every value is fixed, so tests can compare whole records and exact strings.
"""

from __future__ import annotations

import struct

from twisted.protocols import amp

from loopy.model import (
    AgentEntry,
    AgentReport,
    Alert,
    AgentSummary,
    CaptureStats,
    Conversation,
    DnsQuery,
    DnsSnapshot,
    FleetView,
    HostTraffic,
    HubInfo,
    InterfaceStats,
    IpSnapshot,
    NameCount,
    ProtocolCount,
    TcpConnection,
    TcpSnapshot,
)

#: Seconds since the Unix epoch used as "now" by tests (2023-11-14).
T0 = 1_700_000_000.0


def ip_snapshot() -> IpSnapshot:
    return IpSnapshot(
        packets_in=120,
        packets_out=80,
        bytes_in=96000,
        bytes_out=12000,
        pps_in=12.0,
        pps_out=8.0,
        bps_in=76800.0,
        bps_out=9600.0,
        protocols={
            "tcp": ProtocolCount(packets=150, bytes=100000),
            "udp": ProtocolCount(packets=40, bytes=6000),
            "arp": ProtocolCount(packets=10, bytes=600),
        },
        top_talkers=(
            HostTraffic("10.0.0.2", 50, 60000, 40, 3000),
            HostTraffic("10.0.0.1", 40, 3000, 50, 60000),
        ),
        top_conversations=(Conversation("10.0.0.1", "10.0.0.2", 40, 3000, 50, 60000),),
        hosts_tracked=2,
        conversations_tracked=1,
    )


def tcp_snapshot() -> TcpSnapshot:
    return TcpSnapshot(
        syn=3,
        syn_ack=3,
        established=2,
        closed=1,
        reset=1,
        half_open=1,
        active=1,
        retransmissions=4,
        connections=(
            TcpConnection(
                src="10.0.0.1",
                sport=40000,
                dst="10.0.0.2",
                dport=443,
                state="established",
                packets_out=10,
                bytes_out=1500,
                packets_in=12,
                bytes_in=20000,
                ip_bytes_out=2020,
                ip_bytes_in=20624,
                rtt_ms=1.25,
                retransmissions=1,
                first_seen=T0 - 5,
                last_seen=T0 - 1,
            ),
        ),
        connections_tracked=3,
    )


def dns_snapshot() -> DnsSnapshot:
    return DnsSnapshot(
        queries_total=5,
        responses_total=4,
        matched=4,
        unanswered=1,
        nxdomain=1,
        qps=0.5,
        rcodes={"NOERROR": 3, "NXDOMAIN": 1},
        qtypes={"A": 4, "AAAA": 1},
        top_names=(NameCount("example.com", 3),),
        queries=(
            DnsQuery(
                ts=T0 - 2,
                client="10.0.0.1",
                sport=5353,
                server="10.0.0.53",
                dport=53,
                transport="udp",
                id=4660,
                qname="example.com",
                qtype="A",
                rcode="NOERROR",
                answers=("A 93.184.216.34",),
                latency_ms=12.5,
            ),
        ),
    )


def report(
    agent_id: str = "agent-a",
    epoch: int = 1_700_000_000_000_000,
    seq: int = 1,
    hostname: str = "host-a",
    analysers=None,
) -> AgentReport:
    """
    A full report: capture stats, the three built-in snapshots and one
    snapshot of an analyser no process knows (C{"arp"}, a plain dict).
    """
    if analysers is None:
        analysers = {
            "ip": ip_snapshot(),
            "tcp": tcp_snapshot(),
            "dns": dns_snapshot(),
            "arp": {"requests": 3, "replies": [1, 2]},
        }
    return AgentReport(
        agent_id=agent_id,
        hostname=hostname,
        epoch=epoch,
        seq=seq,
        ts=T0,
        interval=1.0,
        capture=CaptureStats(
            frames=200,
            bytes=108000,
            kernel_drops=2,
            malformed=1,
            batches=20,
            full_batches=0,
            interfaces=(InterfaceStats("eth0", 200, 108000, 2, source="ring",
                                       ring_fill=0.125),),
            drops_per_second=2.0,
            drop_ratio=0.0099,
            ring_fill=0.125,
            dissected=4,
            budgeted_out=1,
            packet_time_p50_us=3.25,
            packet_time_p99_us=12.5,
            cpu_seconds=1.5,
            cpu_percent=1.2,
            rss_bytes=61_000_000,
        ),
        analysers=analysers,
    )


def alert(agent_id: str = "agent-a", seq: int = 1, revision: int = 0,
          state: str = "active", severity: str = "warning", kind: str = "port_scan",
          epoch: int = 1_700_000_000_000_000, ts: float = T0) -> Alert:
    """
    A port-scan alert of C{agent_id}: revision C{revision} of alert C{seq}.
    """
    return Alert(
        agent_id=agent_id, epoch=epoch, seq=seq, revision=revision, ts=ts,
        updated=ts + revision, kind=kind, severity=severity, state=state,
        summary=f"192.0.2.9 SYN-scanned {20 + revision} ports on 192.0.2.1",
        src="192.0.2.9", dst="192.0.2.1",
        evidence={"technique": "syn", "ports": [22, 80, 443], "ports_count": 20 + revision},
    )


def newest_revisions(emitted, kind=None) -> list:
    """
    The newest revision of each alert in C{emitted} (an alert book's
    emitted revisions, in order), of C{kind} if given, by seq.
    """
    newest = {}
    for alert in emitted:
        if kind is None or alert.kind == kind:
            newest[alert.seq] = alert
    return [newest[seq] for seq in sorted(newest)]


class DetectorDriver:
    """
    A test case mixin driving C{self.detector} with C{self.book} (whose
    revisions go to C{self.emitted}) as the detect analyser does: evaluate
    and sweep every 0.25 s of capture time.
    """

    def check(self, now):
        self.next_check = now + 0.25
        self.detector.evaluate(now, self.book)
        self.book.sweep(now)

    def idle(self, start, seconds):
        """
        Evaluate every 0.25 s from C{start} for C{seconds}, with no packets.
        """
        for i in range(int(seconds / 0.25) + 1):
            self.check(start + i * 0.25)

    def alerts(self, kind=None):
        """
        The newest revision of each alert (of C{kind}), by seq.
        """
        return newest_revisions(self.emitted, kind)

    def only_alert(self):
        alerts = self.alerts()
        self.assertEqual(len(alerts), 1, [a.summary for a in alerts])
        return alerts[0]


def hub_info(**changes) -> HubInfo:
    values = dict(
        name="hub-a",
        endpoint="tcp:7420",
        version="0.1.0",
        started=T0 - 60,
        now=T0,
        agents_linked=1,
        uis_linked=1,
    )
    values.update(changes)
    return HubInfo(**values)


def entry(agent_id: str = "agent-a", status: str = "online", with_report=True,
          **changes) -> AgentEntry:
    values = dict(
        agent_id=agent_id,
        hostname="host-" + agent_id[-1],
        status=status,
        hub="hub-a",
        epoch=1_700_000_000_000_000,
        seq=1,
        last_heard=T0 - 0.5,
        summary=AgentSummary(pps_in=12.0, pps_out=8.0, bps_in=76800.0, bps_out=9600.0,
                             tcp_active=1, dns_qps=0.5, frames=200, kernel_drops=2,
                             malformed=1, drops_per_second=2.0, drop_ratio=0.0099,
                             cpu_percent=1.2, rss_bytes=61_000_000),
        report=report(agent_id) if with_report else None,
    )
    values.update(changes)
    return AgentEntry(**values)


def view() -> FleetView:
    return FleetView(hub=hub_info(), agents=(entry("agent-a"), entry("agent-b", "stale",
                                                                       with_report=False)))


# -- frames -------------------------------------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(src: bytes = bytes([10, 0, 0, 1]), dst: bytes = bytes([10, 0, 0, 53]),
              sport: int = 5353, dport: int = 53, payload: bytes = b"hello") -> bytes:
    """
    An Ethernet II / IPv4 / UDP frame (RFC 791, RFC 768).
    """
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, src, dst)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + header + udp


# -- AMP boxes, byte for byte -------------------------------------------------


def box_bytes(pairs) -> bytes:
    """
    Serialize C{(key, value)} pairs as one AMP box (16-bit length prefixes,
    an empty key to end), without AMP's own checks on key and value size.
    """
    out = []
    for key, value in pairs:
        out.append(struct.pack("!H", len(key)) + key)
        out.append(struct.pack("!H", len(value)) + value)
    out.append(b"\x00\x00")
    return b"".join(out)


class Ping(amp.Command):
    """
    A command with no arguments, for tests that need a box to be answered.
    """

    arguments: list = []
    response: list = []


def parse_options(options_class, *argv: str):
    """
    Parse a command line into a fresh C{options_class} instance.
    """
    options = options_class()
    options.parseOptions(list(argv))
    return options


class OptionsTestMixin:
    """
    For a SynchronousTestCase of a usage.Options class: set C{options_class}.
    """

    options_class: type

    def parse(self, *argv: str):
        return parse_options(self.options_class, *argv)

    def assertUsageError(self, argv, message=None):
        """
        Parsing C{argv} raises usage.UsageError, with C{message} if given.

        :returns: the error.
        """
        from twisted.python import usage

        error = self.assertRaises(usage.UsageError, self.parse, *argv)
        if message is not None:
            self.assertEqual(str(error), message)
        return error

