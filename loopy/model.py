# -*- test-case-name: tests.test_model -*-
"""
Frozen records shared by agent, hub and UI.

Everything that crosses a boundary (analyser to report, agent to hub, hub to
UI) is one of these.  Units are in the names or the comments: ``bytes_*`` are
octets, ``*_ms`` milliseconds, ``ts`` seconds since the Unix epoch (float),
``pps`` packets per second, ``bps`` bits per second.

Counters named in the past tense or ``*_total`` are cumulative since the agent
started (its ``epoch``); rates are over the report's ``interval``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from attrs import field, frozen
from attrs.validators import ge, instance_of


def _nonneg():
    return [instance_of(int), ge(0)]


@frozen
class InterfaceStats:
    """
    Counters of one capture socket.

    :ivar name: the interface name (``eth0``, ``lo``).
    :ivar frames: frames read from the kernel.
    :ivar bytes: octets of those frames as captured (link header included).
    :ivar kernel_drops: frames the kernel dropped because the socket's receive
        queue or ring was full (``tp_drops`` of ``PACKET_STATISTICS``,
        packet(7)).
    :ivar truncated: frames longer than the capture kept (snaplen, or a
        ring block), counted and analysed as far as kept.
    :ivar source: how frames were read: ``ring`` (a TPACKET_V3 ring),
        ``socket`` (batched reads) or ``pcap`` (a capture file).
    :ivar ring_fill: the ring's peak fill since the previous report, the
        fraction (0 to 1) of its blocks waiting for the agent; 0.0 for other
        sources.
    :ivar ring_freezes: times the kernel found the ring full
        (``tp_freeze_q_cnt``), cumulative.
    """

    name: str
    frames: int = 0
    bytes: int = 0
    kernel_drops: int = 0
    truncated: int = 0
    source: str = "socket"
    ring_fill: float = 0.0
    ring_freezes: int = 0


@frozen
class CaptureStats:
    """
    The health of an agent's capture, cumulative since the agent started.

    :ivar frames: frames read from the kernel, all interfaces.
    :ivar bytes: octets of those frames.
    :ivar kernel_drops: frames dropped by the kernel before Loopy read them.
    :ivar malformed: frames the header parser could not decode (counted and
        skipped; see L{loopy.dissect.headers}).
    :ivar batches: reactor wake-ups that read at least one frame.
    :ivar full_batches: wake-ups that stopped at the batch bound with frames
        still queued (a sign the agent is near its limit).
    :ivar interfaces: per-interface counters.
    :ivar drops_per_second: kernel drops per second over the last interval.
    :ivar drop_ratio: kernel drops over frames offered (read plus dropped)
        in the last interval, 0 to 1.
    :ivar ring_fill: the fullest ring's peak fill in the last interval (see
        L{InterfaceStats.ring_fill}).
    :ivar dissected: packets dissected by scapy for an analyser (DNS
        answers today), cumulative.
    :ivar budgeted_out: packets an analyser wanted dissected but were not,
        the per-second dissection budget being spent; cumulative.
    :ivar packet_time_p50_us: median per-packet processing time (header
        parse and every analyser), microseconds, over the packets sampled
        in the last interval (one in L{loopy.agent.monitor.SAMPLE_EVERY}).
    :ivar packet_time_p99_us: the 99th percentile of the same, microseconds.
    :ivar cpu_seconds: the agent process's user plus system CPU time,
        cumulative (times(2)).
    :ivar cpu_percent: the agent's CPU time over the last interval, percent
        of one core.
    :ivar rss_bytes: the agent's resident set size at report time, octets
        (``/proc/self/statm``, proc(5)).
    """

    frames: int = 0
    bytes: int = 0
    kernel_drops: int = 0
    malformed: int = 0
    batches: int = 0
    full_batches: int = 0
    interfaces: tuple[InterfaceStats, ...] = ()
    drops_per_second: float = 0.0
    drop_ratio: float = 0.0
    ring_fill: float = 0.0
    dissected: int = 0
    budgeted_out: int = 0
    packet_time_p50_us: float = 0.0
    packet_time_p99_us: float = 0.0
    cpu_seconds: float = 0.0
    cpu_percent: float = 0.0
    rss_bytes: int = 0


@frozen
class ProtocolCount:
    """
    Packets and octets (IP length, or frame length for non-IP) of one
    protocol, cumulative.
    """

    packets: int = 0
    bytes: int = 0


@frozen
class HostTraffic:
    """
    One host's traffic as seen by this agent, cumulative.

    :ivar addr: IPv4 or IPv6 address, text form.
    :ivar packets_sent: packets with this host as IP source.
    :ivar bytes_sent: IP octets of those packets.
    :ivar packets_received: packets with this host as IP destination.
    :ivar bytes_received: IP octets of those packets.
    """

    addr: str
    packets_sent: int = 0
    bytes_sent: int = 0
    packets_received: int = 0
    bytes_received: int = 0

    @property
    def bytes_total(self) -> int:
        return self.bytes_sent + self.bytes_received


@frozen
class Conversation:
    """
    Traffic between two hosts, any protocol, cumulative (Wireshark's IPv4/IPv6
    conversations).  ``a`` sorts before ``b``; ``*_ab`` counts ``a``→``b``.
    """

    a: str
    b: str
    packets_ab: int = 0
    bytes_ab: int = 0
    packets_ba: int = 0
    bytes_ba: int = 0

    @property
    def bytes_total(self) -> int:
        return self.bytes_ab + self.bytes_ba


@frozen
class IpSnapshot:
    """
    What the IP analyser saw.

    Direction is the kernel's (packet(7) ``sll_pkttype``): ``out`` is
    ``PACKET_OUTGOING``, anything else is ``in``.  On loopback every packet is
    both sent and received by this host; it is counted once, as ``in``.

    :ivar packets_in: packets received, cumulative (all ethertypes).
    :ivar packets_out: packets sent, cumulative.
    :ivar bytes_in: frame octets received, cumulative.
    :ivar bytes_out: frame octets sent, cumulative.
    :ivar pps_in: packets/s received over the last interval.
    :ivar pps_out: packets/s sent over the last interval.
    :ivar bps_in: bits/s received over the last interval.
    :ivar bps_out: bits/s sent over the last interval.
    :ivar protocols: protocol name (``tcp``, ``udp``, ``icmp``, ``icmpv6``,
        ``arp``, ``ipv4-other``, ``ipv6-other``, ``other``) to counts.
    :ivar top_talkers: hosts with the most octets, most first.
    :ivar top_conversations: host pairs with the most octets, most first.
    :ivar interval_talkers: hosts with the most octets over the last
        interval alone (counts in each L{HostTraffic} are over the
        interval, not cumulative), most first; what the history keeps.
    :ivar interval_conversations: host pairs with the most octets over the
        last interval alone, most first.
    :ivar hosts_tracked: hosts in the bounded host table now.
    :ivar hosts_evicted: hosts dropped from the table at its bound.
    :ivar conversations_tracked: pairs in the bounded conversation table now.
    :ivar conversations_evicted: pairs dropped from the table at its bound.
    """

    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    pps_in: float = 0.0
    pps_out: float = 0.0
    bps_in: float = 0.0
    bps_out: float = 0.0
    protocols: Mapping[str, ProtocolCount] = field(factory=dict)
    top_talkers: tuple[HostTraffic, ...] = ()
    top_conversations: tuple[Conversation, ...] = ()
    interval_talkers: tuple[HostTraffic, ...] = ()
    interval_conversations: tuple[Conversation, ...] = ()
    hosts_tracked: int = 0
    hosts_evicted: int = 0
    conversations_tracked: int = 0
    conversations_evicted: int = 0


@frozen
class TcpConnection:
    """
    One TCP connection, oriented by its handshake: ``src`` sent the SYN.  A
    connection picked up mid-stream is oriented with the lower port as the
    server (``dst``) and has ``rtt_ms`` None.

    :ivar state: ``syn_sent``, ``syn_received``, ``established``,
        ``fin_wait`` (one side sent FIN), ``closed`` (both FINs), ``reset``.
    :ivar packets_out: segments ``src``→``dst``.
    :ivar bytes_out: TCP payload octets ``src``→``dst`` (as Zeek's
        ``orig_bytes``; retransmitted payload counts again).
    :ivar packets_in: segments ``dst``→``src``.
    :ivar bytes_in: TCP payload octets ``dst``→``src``.
    :ivar ip_bytes_out: IP octets ``src``→``dst`` (headers included).
    :ivar ip_bytes_in: IP octets ``dst``→``src``.
    :ivar rtt_ms: handshake round-trip time, SYN to the ACK of the SYN-ACK,
        as seen at the capture point (Wireshark's ``tcp.analysis.initial_rtt``).
    :ivar retransmissions: segments whose payload repeats sequence space
        already seen in the same direction.
    :ivar first_seen: ts of the first segment.
    :ivar last_seen: ts of the newest segment.
    """

    src: str
    sport: int
    dst: str
    dport: int
    state: str
    packets_out: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    bytes_in: int = 0
    ip_bytes_out: int = 0
    ip_bytes_in: int = 0
    rtt_ms: Optional[float] = None
    retransmissions: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0


@frozen
class TcpSnapshot:
    """
    What the TCP analyser saw.  Counters are cumulative.

    :ivar syn: connection attempts (SYN without ACK).
    :ivar syn_ack: SYN-ACKs.
    :ivar established: handshakes completed.
    :ivar closed: connections closed by FIN from both sides.
    :ivar reset: connections ended by RST.
    :ivar half_open: connections now in ``syn_sent``/``syn_received``.
    :ivar active: connections now tracked and not closed or reset.
    :ivar retransmissions: retransmitted segments, all connections.
    :ivar connections: the most recently active connections, newest first
        (at most the agent's ``report_connections``), closed ones included
        for a linger time.
    :ivar connections_tracked: entries in the bounded connection table.
    :ivar connections_evicted: entries dropped at the table's bound.
    :ivar connections_expired: idle entries aged out.
    """

    syn: int = 0
    syn_ack: int = 0
    established: int = 0
    closed: int = 0
    reset: int = 0
    half_open: int = 0
    active: int = 0
    retransmissions: int = 0
    connections: tuple[TcpConnection, ...] = ()
    connections_tracked: int = 0
    connections_evicted: int = 0
    connections_expired: int = 0


@frozen
class DnsQuery:
    """
    One DNS transaction: a query and, when seen, its response, matched by
    DNS id and 5-tuple (RFC 1035 section 4.1.1).

    :ivar ts: time of the query.
    :ivar client: the querier's address; ``sport`` its port.
    :ivar server: the server's address; ``dport`` its port.
    :ivar transport: ``udp`` or ``tcp``.
    :ivar id: the DNS message id.
    :ivar qname: the first question's name, lower case, no trailing dot.
    :ivar qtype: its type mnemonic (``A``, ``AAAA``, ``TXT``, ``TYPE65280``).
    :ivar rcode: the response code mnemonic (``NOERROR``, ``NXDOMAIN``,
        ``SERVFAIL``, ``RCODE11``) or None when no response was seen.
    :ivar answers: answer records as ``"TYPE value"`` strings (at most 8).
    :ivar latency_ms: response time minus query time, or None.
    """

    ts: float
    client: str
    sport: int
    server: str
    dport: int
    transport: str
    id: int
    qname: str
    qtype: str
    rcode: Optional[str] = None
    answers: tuple[str, ...] = ()
    latency_ms: Optional[float] = None


@frozen
class NameCount:
    """
    A DNS name and how many queries asked for it.
    """

    qname: str
    count: int


@frozen
class DnsSnapshot:
    """
    What the DNS analyser saw.  Counters are cumulative.

    :ivar queries_total: queries seen (QR=0).
    :ivar responses_total: responses seen (QR=1).
    :ivar matched: responses matched to a query.
    :ivar unanswered: queries that got no response within the timeout.
    :ivar nxdomain: responses with rcode NXDOMAIN.
    :ivar servfail: responses with rcode SERVFAIL.
    :ivar qps: queries/s over the last interval.
    :ivar rcodes: rcode mnemonic to response count.
    :ivar qtypes: qtype mnemonic to query count.
    :ivar top_names: the most queried names, most first.
    :ivar queries: the most recent transactions, newest first.
    :ivar malformed: port-53 payloads that did not parse as DNS.
    :ivar pending: queries now waiting for a response.
    :ivar pending_evicted: waiting queries dropped at the table's bound.
    :ivar names_evicted: names dropped from the bounded name table.
    :ivar answers_budgeted_out: responses whose answers were not dissected
        because the per-second dissection budget was spent.
    """

    queries_total: int = 0
    responses_total: int = 0
    matched: int = 0
    unanswered: int = 0
    nxdomain: int = 0
    servfail: int = 0
    qps: float = 0.0
    rcodes: Mapping[str, int] = field(factory=dict)
    qtypes: Mapping[str, int] = field(factory=dict)
    top_names: tuple[NameCount, ...] = ()
    queries: tuple[DnsQuery, ...] = ()
    malformed: int = 0
    pending: int = 0
    pending_evicted: int = 0
    names_evicted: int = 0
    answers_budgeted_out: int = 0


@frozen
class DetectSnapshot:
    """
    What the detect analyser (L{loopy.detect.host.DetectAnalyser}) did.
    Counters are cumulative.

    :ivar detectors: detector name to its counters and table sizes (each
        detector's own words; docs/detectors/ lists them).
    :ivar alerts_open: alerts active now.
    :ivar alerts_raised: alerts raised.
    :ivar alerts_updated: update revisions sent.
    :ivar alerts_ended: alerts over.
    :ivar alerts_suppressed: new alerts refused at the bound on open alerts.
    :ivar local_addresses: addresses learned as this host's.
    :ivar errors: exceptions raised by detectors (each logged).
    :ivar checks: threshold checks run.
    """

    detectors: Mapping[str, Mapping[str, int]] = field(factory=dict)
    alerts_open: int = 0
    alerts_raised: int = 0
    alerts_updated: int = 0
    alerts_ended: int = 0
    alerts_suppressed: int = 0
    local_addresses: int = 0
    errors: int = 0
    checks: int = 0


#: Alert severities, least to most severe.
INFO = "info"
WARNING = "warning"
CRITICAL = "critical"
SEVERITIES = (INFO, WARNING, CRITICAL)

#: An alert's condition: still going on, or ended.
ACTIVE = "active"
OVER = "over"


@frozen
class Alert:
    """
    Something suspicious an agent's detectors saw (see L{loopy.detect}).

    An alert is identified by ``(agent_id, epoch, seq)``: ``seq`` counts the
    alerts of one agent run from 1 (it is not a report's seq).  A condition
    that goes on raises one alert and then updates it: each update is a new
    ``revision`` of the same alert, and the last revision has ``state``
    L{OVER}.  A hub keeps the highest revision it has seen, so duplicates
    and reordered deliveries merge to the same result.

    :ivar ts: agent clock when the condition was first seen (seconds since
        the Unix epoch; the capture's clock for a replay).
    :ivar updated: agent clock of this revision.
    :ivar revision: 0 when raised, one more for each update.
    :ivar kind: what was detected, one of the documented words
        (``port_scan``, ``syn_flood``, ``arp_spoof``, ``dns_tunnel`` …;
        docs/detectors/README.md lists them).
    :ivar severity: L{INFO}, L{WARNING} or L{CRITICAL}.
    :ivar state: L{ACTIVE} or L{OVER}.
    :ivar summary: one line for humans.
    :ivar src: the address the suspicious traffic came from (the scanner,
        the flood's source or, for many spoofed sources, None).
    :ivar dst: the address it was aimed at, or None for many.
    :ivar evidence: JSON-shaped details: addresses, ports, counts, the
        thresholds crossed, and a few packets' one-line summaries
        (``samples``); bounded by each detector.
    """

    agent_id: str = field(validator=instance_of(str))
    epoch: int = field(validator=_nonneg())
    seq: int = field(validator=_nonneg())
    ts: float
    updated: float
    kind: str
    severity: str = field(validator=lambda _i, _a, v: _check_word(v, SEVERITIES, "severity"))
    state: str = field(validator=lambda _i, _a, v: _check_word(v, (ACTIVE, OVER), "state"))
    summary: str
    revision: int = field(default=0, validator=_nonneg())
    src: Optional[str] = None
    dst: Optional[str] = None
    evidence: Mapping[str, Any] = field(factory=dict)

    @property
    def key(self) -> tuple[str, int, int]:
        """
        The alert's identity, ``(agent_id, epoch, seq)``.
        """
        return (self.agent_id, self.epoch, self.seq)


def _check_word(value: str, words: tuple, what: str) -> None:
    if value not in words:
        raise ValueError(f"{what} must be one of {', '.join(words)}, not {value!r}")


#: An alert's state as a UI shows it: L{ACTIVE}, L{OVER}, or this once a
#: user has acknowledged it.
ACKNOWLEDGED = "acknowledged"


@frozen
class AlertEntry:
    """
    A hub's knowledge of one alert: its newest revision and who
    acknowledged it.

    :ivar alert: the newest revision the hub has.
    :ivar received: hub clock when that revision arrived.
    :ivar acknowledged_by: who acknowledged it (a UI's user@host), or None.
    :ivar acknowledged_at: hub clock of the acknowledgement, or None.
    """

    alert: Alert
    received: float
    acknowledged_by: Optional[str] = None
    acknowledged_at: Optional[float] = None

    @property
    def state(self) -> str:
        """
        L{ACKNOWLEDGED} once acknowledged, else the alert's own state.
        """
        return ACKNOWLEDGED if self.acknowledged_by is not None else self.alert.state


@frozen
class IntervalCounts:
    """
    What an agent counted over one report's interval: the differences of
    its cumulative counters between this report and the one before it
    (``seq - 1``), so they add up exactly over any run of reports and do not
    depend on the order reports reach a hub.  The first report of a run
    counts from the start.  A counter that went backwards counts 0.

    Octets are frame octets for ``bytes_in``/``bytes_out`` (as
    L{IpSnapshot}) and IP octets for the protocol columns (as
    L{ProtocolCount}).

    :ivar frames: frames read, all interfaces (L{CaptureStats}).
    :ivar bytes: octets of those frames.
    :ivar kernel_drops: frames the kernel dropped.
    :ivar malformed: frames that did not decode.
    :ivar packets_in: packets received (L{IpSnapshot}).
    :ivar packets_out: packets sent.
    :ivar bytes_in: frame octets received.
    :ivar bytes_out: frame octets sent.
    :ivar tcp_packets: TCP packets (the ``tcp`` protocol bucket).
    :ivar tcp_bytes: their IP octets.
    :ivar udp_packets: UDP packets.
    :ivar udp_bytes: their IP octets.
    :ivar icmp_packets: ICMP and ICMPv6 packets.
    :ivar icmp_bytes: their IP octets.
    :ivar other_packets: every other packet (ARP, other IP protocols,
        other ethertypes).
    :ivar other_bytes: their octets.
    :ivar tcp_syn: connection attempts (L{TcpSnapshot.syn}).
    :ivar tcp_established: handshakes completed.
    :ivar tcp_reset: connections ended by RST.
    :ivar tcp_closed: connections closed by FIN both ways.
    :ivar tcp_retransmissions: retransmitted segments.
    :ivar dns_queries: DNS queries (L{DnsSnapshot.queries_total}).
    :ivar dns_responses: DNS responses.
    :ivar dns_nxdomain: NXDOMAIN responses.
    :ivar dns_servfail: SERVFAIL responses.
    :ivar dns_unanswered: queries that timed out unanswered.
    :ivar alerts_raised: alerts raised (L{DetectSnapshot.alerts_raised}).
    """

    frames: int = 0
    bytes: int = 0
    kernel_drops: int = 0
    malformed: int = 0
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    tcp_packets: int = 0
    tcp_bytes: int = 0
    udp_packets: int = 0
    udp_bytes: int = 0
    icmp_packets: int = 0
    icmp_bytes: int = 0
    other_packets: int = 0
    other_bytes: int = 0
    tcp_syn: int = 0
    tcp_established: int = 0
    tcp_reset: int = 0
    tcp_closed: int = 0
    tcp_retransmissions: int = 0
    dns_queries: int = 0
    dns_responses: int = 0
    dns_nxdomain: int = 0
    dns_servfail: int = 0
    dns_unanswered: int = 0
    alerts_raised: int = 0


@frozen
class DeliveryStats:
    """
    The agent's delivery of its reports and alerts to hubs (ARCHITECTURE
    decision 9): what waits in its spool for a hub's durable
    acknowledgement, and what the spool dropped at its bound.

    :ivar spool_records: records (reports and alerts) waiting for an
        acknowledgement, in the spool now.
    :ivar spool_bytes: octets they take (framing included).
    :ivar spool_max_bytes: the spool's bound (``--spool-size``).
    :ivar spool_on_disk: whether the spool is a directory (``--spool``)
        rather than memory.
    :ivar oldest_ts: agent clock of the oldest record waiting, or None.
    :ivar reports_dropped: reports dropped at the bound (oldest first),
        cumulative over the spool's life (kept across agent restarts).
    :ivar alerts_dropped: alert revisions dropped at the bound, only
        when no report was left to drop; cumulative likewise.
    :ivar corrupt: records skipped when the spool was opened because their
        checksum or framing was bad; cumulative likewise.
    :ivar replayed: records sent again after a link was lost or the agent
        restarted, cumulative in this run.
    :ivar acked: records a hub acknowledged as durably written,
        cumulative in this run.
    """

    spool_records: int = 0
    spool_bytes: int = 0
    spool_max_bytes: int = 0
    spool_on_disk: bool = False
    oldest_ts: Optional[float] = None
    reports_dropped: int = 0
    alerts_dropped: int = 0
    corrupt: int = 0
    replayed: int = 0
    acked: int = 0


@frozen
class AgentReport:
    """
    One report from an agent: its capture health and every analyser's
    snapshot.  Versioned by ``(agent_id, epoch, seq)``: ``epoch`` changes when
    the agent restarts (it is the agent's start time in microseconds, so a
    restart sorts after the run before it), ``seq`` counts reports within an
    epoch from 1.

    :ivar ts: agent clock when the report was made (seconds since epoch).
    :ivar interval: seconds the rates in the snapshots cover.
    :ivar analysers: analyser name (``ip``, ``tcp``, ``dns``, plugins' names)
        to its snapshot record; snapshots of analysers this process does not
        know arrive as plain dicts (see L{loopy.wire}).
    :ivar alerts: the newest revision of every alert still active and of
        those ended lately (L{loopy.detect.alerts.AlertBook.recent}), so an
        alert whose immediate delivery was lost still reaches the hub.
    :ivar counts: what was counted over this report's interval alone
        (what the hub's history keeps).
    :ivar delivery: the agent's spool and delivery counters.
    """

    agent_id: str = field(validator=instance_of(str))
    hostname: str
    epoch: int = field(validator=_nonneg())
    seq: int = field(validator=_nonneg())
    ts: float
    interval: float
    capture: CaptureStats = field(factory=CaptureStats)
    analysers: Mapping[str, Any] = field(factory=dict)
    alerts: tuple[Alert, ...] = ()
    counts: IntervalCounts = field(factory=IntervalCounts)
    delivery: DeliveryStats = field(factory=DeliveryStats)

    @property
    def version(self) -> tuple[int, int]:
        """
        The report's place in its agent's history: later sorts higher.
        """
        return (self.epoch, self.seq)


@frozen
class AgentLink:
    """
    Which hub an agent is linked to, as that hub says (replicated in the
    mesh).  Of two for one agent the one with the higher C{order} holds:
    a later run, a later link, and of one link its end after its start.

    :ivar hub: the hub's name.
    :ivar link: the agent's count of its links in this run
        (L{loopy.wire.AgentHello}'s ``link``), 0 if it does not count.
    :ivar up: True when the link opened, False when it closed.
    """

    agent_id: str = field(validator=instance_of(str))
    hostname: str
    hub: str
    epoch: int = field(validator=_nonneg())
    link: int = field(validator=_nonneg())
    up: bool

    @property
    def order(self) -> tuple[int, int, int]:
        return (self.epoch, self.link, 0 if self.up else 1)


@frozen
class Acknowledgement:
    """
    A user acknowledged alert ``(agent_id, epoch, seq)`` at hub clock
    C{at} (replicated in the mesh).  Of two for one alert the earlier
    holds (ties: the greater C{by}), so every hub keeps the same one.
    """

    agent_id: str
    epoch: int
    seq: int
    by: str
    at: float

    @property
    def order(self) -> tuple[float, str]:
        return (-self.at, self.by)


@frozen
class HubBeat:
    """
    A hub's heartbeat, replicated in the mesh about once a second: how the
    other hubs know it is alive, where it listens, and its peer links.

    :ivar started: hub clock at start (seconds since the Unix epoch).
    :ivar beat: counts the heartbeats of this run from 1.
    :ivar peers: names of the hubs it has live peer links to.
    :ivar agents_linked: agent connections it has open.
    """

    name: str
    endpoint: str
    epoch: int = field(validator=_nonneg())
    started: float
    beat: int = field(validator=_nonneg())
    peers: tuple[str, ...] = ()
    agents_linked: int = 0

    @property
    def order(self) -> tuple[int, int]:
        return (self.epoch, self.beat)


#: Agent status words, as the hub sees its agents.
ONLINE = "online"
STALE = "stale"
OFFLINE = "offline"


@frozen
class AgentSummary:
    """
    The fleet screen's line for one agent, derived by the hub from the
    agent's newest report.

    :ivar spool_dropped: reports and alerts the agent's spool dropped at
        its bound (L{DeliveryStats}), cumulative over the spool's life.
    """

    pps_in: float = 0.0
    pps_out: float = 0.0
    bps_in: float = 0.0
    bps_out: float = 0.0
    tcp_active: int = 0
    dns_qps: float = 0.0
    frames: int = 0
    kernel_drops: int = 0
    malformed: int = 0
    drops_per_second: float = 0.0
    drop_ratio: float = 0.0
    cpu_percent: float = 0.0
    rss_bytes: int = 0
    spool_dropped: int = 0


@frozen
class AgentEntry:
    """
    A hub's knowledge of one agent.

    :ivar status: L{ONLINE}, L{STALE} (linked, but no report for a while) or
        L{OFFLINE} (not linked).
    :ivar hub: name of the hub the agent is linked to (or was, last).
    :ivar last_heard: hub clock of the newest report (seconds since epoch),
        or None before the first.
    :ivar report: the newest report, when the view carries details.
    :ivar alerts_active: the agent's alerts that are active and not
        acknowledged (the fleet screen's marker).
    :ivar alert_severity: the highest severity among those, or ``""``.
    """

    agent_id: str
    hostname: str
    status: str
    hub: str
    epoch: int = 0
    seq: int = 0
    last_heard: Optional[float] = None
    summary: AgentSummary = field(factory=AgentSummary)
    report: Optional[AgentReport] = None
    alerts_active: int = 0
    alert_severity: str = ""


@frozen
class HubInfo:
    """
    The hub a UI is talking to.

    :ivar name: the hub's name (``--name``, default the host name).
    :ivar endpoint: how to reach it (``--advertise``, default ``--listen``).
    :ivar started: hub clock at start (seconds since epoch).
    :ivar now: hub clock when the view was made.
    :ivar agents_linked: agent connections now open.
    :ivar uis_linked: UI connections now open.
    :ivar updates_coalesced: pushes to UIs folded into a later one because
        the UI had not yet acknowledged the previous (per-client flow control).
    :ivar protocol_errors: connections dropped for bad input.
    :ivar alerts_held: alerts in the hub's bounded alert table.
    :ivar alerts_dropped: alerts dropped from that table at its bound
        (oldest ended first), cumulative.
    :ivar push_interval: seconds between this hub's pushes to each UI
        (``--push-interval``); a UI that hears nothing for five of them
        drops the link.
    :ivar peers_linked: other hubs with a live peer link to this one.
    :ivar gossip_bytes_in: octets received on peer links, cumulative.
    :ivar gossip_bytes_out: octets sent on peer links, cumulative.
    :ivar entries_replicated: replicated entries (reports, agent links,
        alerts, acknowledgements, hub heartbeats) this hub took from peers
        because they were newer than what it held, cumulative.
    :ivar entries_rejected: entries from peers that did not decode or
        whose key or order was not their value's (dropped), cumulative.
    :ivar entries_refused: new replicated entries refused at a bound (the
        agent or hub table full), plus hub runs forgotten past the bound on
        origins, cumulative.
    :ivar replication_age_p50: median age of the agent reports this hub
        took from peers over the last minute: hub clock at merge minus the
        report's C{ts} (seconds; includes clock skew between the agent's
        host and this hub's).
    :ivar replication_age_p99: the 99th percentile of the same, seconds.
    :ivar history_reports: reports written to the history, cumulative
        (duplicates not counted).
    :ivar history_duplicates: reports that were already in the history
        (retries, several paths), cumulative.
    :ivar history_pending: reports and alerts waiting for the next commit.
    :ivar history_refused: writes refused because that queue was full,
        cumulative.
    :ivar history_errors: commits that failed (disk full, I/O error),
        cumulative.
    :ivar history_bytes: the history database's size on disk, octets.
    :ivar history_commit_p99: the 99th percentile of commit times over the
        last minute, seconds.
    :ivar history_synced: history rows this hub caught up from peers
        (L{loopy.hub.historysync}), cumulative.
    """

    name: str
    endpoint: str
    version: str
    started: float
    now: float
    agents_linked: int = 0
    uis_linked: int = 0
    updates_coalesced: int = 0
    protocol_errors: int = 0
    alerts_held: int = 0
    alerts_dropped: int = 0
    push_interval: float = 1.0
    peers_linked: int = 0
    gossip_bytes_in: int = 0
    gossip_bytes_out: int = 0
    entries_replicated: int = 0
    entries_rejected: int = 0
    entries_refused: int = 0
    replication_age_p50: float = 0.0
    replication_age_p99: float = 0.0
    history_reports: int = 0
    history_duplicates: int = 0
    history_pending: int = 0
    history_refused: int = 0
    history_errors: int = 0
    history_bytes: int = 0
    history_commit_p99: float = 0.0
    history_synced: int = 0


#: A hub's state as another hub (and its UIs) see it: the hub itself, a hub
#: with a live peer link to it, a hub heard of through the mesh only, or one
#: not heard from for the mesh's peer timeout.
SELF = "self"
LINKED = "linked"
REACHABLE = "reachable"
DOWN = "down"


@frozen
class HubState:
    """
    One hub of the mesh, as the hub a UI talks to knows it (from the
    heartbeats that travel in the gossip, see L{loopy.hub.mesh}).

    :ivar name: the hub's name (its ``--name``).
    :ivar endpoint: how to reach it: its ``--advertise`` address, or its
        ``--listen`` string.
    :ivar state: L{SELF}, L{LINKED}, L{REACHABLE} or L{DOWN}.
    :ivar last_heard: this hub's clock when the newest heartbeat of that
        hub arrived (seconds since the Unix epoch), or None if never.
    :ivar epoch: the hub's run (its start time in microseconds).
    :ivar agents_linked: agents linked to that hub, as of its heartbeat.
    :ivar peers: names of the hubs it has live peer links to.
    """

    name: str
    endpoint: str
    state: str
    last_heard: Optional[float] = None
    epoch: int = 0
    agents_linked: int = 0
    peers: tuple[str, ...] = ()


@frozen
class FleetView:
    """
    What a UI is shown: the hub, every agent it knows, and alerts.

    :ivar hubs: every hub of the mesh this hub knows, itself first, then
        by name.
    :ivar alerts: every alert the hub holds, newest first, in the answers
        to L{loopy.wire.Watch} and L{loopy.wire.GetFleet}; empty in the
        periodic L{loopy.wire.FleetUpdate} pushes, since alert changes reach
        UIs at once as L{loopy.wire.AlertUpdate}s.
    """

    hub: HubInfo
    agents: tuple[AgentEntry, ...] = ()
    alerts: tuple[AlertEntry, ...] = ()
    hubs: tuple[HubState, ...] = ()


def summarize(report: AgentReport) -> AgentSummary:
    """
    Derive an agent's fleet-screen line from its report.

    :param report: the agent's newest report.
    :returns: the summary; zeros for analysers the report lacks.
    """
    return _summary(report.analysers, report.capture, report.delivery)


def summarize_value(value: Mapping[str, Any]) -> AgentSummary:
    """
    As L{summarize}, from a report's JSON-shaped value (as a peer hub sends
    it), without making the whole record; what is missing or not a number
    counts as zero.
    """
    analysers = value.get("analysers")
    capture = value.get("capture")
    delivery = value.get("delivery")
    return _summary(analysers if isinstance(analysers, Mapping) else {},
                    capture if isinstance(capture, Mapping) else {},
                    delivery if isinstance(delivery, Mapping) else {})


def _summary(analysers: Mapping[str, Any], capture: Any, delivery: Any) -> AgentSummary:
    ip = analysers.get("ip")
    tcp = analysers.get("tcp")
    dns = analysers.get("dns")
    return AgentSummary(
        pps_in=_number(ip, "pps_in", float),
        pps_out=_number(ip, "pps_out", float),
        bps_in=_number(ip, "bps_in", float),
        bps_out=_number(ip, "bps_out", float),
        tcp_active=_number(tcp, "active", int),
        dns_qps=_number(dns, "qps", float),
        frames=_number(capture, "frames", int),
        kernel_drops=_number(capture, "kernel_drops", int),
        malformed=_number(capture, "malformed", int),
        drops_per_second=_number(capture, "drops_per_second", float),
        drop_ratio=_number(capture, "drop_ratio", float),
        cpu_percent=_number(capture, "cpu_percent", float),
        rss_bytes=_number(capture, "rss_bytes", int),
        spool_dropped=(_number(delivery, "reports_dropped", int)
                       + _number(delivery, "alerts_dropped", int)),
    )


def _number(snapshot: Any, name: str, kind: type) -> Any:
    value = _get(snapshot, name, 0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return kind(value)
        except (ValueError, OverflowError):  # int() of NaN or infinity
            pass
    return kind()


def _get(snapshot: Any, name: str, default: Any) -> Any:
    """
    A field of a snapshot that may be a record or (from an analyser this
    process does not know) a dict.
    """
    if snapshot is None:
        return default
    if isinstance(snapshot, Mapping):
        return snapshot.get(name, default)
    return getattr(snapshot, name, default)


#: IntervalCounts fields, and where the cumulative counter behind each is:
#: (snapshot name or ``capture``, field), or ``protocols`` buckets.
_CUMULATIVE = {
    "frames": ("capture", "frames"),
    "bytes": ("capture", "bytes"),
    "kernel_drops": ("capture", "kernel_drops"),
    "malformed": ("capture", "malformed"),
    "packets_in": ("ip", "packets_in"),
    "packets_out": ("ip", "packets_out"),
    "bytes_in": ("ip", "bytes_in"),
    "bytes_out": ("ip", "bytes_out"),
    "tcp_syn": ("tcp", "syn"),
    "tcp_established": ("tcp", "established"),
    "tcp_reset": ("tcp", "reset"),
    "tcp_closed": ("tcp", "closed"),
    "tcp_retransmissions": ("tcp", "retransmissions"),
    "dns_queries": ("dns", "queries_total"),
    "dns_responses": ("dns", "responses_total"),
    "dns_nxdomain": ("dns", "nxdomain"),
    "dns_servfail": ("dns", "servfail"),
    "dns_unanswered": ("dns", "unanswered"),
    "alerts_raised": ("detect", "alerts_raised"),
}
#: Protocol-mix buckets (L{IpSnapshot.protocols}) of the protocol columns;
#: every other bucket counts as ``other``.
_PROTOCOL_COLUMNS = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmpv6": "icmp"}


def cumulative_counters(capture: Any, analysers: Mapping[str, Any]) -> dict[str, int]:
    """
    The cumulative counters behind each L{IntervalCounts} field, read from
    a report's capture stats and snapshots (records, or dicts as JSON gives
    them); what is missing counts 0.

    :returns: IntervalCounts field name to its cumulative value.
    """
    totals = {}
    for name, (source, attr) in _CUMULATIVE.items():
        snapshot = capture if source == "capture" else analysers.get(source)
        totals[name] = _number(snapshot, attr, int)
    for column in ("tcp", "udp", "icmp", "other"):
        totals[column + "_packets"] = totals[column + "_bytes"] = 0
    protocols = _get(analysers.get("ip"), "protocols", {})
    if isinstance(protocols, Mapping):
        for bucket, count in protocols.items():
            column = _PROTOCOL_COLUMNS.get(bucket, "other")
            totals[column + "_packets"] += _number(count, "packets", int)
            totals[column + "_bytes"] += _number(count, "bytes", int)
    return totals


def interval_counts(now: Mapping[str, int],
                    before: Optional[Mapping[str, int]]) -> IntervalCounts:
    """
    The differences between two L{cumulative_counters} results: this
    report's and the previous one's (None for the first report of a run,
    which counts from the start).  A counter that went backwards (a table
    reset) counts 0.
    """
    if before is None:
        return IntervalCounts(**now)
    return IntervalCounts(**{name: max(0, value - before.get(name, 0))
                             for name, value in now.items()})
