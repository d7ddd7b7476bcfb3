"""
One realistic agent report, and its wire form made cheaply for many agents
and many reports.

The report is what an agent on a busy web server sends each second: every
built-in analyser's snapshot with full top lists (20 talkers, 20
conversations, 20 names: the agents' default C{top_n}), 50 TCP connections
and 20 DNS transactions (the agents report up to 200 of each; a web server
with a few dozen clients a second shows about these), and the detect
analyser's counters.  The simulated agents all send this report; only
C{agent_id}, C{hostname}, C{epoch}, C{seq} and C{ts} change.

L{Encoder} makes the compressed JSON a L{loopy.wire.Report} carries
(L{loopy.wire.encode_record}'s format) by splicing those five fields into
JSON made once, so the simulator spends about 50 µs per report (zlib)
instead of unstructuring the record each time.
"""

from __future__ import annotations

import json
import zlib

from loopy import model as m
from loopy.wire import CHUNK_BYTES, decode_record, to_json_value

TALKERS = 20
CONNECTIONS = 50
QUERIES = 20
#: A time near now for the sample's own stamps (connections, queries).
T0 = 1_700_000_000.0
SERVER = "10.1.0.10"


def _client(i: int) -> str:
    return f"10.2.{i // 250}.{i % 250 + 1}"


def busy_report() -> m.AgentReport:
    """
    The sample report (agent id, seq and times are placeholders).
    """
    talkers = tuple(m.HostTraffic(_client(i), 900 - 40 * i, 1_200_000 - 50_000 * i,
                                700 - 30 * i, 60_000 - 2_500 * i) for i in range(TALKERS))
    ip = m.IpSnapshot(
        packets_in=48_210_377, packets_out=51_009_912,
        bytes_in=9_820_113_004, bytes_out=61_337_120_556,
        pps_in=1_830.0, pps_out=2_110.5, bps_in=3_120_448.0, bps_out=21_554_012.0,
        protocols={"tcp": m.ProtocolCount(3_811, 2_902_113), "udp": m.ProtocolCount(94, 12_880),
                   "icmp": m.ProtocolCount(6, 588), "arp": m.ProtocolCount(2, 120),
                   "icmpv6": m.ProtocolCount(3, 258), "other": m.ProtocolCount(1, 60)},
        top_talkers=(m.HostTraffic(SERVER, 20_000, 21_000_000, 18_000, 3_000_000),) + talkers,
        top_conversations=tuple(
            m.Conversation(SERVER, _client(i), 900 - 40 * i, 1_200_000 - 50_000 * i,
                         700 - 30 * i, 60_000 - 2_500 * i) for i in range(TALKERS)),
        hosts_tracked=1_412, conversations_tracked=1_388,
    )
    tcp = m.TcpSnapshot(
        syn=812_004, syn_ack=811_870, established=811_502, closed=809_990, reset=1_204,
        half_open=3, active=CONNECTIONS, retransmissions=4_410,
        connections=tuple(m.TcpConnection(
            src=_client(i), sport=40_000 + 37 * i, dst=SERVER, dport=443,
            state="established" if i % 5 else "closed",
            packets_out=12 + i, bytes_out=1_400 + 61 * i, packets_in=30 + 2 * i,
            bytes_in=38_000 + 977 * i, ip_bytes_out=2_100 + 80 * i,
            ip_bytes_in=39_600 + 1_017 * i, rtt_ms=0.4 + i / 50,
            retransmissions=i % 3, first_seen=T0 - 30 + i / 10, last_seen=T0 - i / 100)
            for i in range(CONNECTIONS)),
        connections_tracked=1_210, connections_expired=790_100,
    )
    names = [f"api{i}.example.net" for i in range(QUERIES)]
    dns = m.DnsSnapshot(
        queries_total=120_431, responses_total=120_400, matched=120_390, unanswered=41,
        nxdomain=310, servfail=2, qps=4.5,
        rcodes={"NOERROR": 120_088, "NXDOMAIN": 310, "SERVFAIL": 2},
        qtypes={"A": 70_120, "AAAA": 50_200, "PTR": 111},
        top_names=tuple(m.NameCount(n, 9_000 - 300 * i) for i, n in enumerate(names)),
        queries=tuple(m.DnsQuery(
            ts=T0 - i / 5, client=SERVER, sport=33_000 + 13 * i, server="10.1.0.53",
            dport=53, transport="udp", id=1_000 + i, qname=n, qtype="AAAA" if i % 2 else "A",
            rcode="NOERROR", answers=(f"A 192.0.2.{i + 1}",), latency_ms=0.8 + i / 10)
            for i, n in enumerate(names)),
    )
    detect = m.DetectSnapshot(
        detectors={d: {"checks": 86_400, "tracked": 40 + i, "raised": 0}
                   for i, d in enumerate(("port_scan", "syn_flood", "icmp_flood", "udp_flood",
                                          "dns_amplification", "arp", "dns_abuse",
                                          "new_listener", "new_outbound"))},
        local_addresses=2, checks=777_600)
    return m.AgentReport(
        agent_id="sample", hostname="sample", epoch=0, seq=0, ts=T0, interval=1.0,
        capture=m.CaptureStats(
            frames=99_220_289, bytes=71_157_233_560, batches=8_640_000,
            interfaces=(m.InterfaceStats("eth0", 99_220_289, 71_157_233_560, source="ring",
                                       ring_fill=0.02),),
            ring_fill=0.02, dissected=120_431, packet_time_p50_us=2.9,
            packet_time_p99_us=11.0, cpu_seconds=31_000.0, cpu_percent=3.6,
            rss_bytes=82_000_000),
        analysers={"ip": ip, "tcp": tcp, "dns": dns, "detect": detect},
    )


class Encoder:
    """
    The wire form of L{busy_report} for any agent and seq.

    :ivar json_bytes: octets of one report's JSON; C{wire_bytes}: of its
        compressed form (what one L{loopy.wire.Report} carries).
    """

    _OWN = ("agent_id", "hostname", "epoch", "seq", "ts")

    def __init__(self):
        value = to_json_value(busy_report())
        for name in self._OWN:
            del value[name]
        self._rest = json.dumps(value, separators=(",", ":"))[1:]  # without its "{"
        sample = self.encode("sim-0000", 1, 1, T0)
        check = decode_record(sample, m.AgentReport)
        assert check.agent_id == "sim-0000" and check.seq == 1, check
        self.wire_bytes = len(sample)
        self.json_bytes = len(zlib.decompress(sample))
        assert self.wire_bytes <= CHUNK_BYTES, "one report must fit one AMP value"

    def encode(self, agent_id: str, epoch: int, seq: int, ts: float) -> bytes:
        """
        The report of C{agent_id} (also its hostname), as compressed JSON.
        """
        head = (f'{{"agent_id":"{agent_id}","hostname":"{agent_id}","epoch":{epoch},'
                f'"seq":{seq},"ts":{ts!r},')
        return zlib.compress((head + self._rest).encode("utf-8"), 1)
