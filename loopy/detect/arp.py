# -*- test-case-name: tests.test_detect_arp -*-
"""
ARP spoofing (cache poisoning) and gratuitous ARP storms, from the ARP
packets of the segment (RFC 826 for Ethernet and IPv4).

ARP has no authentication: a host merges the sender pair (C{psrc},
C{hwsrc}) of any ARP packet into its cache when it already has an entry
for C{psrc} (RFC 826, "merge_flag"), so whoever sends ARP packets naming
another host's address with its own MAC receives that host's traffic.
L{ArpDetector} learns which MAC each IPv4 address uses, as arpwatch(8)
does, and raises C{arp_spoof} when:

 - an address's MAC changes while the old one was seen recently
   (C{mac_changed}; C{gateway_mac_changed} for a gateway, critical), and
   above all when it flip-flops back, which is what arpspoof, ettercap and
   bettercap produce while the real owner keeps answering;
 - one MAC claims many addresses (C{mac_claims_many_ips});
 - replies name an address with no request that asked for it
   (C{unsolicited_replies}).

It raises C{arp_storm} for gratuitous ARPs sustained at a high rate per
second, from one MAC or in total.  RFC 5227 probes (sender address 0.0.0.0)
and single announced moves (failover, a new DHCP lease) are expected and
ignored.  docs/detectors/arp.md gives the algorithm, thresholds and their
reasons, and the known false positives.
"""

from __future__ import annotations

import socket
from collections import OrderedDict, deque
from typing import Optional

from attrs import field, frozen

from loopy.detect.base import (
    ARP, EVIDENCE_ITEMS, SAMPLE_PACKETS, DetectorSettings, Networks, bounded,
    packet_line,
)
from loopy.model import CRITICAL, WARNING

#: The Ethernet broadcast address, as L{loopy.dissect.headers.mac_text} writes it.
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
#: The sender address of an RFC 5227 ARP probe.
UNSPECIFIED = "0.0.0.0"

#: C{arp_spoof} reasons (the C{reason} of its evidence).
MAC_CHANGED = "mac_changed"
GATEWAY_MAC_CHANGED = "gateway_mac_changed"
MAC_CLAIMS_MANY_IPS = "mac_claims_many_ips"
UNSOLICITED_REPLIES = "unsolicited_replies"

#: Most MACs remembered per address (the MACs it had; the MACs and forged
#: Ethernet sources of its unsolicited replies).
_MACS_PER_IP = 8
#: Changes remembered per address: a window's count stops here (two MACs
#: answering every second for a minute).
_CHANGES_PER_IP = 128
#: Seconds between two signals of one unchanged condition (the alert book's
#: default update interval: more often would only be held back).
_RESIGNAL = 1.0
#: Targets checked for this host's addresses, at most, per signal.
_TARGETS_CHECKED = 8


def normal_mac(text: str) -> str:
    """
    A MAC address as lower-case, colon-separated text.

    :param text: ``00:1A:2b:3c:4d:5e``, ``00-1a-2b-3c-4d-5e`` or
        ``001a.2b3c.4d5e``.
    :raises ValueError: for text that is not 12 hexadecimal digits.
    """
    digits = text.replace(":", "").replace("-", "").replace(".", "").lower()
    if len(digits) != 12 or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"not a MAC address: {text!r}")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _macs(values) -> tuple[str, ...]:
    return tuple(normal_mac(v) for v in values)


def _positive(instance, attribute, value) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be more than 0, not {value!r}")


@frozen
class ArpSettings(DetectorSettings):
    """
    The C{[arp]} table.

    :ivar allow_macs: MACs (any usual notation) trusted to claim addresses
        that are not theirs: a proxy-ARP router, a MetalLB or keepalived node
        announcing many service addresses, the slaves of a balance-alb bond.
        Their claims, moves among themselves and storms never alert [()].
    :ivar window: seconds over which MAC changes of an address and the
        addresses claimed by a MAC are counted (60.0: ettercap re-poisons
        every 10 s, arpspoof every 2 s, bettercap every 1 s, and a poisoned
        address's real owner usually speaks within a minute, so an attack
        shows several changes in a window; a legitimate move is one).
    :ivar rebind_after: seconds an address's MAC must have gone unseen for
        a change to be a re-binding rather than a takeover (300.0: a server
        powered off for a NIC swap, a DHCP address leased again, a VM
        re-created: all take minutes; a poisoner changes a binding seen
        seconds before).
    :ivar many_ips: distinct sender addresses one MAC may claim within
        C{window} before C{mac_claims_many_ips} (16: a router or a host
        with a few secondary addresses claims fewer; ettercap's ``// //``
        and mass poisoners claim the whole subnet).
    :ivar unsolicited: unsolicited replies naming one address within
        C{unsolicited_window} before C{unsolicited_replies} (5: arpspoof sends
        one every 2 s, bettercap every 1 s; a reply to a request lost by the
        capture, or a device refreshing its peers now and then, stays below).
    :ivar unsolicited_window: seconds for C{unsolicited} (10.0).
    :ivar reply_timeout: seconds after a request during which a reply from
        the address asked for, to the asker, is solicited (5.0: Linux asks
        once a second, 3 times, broadcast for a new entry or unicast to
        confirm a stale one; replies come within milliseconds of one).
    :ivar storm_rate: gratuitous ARPs per second from one MAC, sustained for
        C{storm_seconds} whole seconds, that make a storm (20: RFC 5227
        announces twice, 2 s apart; keepalived sends 5 per address at a
        failover, then 5 again after 5 s; the sustained-seconds rule keeps a
        failover of many addresses at once out).
    :ivar storm_total_rate: gratuitous ARPs per second from all MACs,
        sustained likewise, for a storm from many (spoofed) MACs (100).
    :ivar storm_seconds: consecutive whole seconds at the rate (2).
    :ivar max_ips: addresses in the binding table; the least recently seen
        is evicted at the cap (4096: a /20 of hosts).
    :ivar max_macs: MACs in the sender table; least recently seen evicted
        (4096).
    :ivar max_ips_per_mac: addresses remembered per MAC; more are counted,
        not kept, until the window ages some out (256).
    :ivar max_pending: requests awaiting their reply; the oldest is evicted
        at the cap (4096: a busy /16 asks a few hundred times a second).
    :ivar max_claims: addresses followed for unsolicited replies; least
        recently seen evicted (1024).
    """

    allow_macs: tuple[str, ...] = field(default=(), converter=_macs)
    window: float = field(default=60.0, validator=_positive)
    rebind_after: float = field(default=300.0, validator=_positive)
    many_ips: int = field(default=16, validator=_positive)
    unsolicited: int = field(default=5, validator=_positive)
    unsolicited_window: float = field(default=10.0, validator=_positive)
    reply_timeout: float = field(default=5.0, validator=_positive)
    storm_rate: int = field(default=20, validator=_positive)
    storm_total_rate: int = field(default=100, validator=_positive)
    storm_seconds: int = field(default=2, validator=_positive)
    max_ips: int = field(default=4096, validator=_positive)
    max_macs: int = field(default=4096, validator=_positive)
    max_ips_per_mac: int = field(default=256, validator=_positive)
    max_pending: int = field(default=4096, validator=_positive)
    max_claims: int = field(default=1024, validator=_positive)

    def __attrs_post_init__(self):
        if self.max_ips_per_mac < self.many_ips:
            raise ValueError(f"max_ips_per_mac ({self.max_ips_per_mac}) must be at "
                             f"least many_ips ({self.many_ips})")


class _Change:
    """
    One change of an address's MAC, from C{old} to C{new} at C{ts}.

    :ivar gap: seconds since C{old} was last seen for the address.
    :ivar flip: C{new} had the address within the window before (A→B→A).
    :ivar announced: made by a gratuitous ARP (C{psrc == pdst}).
    :ivar eth_src: the frame's Ethernet source when it differs from the ARP
        sender MAC (a forged frame), else None.
    :ivar target: the reply's C{pdst} (whom it poisons), or None.
    """

    __slots__ = ("ts", "old", "new", "gap", "flip", "announced", "eth_src", "target")

    def __init__(self, ts, old, new, gap, flip, announced, eth_src, target):
        self.ts = ts
        self.old = old
        self.new = new
        self.gap = gap
        self.flip = flip
        self.announced = announced
        self.eth_src = eth_src
        self.target = target


class _Signalled:
    """
    When a condition was last signalled and at which severity, so that
    L{ArpDetector.evaluate} builds its evidence again only when the alert
    book would send it: a second later (the book's update interval), or at
    once for another severity.
    """

    __slots__ = ()

    def due(self, severity: str, now: float) -> bool:
        if self.severity == severity and now - self.signalled < _RESIGNAL:
            return False
        self.severity = severity
        self.signalled = now
        return True


class _Binding(_Signalled):
    """
    An address's MAC (C{mac}), as learned from ARP senders.

    :ivar first_mac: the MAC it had when first seen (the owner's, unless
        the poisoning began before the agent started).
    :ivar macs: MAC to when it last had the address, for MACs it had before
        (None until the first change).
    :ivar changes: recent L{_Change}s (None until the first), and how many
        of them are C{flips}, C{unannounced} and C{forged}.
    :ivar last: the newest packet naming the address as sender.
    :ivar samples: packets around the changes (None until the first).
    """

    __slots__ = ("mac", "first_mac", "first_seen", "last_seen", "last", "macs", "changes",
                 "flips", "unannounced", "forged", "samples", "signalled", "severity")

    def __init__(self, mac: str, ts: float, packet):
        self.mac = self.first_mac = mac
        self.first_seen = self.last_seen = ts
        self.last = packet
        self.macs = self.changes = self.samples = self.severity = None
        self.flips = self.unannounced = self.forged = 0
        self.signalled = 0.0

    def add(self, change: _Change) -> None:
        changes = self.changes
        if changes is None:
            changes = self.changes = deque(maxlen=_CHANGES_PER_IP)
            self.samples = deque(maxlen=SAMPLE_PACKETS)
        elif len(changes) == _CHANGES_PER_IP:
            self.forget(changes[0])
        changes.append(change)
        self.flips += change.flip
        self.unannounced += not change.announced
        self.forged += change.eth_src is not None

    def forget(self, change: _Change) -> None:
        self.flips -= change.flip
        self.unannounced -= not change.announced
        self.forged -= change.eth_src is not None


class _Rate(_Signalled):
    """
    Events counted per whole second of capture time, over the last few
    seconds (a ring of C{slots} seconds), with the newest packets of the
    seconds that reached the rate (the others need none).
    """

    __slots__ = ("secs", "counts", "samples", "total", "signalled", "severity")

    def __init__(self, slots: int):
        self.secs = [-1] * slots
        self.counts = [0] * slots
        self.samples: Optional[deque] = None
        self.total = 0
        self.signalled = 0.0
        self.severity = None

    def add(self, sec: int, packet, rate: int) -> None:
        i = sec % len(self.secs)
        if self.secs[i] != sec:
            self.secs[i] = sec
            self.counts[i] = 0
        self.counts[i] += 1
        self.total += 1
        if self.counts[i] > rate - SAMPLE_PACKETS:
            if self.samples is None:
                self.samples = deque(maxlen=SAMPLE_PACKETS)
            self.samples.append(packet)

    def count(self, sec: int) -> int:
        i = sec % len(self.secs)
        return self.counts[i] if self.secs[i] == sec else 0

    def newest(self) -> int:
        return max(self.secs)

    def sustained(self, now: float, rate: int, seconds: int) -> Optional[list[int]]:
        """
        The per-second counts of the last C{seconds} whole seconds (oldest
        first) when each reached C{rate}, or None.  The current second
        counts once it has reached the rate; otherwise the seconds before.
        """
        cur = int(now)
        for end in (cur, cur - 1):
            counts = [self.count(s) for s in range(end - seconds + 1, end + 1)]
            if min(counts) >= rate:
                return counts
        return None


class _Sender(_Signalled):
    """
    A MAC as an ARP sender: the addresses it claimed (address to when, in
    order of that time), the ones it took from another MAC (C{conflicts},
    address to when; None until the first), its gratuitous ARPs (a
    L{_Rate}, None until the first), and the packets of its newest claims
    once it has nearly C{many_ips} (C{samples}, None until then).
    """

    __slots__ = ("ips", "overflow", "conflicts", "garp", "samples", "signalled", "severity")

    def __init__(self):
        self.ips: dict[str, float] = {}
        self.overflow = 0
        self.conflicts: Optional[dict[str, float]] = None
        self.garp: Optional[_Rate] = None
        self.samples: Optional[deque] = None
        self.signalled = 0.0
        self.severity = None


class _Claim(_Signalled):
    """
    Unsolicited replies naming one address: their times (the newest
    C{unsolicited}), count, MACs, targets and samples.
    """

    __slots__ = ("times", "count", "first", "last", "macs", "targets", "eth_src", "samples",
                 "signalled", "severity")

    def __init__(self, ts: float, threshold: int):
        self.times = deque(maxlen=threshold)
        self.count = 0
        self.first = self.last = ts
        self.macs: dict[str, int] = {}
        self.targets: dict[str, int] = {}
        self.eth_src: set[str] = set()
        self.samples = deque(maxlen=SAMPLE_PACKETS)
        self.signalled = 0.0
        self.severity = None


def _octets(ip: str) -> Optional[bytes]:
    try:
        return socket.inet_aton(ip)
    except OSError:
        return None


def _age_out(times: dict, limit: float) -> None:
    """
    Drop the entries of C{times} (key to time, in order of time) older than
    C{limit}: only those, from the front.
    """
    stale = []
    for key, ts in times.items():
        if ts >= limit:
            break
        stale.append(key)
    for key in stale:
        del times[key]


def _lines(packets) -> list[str]:
    return [packet_line(p) for p in packets or ()]


def _single(values) -> Optional[str]:
    values = set(values)
    return values.pop() if len(values) == 1 else None


class ArpDetector:
    """
    The C{arp} detector: C{arp_spoof} and C{arp_storm} (module docstring;
    docs/detectors/arp.md).

    State, every table bounded by L{ArpSettings}: the binding table (address
    to L{_Binding}, least recently seen evicted), the sender table (MAC to
    L{_Sender}, likewise), pending requests (``(pdst, psrc)`` to time,
    oldest evicted, expired after C{reply_timeout}) and unsolicited claims
    (address to L{_Claim}).  Addresses and MACs are the text of
    L{loopy.dissect.headers.ArpFields}, which the header path has already
    made for every ARP packet.
    """

    name = "arp"
    kinds = ("arp_spoof", "arp_storm")
    protocols = frozenset({ARP})
    settings_type = ArpSettings

    def __init__(self, settings: ArpSettings, context):
        self.settings = settings
        self._context = context
        self._allow = Networks(settings.allow)
        self._allow_macs = frozenset(settings.allow_macs)
        self._window = settings.window
        self._rebind_after = settings.rebind_after
        self._reply_timeout = settings.reply_timeout
        self._storm_slots = settings.storm_seconds + 1
        self._storm_rate = settings.storm_rate
        self._storm_total_rate = settings.storm_total_rate
        # Claims of allow-listed addresses are not counted (see _claim).
        self._filter_claims = bool(self._allow) or bool(context.allow)
        self._ips: OrderedDict[str, _Binding] = OrderedDict()
        self._senders: OrderedDict[str, _Sender] = OrderedDict()
        self._pending: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._claims: OrderedDict[str, _Claim] = OrderedDict()
        self._suspects: dict[str, _Binding] = {}
        # Addresses whose binding alert holds: their unsolicited replies are
        # part of its evidence, not an alert of their own.
        self._moving: set[str] = set()
        self._many: dict[str, _Sender] = {}
        self._garp_active: dict[str, _Sender] = {}
        self._total = _Rate(self._storm_slots)
        self.packets = self.requests = self.replies = self.probes = 0
        self.gratuitous = self.unsolicited = self.eth_src_mismatches = 0
        self.mac_changes = self.rebinds = self.flips = 0
        self.ips_evicted = self.macs_evicted = self.pending_evicted = 0
        self.claims_evicted = self.ips_per_mac_overflow = 0

    # -- the hot path ------------------------------------------------------

    def observe(self, packet) -> None:
        """
        Account for one ARP packet: learn its sender pair, note requests,
        match replies, count gratuitous ARPs.  A few dict operations; every
        threshold is checked in L{evaluate}.
        """
        arp = packet.arp
        if arp is None:
            return
        self.packets += 1
        ts = packet.ts
        op = arp.op
        psrc = arp.psrc
        pdst = arp.pdst
        hwsrc = arp.hwsrc
        # Snort's arpspoof 112:2: the frame's source is not the ARP sender.
        eth_src = packet.frame[6:12].hex(":")
        if eth_src == hwsrc:
            eth_src = None
        else:
            self.eth_src_mismatches += 1
        if psrc == UNSPECIFIED:
            # An RFC 5227 probe: claims nothing; a defence may answer it.
            self.probes += 1
            if op == 1:
                self._ask(pdst, psrc, ts)
            return
        # A gratuitous ARP: an announcement (RFC 5227 2.3, request or
        # reply with psrc == pdst) or a broadcast reply.
        announced = psrc == pdst
        gratuitous = announced
        if op == 1:
            self.requests += 1
            if not announced:
                self._ask(pdst, psrc, ts)
        elif op == 2:
            self.replies += 1
            if not announced:
                asked = self._pending.get((psrc, pdst))
                if asked is None or ts - asked > self._reply_timeout:
                    self._unsolicited(psrc, pdst, hwsrc, eth_src, ts, packet)
                gratuitous = arp.hwdst == BROADCAST_MAC
        sender = self._senders.get(hwsrc)
        if sender is None:
            sender = self._new_sender(hwsrc)
        else:
            self._senders.move_to_end(hwsrc)
        if gratuitous:
            self.gratuitous += 1
            if hwsrc not in self._allow_macs:
                sec = int(ts)
                if sender.garp is None:
                    sender.garp = _Rate(self._storm_slots)
                sender.garp.add(sec, packet, self._storm_rate)
                self._total.add(sec, packet, self._storm_total_rate)
                self._garp_active[hwsrc] = sender
        # Re-inserted, so that the dict stays in order of last claim.
        ips = sender.ips
        if ips.pop(psrc, None) is None:
            self._claim(sender, hwsrc, psrc, ts, packet)
        else:
            ips[psrc] = ts
        binding = self._ips.get(psrc)
        if binding is None:
            if len(self._ips) >= self.settings.max_ips:
                old, _ = self._ips.popitem(last=False)
                self._suspects.pop(old, None)
                self.ips_evicted += 1
            self._ips[psrc] = _Binding(hwsrc, ts, packet)
            return
        self._ips.move_to_end(psrc)
        if binding.mac != hwsrc:
            self._changed(psrc, binding, sender, packet, announced, eth_src)
        binding.last_seen = ts
        binding.last = packet

    def _ask(self, pdst: str, psrc: str, ts: float) -> None:
        pending = self._pending
        key = (pdst, psrc)
        if key in pending:
            pending.move_to_end(key)
        elif len(pending) >= self.settings.max_pending:
            pending.popitem(last=False)
            self.pending_evicted += 1
        pending[key] = ts

    def _new_sender(self, mac: str) -> _Sender:
        if len(self._senders) >= self.settings.max_macs:
            old, _ = self._senders.popitem(last=False)
            self._many.pop(old, None)
            self._garp_active.pop(old, None)
            self.macs_evicted += 1
        sender = self._senders[mac] = _Sender()
        return sender

    def _claim(self, sender: _Sender, mac: str, psrc: str, ts: float, packet) -> None:
        """
        A MAC names an address it has not named lately.
        """
        ips = sender.ips
        if len(ips) >= self.settings.max_ips_per_mac:
            # evaluate() ages the old ones out of a MAC this busy.
            sender.overflow += 1
            self.ips_per_mac_overflow += 1
            return
        if self._filter_claims and self._allowed_ip(psrc):
            return
        ips[psrc] = ts
        many = self.settings.many_ips
        if len(ips) > many - SAMPLE_PACKETS:
            # The claims that make it many: samples for the evidence.
            if sender.samples is None:
                sender.samples = deque(maxlen=SAMPLE_PACKETS)
            sender.samples.append(packet)
            if len(ips) >= many:
                self._many[mac] = sender

    def _unsolicited(self, psrc, pdst, hwsrc, eth_src, ts, packet) -> None:
        self.unsolicited += 1
        claims = self._claims
        claim = claims.get(psrc)
        if claim is None:
            if len(claims) >= self.settings.max_claims:
                claims.popitem(last=False)
                self.claims_evicted += 1
            claim = claims[psrc] = _Claim(ts, self.settings.unsolicited)
        else:
            claims.move_to_end(psrc)
        claim.times.append(ts)
        claim.count += 1
        claim.last = ts
        if hwsrc in claim.macs or len(claim.macs) < _MACS_PER_IP:
            claim.macs[hwsrc] = claim.macs.get(hwsrc, 0) + 1
        if pdst in claim.targets or len(claim.targets) < EVIDENCE_ITEMS:
            claim.targets[pdst] = claim.targets.get(pdst, 0) + 1
        if eth_src is not None and len(claim.eth_src) < _MACS_PER_IP:
            claim.eth_src.add(eth_src)
        claim.samples.append(packet)

    def _changed(self, ip: str, binding: _Binding, sender: _Sender, packet,
                 announced: bool, eth_src: Optional[str]) -> None:
        """
        C{ip}'s sender MAC is not the one it had: C{sender}'s is.
        """
        self.mac_changes += 1
        ts = packet.ts
        arp = packet.arp
        old, new = binding.mac, arp.hwsrc
        gap = ts - binding.last_seen
        macs = binding.macs
        if macs is None:
            macs = binding.macs = {}
        macs[old] = binding.last_seen
        if len(macs) > _MACS_PER_IP:
            del macs[min(macs, key=macs.get)]
        before = macs.get(new)
        binding.mac = new
        if gap >= self._rebind_after:
            # Gone for long enough that a new owner is the likely story.
            self.rebinds += 1
            binding.first_mac = new
            binding.first_seen = ts
            return
        flip = before is not None and ts - before <= self._window
        self.flips += flip
        target = arp.pdst if arp.op == 2 and arp.pdst not in (UNSPECIFIED, ip) else None
        binding.add(_Change(ts, old, new, gap, flip, announced, eth_src, target))
        samples = binding.samples
        if not samples or samples[-1] is not binding.last:
            samples.append(binding.last)
        samples.append(packet)
        self._suspects[ip] = binding
        # The new MAC took an address another MAC had: a conflict of its
        # (kept in order of time, like its claims).
        conflicts = sender.conflicts
        if conflicts is None:
            conflicts = sender.conflicts = {}
        elif conflicts.pop(ip, None) is None and len(conflicts) >= EVIDENCE_ITEMS:
            _age_out(conflicts, ts - self._window)
        if len(conflicts) < EVIDENCE_ITEMS:
            conflicts[ip] = ts
            sender.severity = None  # check it again at once

    # -- thresholds ------------------------------------------------------

    def evaluate(self, now: float, book) -> None:
        """
        Age state out and signal every condition that holds at C{now}.
        """
        self._expire_pending(now)
        self._check_bindings(now, book)
        self._check_claims(now, book)
        self._check_many(now, book)
        self._check_storms(now, book)

    def _expire_pending(self, now: float) -> None:
        pending = self._pending
        limit = now - self._reply_timeout
        while pending:
            key, ts = next(iter(pending.items()))
            if ts >= limit:
                break
            pending.popitem(last=False)

    def _allowed_ip(self, ip: str) -> bool:
        return self._context.allowed(_octets(ip), self._allow)

    def _trusted(self, macs) -> bool:
        """
        Whether every MAC of C{macs} is on C{allow_macs}.
        """
        return bool(self._allow_macs) and set(macs) <= self._allow_macs

    def _to_this_host(self, targets) -> bool:
        """
        Whether this host is one of C{targets} (the first
        L{_TARGETS_CHECKED} in address order: a flood's thousands of
        targets would make every evaluation slow).
        """
        return any(self._context.is_local(_octets(t))
                   for t in bounded(targets, _TARGETS_CHECKED))

    def _signal(self, book, kind, subject, now, severity, summary, src, dst, evidence):
        """
        Signal to C{book}, with C{evidence()} built only when the book can
        take the alert (at its bound it refuses new subjects, and counts them).
        """
        if len(book) >= book.max_active and book.active(kind, subject) is None:
            evidence = dict
        book.signal(kind, subject, now, severity, summary, src=src, dst=dst,
                    evidence=evidence())

    def _check_bindings(self, now: float, book) -> None:
        window = self._window
        gateways = self._context.gateways
        self._moving.clear()
        for ip, binding in list(self._suspects.items()):
            changes = binding.changes
            while changes and now - changes[0].ts > window:
                binding.forget(changes.popleft())
            if not changes:
                del self._suspects[ip]
                binding.severity = None
                continue
            flips, unannounced = binding.flips, binding.unannounced
            if not (flips or unannounced or binding.forged):
                # One announced move (failover, a new lease): expected.
                continue
            self._moving.add(ip)
            gateway = ip in gateways
            critical = (gateway or (flips and unannounced)
                        or (unannounced and binding.forged))
            if not binding.due(CRITICAL if critical else WARNING, now):
                continue
            involved = {c.old for c in changes} | {c.new for c in changes}
            if self._allowed_ip(ip) or self._trusted(involved):
                continue
            self._signal_binding(ip, binding, gateway, involved, now, book)

    def _signal_binding(self, ip, binding, gateway, involved, now, book) -> None:
        changes = binding.changes
        last = changes[-1]
        forged = sorted({c.eth_src for c in changes if c.eth_src is not None})
        reason = GATEWAY_MAC_CHANGED if gateway else MAC_CHANGED
        # Whom the poisoning aims at: the targets of the replies from the
        # suspect MACs: those sending unsolicited replies for the address
        # if any, else those that are not its first MAC.
        claim = self._claims.get(ip)
        if claim is not None:
            suspects = set(claim.macs)
            targets = set(claim.targets)
        else:
            suspects = involved - {binding.first_mac}
            targets = set()
        targets.update(c.target for c in changes if c.target is not None and c.new in suspects)
        who = f"gateway {ip}" if gateway else ip
        if binding.flips:
            macs = sorted(involved)
            summary = (f"{who} flip-flops between {' and '.join(macs[:3])}"
                       f"{' …' if len(macs) > 3 else ''}: {len(changes)} MAC changes "
                       f"in {self._window:g} s (ARP poisoning, or two hosts on one address)")
        else:
            summary = (f"{who} moved from {last.old} to {last.new}, "
                       f"{last.gap:.1f} s after {last.old} was last seen"
                       f"{' (Ethernet source ' + forged[0] + ')' if forged else ''}")
        self._signal(
            book, "arp_spoof", (reason, ip), now, binding.severity, summary, ip,
            _single(targets), lambda: {
                "reason": reason,
                "ip": ip,
                "gateway": gateway,
                "old_mac": last.old,
                "new_mac": last.new,
                "mac": binding.mac,
                "first_mac": binding.first_mac,
                "macs": sorted(involved),
                "changes": len(changes),
                "flips": binding.flips,
                "announced": not binding.unannounced,
                "eth_src_mismatch": bool(forged),
                "eth_src": forged,
                "seconds_since_old_seen": round(last.gap, 3),
                "first_seen": binding.first_seen,
                "last_seen": binding.last_seen,
                "targets": bounded(targets, EVIDENCE_ITEMS),
                "to_this_host": self._to_this_host(targets),
                "unsolicited_replies": 0 if claim is None else claim.count,
                "window": self._window,
                "rebind_after": self._rebind_after,
                "samples": _lines(binding.samples),
            })

    def _check_claims(self, now: float, book) -> None:
        threshold = self.settings.unsolicited
        window = self.settings.unsolicited_window
        for ip, claim in list(self._claims.items()):
            if now - claim.last > window:
                del self._claims[ip]
                continue
            times = claim.times
            if len(times) < threshold or now - times[0] > window or ip in self._moving:
                continue
            gateway = ip in self._context.gateways
            # Other MACs the address had within the window: a conflict.
            others = set()
            binding = self._ips.get(ip)
            if binding is not None:
                others.add(binding.mac)
                if binding.macs:
                    others.update(m for m, seen in binding.macs.items()
                                  if now - seen <= self._window)
            others.difference_update(claim.macs)
            critical = gateway or others or claim.eth_src
            if not claim.due(CRITICAL if critical else WARNING, now):
                continue
            if self._allowed_ip(ip) or self._trusted(claim.macs):
                continue
            macs = sorted(claim.macs)
            forged = sorted(claim.eth_src)
            dst = _single(claim.targets)
            to = f" to {dst}" if dst else f" to {len(claim.targets)} hosts"
            also = f"; {ip} is also at {', '.join(sorted(others))}" if others else ""
            summary = (f"{claim.count} unsolicited ARP replies say {ip}"
                       f"{' (gateway)' if gateway else ''} is at {', '.join(macs)}{to}{also}")
            self._signal(
                book, "arp_spoof", (UNSOLICITED_REPLIES, ip), now, claim.severity, summary,
                ip, dst, lambda: {
                    "reason": UNSOLICITED_REPLIES,
                    "ip": ip,
                    "gateway": gateway,
                    "macs": macs,
                    "other_macs": sorted(others),
                    "replies": claim.count,
                    "replies_by_mac": dict(sorted(claim.macs.items())),
                    "first_seen": claim.first,
                    "last_seen": claim.last,
                    "targets": bounded(claim.targets, EVIDENCE_ITEMS),
                    "to_this_host": self._to_this_host(claim.targets),
                    "eth_src_mismatch": bool(forged),
                    "eth_src": forged,
                    "threshold": threshold,
                    "window": window,
                    "reply_timeout": self._reply_timeout,
                    "samples": _lines(claim.samples),
                })

    def _check_many(self, now: float, book) -> None:
        threshold = self.settings.many_ips
        window = self._window
        for mac, sender in list(self._many.items()):
            if sender.severity is not None and now - sender.signalled < _RESIGNAL:
                continue
            ips = sender.ips
            _age_out(ips, now - window)
            if len(ips) < threshold:
                del self._many[mac]
                sender.severity = None
                continue
            gateways = sorted(g for g in self._context.gateways if g in ips)
            conflicts = []
            if sender.conflicts:
                _age_out(sender.conflicts, now - window)
                conflicts = sorted(sender.conflicts)
            sender.due(CRITICAL if gateways or conflicts else WARNING, now)
            if mac in self._allow_macs:
                continue
            summary = (f"{mac} claims {len(ips)} IPv4 addresses in {window:g} s"
                       f"{' including gateway ' + ', '.join(gateways) if gateways else ''}"
                       f"{f'; {len(conflicts)} of them also at another MAC' if conflicts else ''}")
            self._signal(
                book, "arp_spoof", (MAC_CLAIMS_MANY_IPS, mac), now, sender.severity, summary,
                mac, None, lambda: {
                    "reason": MAC_CLAIMS_MANY_IPS,
                    "mac": mac,
                    "ips_claimed": len(ips),
                    "ips": bounded(ips, EVIDENCE_ITEMS),
                    "gateways": gateways,
                    "conflicts": conflicts,
                    "not_kept": sender.overflow,
                    "threshold": threshold,
                    "window": window,
                    "samples": _lines(sender.samples),
                })

    def _check_storms(self, now: float, book) -> None:
        rate = self.settings.storm_rate
        seconds = self.settings.storm_seconds
        oldest = int(now) - self._storm_slots
        storming = 0
        for mac, sender in list(self._garp_active.items()):
            garp = sender.garp
            if garp.newest() < oldest:
                del self._garp_active[mac]
                continue
            counts = garp.sustained(now, rate, seconds)
            if counts is None:
                continue
            storming += 1
            if not garp.due(CRITICAL if min(counts) >= 5 * rate else WARNING, now):
                continue
            _age_out(sender.ips, now - self._window)
            self._signal(
                book, "arp_storm", mac, now, garp.severity,
                f"{mac} sends {min(counts)} gratuitous ARPs a second or more, for "
                f"{seconds} s ({garp.total} in all)",
                mac, None, lambda: {
                    "mac": mac,
                    "per_second": counts,
                    "gratuitous": garp.total,
                    "ips": bounded(sender.ips, EVIDENCE_ITEMS),
                    "threshold": rate,
                    "seconds": seconds,
                    "samples": _lines(garp.samples),
                })
        total = self._total
        if storming or total.newest() < oldest:
            return
        rate = self.settings.storm_total_rate
        counts = total.sustained(now, rate, seconds)
        if counts is None or not total.due(
                CRITICAL if min(counts) >= 5 * rate else WARNING, now):
            return
        senders = list(self._garp_active)
        self._signal(
            book, "arp_storm", "total", now, total.severity,
            f"gratuitous ARP storm: {min(counts)} a second or more for {seconds} s "
            f"from {len(senders)} MACs",
            _single(senders), None, lambda: {
                "mac": None,
                "per_second": counts,
                "senders": len(senders),
                "macs": bounded(senders, EVIDENCE_ITEMS),
                "threshold": rate,
                "seconds": seconds,
                "samples": _lines(total.samples),
            })

    def stats(self) -> dict[str, int]:
        """
        Counters (cumulative) and table sizes.
        """
        return {
            "packets": self.packets,
            "requests": self.requests,
            "replies": self.replies,
            "probes": self.probes,
            "gratuitous": self.gratuitous,
            "unsolicited_replies": self.unsolicited,
            "eth_src_mismatches": self.eth_src_mismatches,
            "mac_changes": self.mac_changes,
            "rebinds": self.rebinds,
            "flips": self.flips,
            "ips": len(self._ips),
            "ips_evicted": self.ips_evicted,
            "macs": len(self._senders),
            "macs_evicted": self.macs_evicted,
            "ips_per_mac_overflow": self.ips_per_mac_overflow,
            "pending": len(self._pending),
            "pending_evicted": self.pending_evicted,
            "claims": len(self._claims),
            "claims_evicted": self.claims_evicted,
            "suspects": len(self._suspects),
        }
