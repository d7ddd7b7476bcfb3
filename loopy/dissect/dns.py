# -*- test-case-name: tests.test_dissect_dns -*-
"""
DNS messages (RFC 1035 section 4).

L{parse_message} reads the header and the first question by hand (cheap
enough for every message); L{answers_of} dissects the answer section with
scapy's DNS layer (dear: only when the analyser's budget allows).
"""

from __future__ import annotations

from struct import Struct
from typing import Optional

_HEADER = Struct("!HHHHHH")
_TYPE_CLASS = Struct("!HH")
_MAX_NAME = 255  # octets, RFC 1035 section 2.3.4
_MAX_POINTERS = 32
#: Label octets written as they are: printable ASCII but the dot and the
#: backslash. Any other octet is written ``\\DDD``.
_PLAIN = bytes(b for b in range(0x21, 0x7F) if b not in (0x2E, 0x5C))
_OCTET_TEXT = tuple(chr(b) if b in _PLAIN else "\\%03d" % b for b in range(256))

#: RCODE mnemonics (RFC 1035 section 4.1.1, RFC 2136, IANA DNS parameters).
RCODES = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
    6: "YXDOMAIN",
    7: "YXRRSET",
    8: "NXRRSET",
    9: "NOTAUTH",
    10: "NOTZONE",
}

#: Resource record TYPE mnemonics (IANA DNS parameters) for the common ones;
#: others are written ``TYPE<n>`` as RFC 3597 section 5 does.
QTYPES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 10: "NULL", 12: "PTR", 13: "HINFO",
    15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV", 35: "NAPTR", 39: "DNAME",
    41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 50: "NSEC3",
    52: "TLSA", 64: "SVCB", 65: "HTTPS", 99: "SPF", 252: "AXFR", 251: "IXFR",
    255: "ANY", 257: "CAA",
}


def rcode_text(rcode: int) -> str:
    """
    The mnemonic of an RCODE: ``NXDOMAIN``, or ``RCODE<n>`` when unnamed.
    """
    return RCODES.get(rcode) or f"RCODE{rcode}"


def qtype_text(qtype: int) -> str:
    """
    The mnemonic of a TYPE: ``AAAA``, or ``TYPE<n>`` (RFC 3597) when unnamed.
    """
    return QTYPES.get(qtype) or f"TYPE{qtype}"


class DnsMessage:
    """
    The header and first question of one DNS message.

    A plain slotted class rather than an attrs frozen record: one is made for
    every DNS message in the agent's hot path and read at once by the DNS
    analyser, never kept nor sent on; the attrs initialiser cost about as
    much as the rest of L{parse_message}. Instances compare equal field by
    field; treat them as read-only.

    :ivar id: message id.
    :ivar qr: True for a response.
    :ivar opcode: 0 for a standard query.
    :ivar rcode: response code (low 4 bits; EDNS extended bits not applied).
    :ivar qdcount: questions; ``ancount`` answers.
    :ivar qname: first question's name, lower case, no trailing dot
        (``""`` for the root or when there is no question); octets outside
        printable ASCII are written ``\\DDD`` as dig(1) does.
    :ivar qtype: first question's TYPE (0 when none).
    """

    __slots__ = ("id", "qr", "opcode", "rcode", "qdcount", "ancount", "qname", "qtype")

    def __init__(self, id: int, qr: bool, opcode: int, rcode: int,
                 qdcount: int, ancount: int, qname: str, qtype: int) -> None:
        self.id = id
        self.qr = qr
        self.opcode = opcode
        self.rcode = rcode
        self.qdcount = qdcount
        self.ancount = ancount
        self.qname = qname
        self.qtype = qtype

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not DnsMessage:
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # equal by value, not read-only

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"DnsMessage({fields})"


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    """
    Read a possibly compressed domain name.

    :returns: the name and the offset just past it in the message.
    :raises ValueError: on a loop, a bad label type or a name over 255 octets.
    """
    labels = []
    length = 1  # octets so far, counting the root label's length octet
    end = None
    pointers = 0
    while True:
        size = data[offset]
        if size == 0:
            offset += 1
            break
        kind = size & 0xC0
        if kind == 0xC0:
            pointers += 1
            if pointers > _MAX_POINTERS:
                raise ValueError("compression loop")
            if end is None:
                end = offset + 2
            offset = ((size & 0x3F) << 8) | data[offset + 1]
            continue
        if kind:
            raise ValueError("bad label type")
        start = offset + 1
        offset = start + size
        label = data[start:offset]
        if len(label) != size:
            raise ValueError("truncated label")
        length += size + 1
        if length > _MAX_NAME:
            raise ValueError("name too long")
        labels.append(label)
    if end is None:
        end = offset
    name = b".".join(labels)
    # Once the plain octets are deleted only the separators may be left;
    # anything else (a dot or an odd octet inside a label) needs escaping.
    if name.translate(None, _PLAIN) == b"." * (len(labels) - 1):
        return name.decode("ascii").lower(), end
    return ".".join(map(_label_text, labels)).lower(), end


def _label_text(label: bytes) -> str:
    """
    A label as text, octets other than L{_PLAIN} ones written ``\\DDD``.
    """
    return "".join(map(_OCTET_TEXT.__getitem__, label))


def parse_message(data: bytes) -> Optional[DnsMessage]:
    """
    Parse a DNS message's header and first question.

    :param data: the message (for DNS over TCP, without the 2-octet length).
    :returns: the message, or None when it is not DNS (shorter than a header,
        a question that runs off the end, a bad name).
    """
    try:
        ident, flags, qd, an, _ns, _ar = _HEADER.unpack_from(data, 0)
        qname = ""
        qtype = 0
        if qd:
            qname, offset = _read_name(data, 12)
            qtype, _qclass = _TYPE_CLASS.unpack_from(data, offset)
        # Positional: keywords cost a sixth of the whole call.
        return DnsMessage(
            ident,  # id
            (flags & 0x8000) != 0,  # qr
            (flags >> 11) & 0xF,  # opcode
            flags & 0xF,  # rcode
            qd,  # qdcount
            an,  # ancount
            qname,
            qtype,
        )
    except Exception:
        return None


def answers_of(data: bytes, limit: int = 8) -> Optional[tuple[str, ...]]:
    """
    The answer section of a response, dissected by scapy's DNS layer.

    :param data: the whole message.
    :param limit: most answers to return.
    :returns: answers as ``"TYPE value"`` strings (``"A 192.0.2.1"``,
        ``"CNAME www.example.net"``; octets outside printable ASCII written
        ``\\DDD``), or None when scapy cannot dissect it.
    """
    from scapy.layers.dns import DNS  # deferred: scapy import costs ~0.2 s

    if len(data) < _HEADER.size:
        # scapy "dissects" a short message into a default header.
        return None
    try:
        message = DNS(data)
        records = message.an or []
        out = []
        for rr in list(records)[:limit]:
            out.append(f"{qtype_text(rr.type)} {_rdata_text(rr)}")
        return tuple(out)
    except Exception:
        return None


def _rdata_text(rr) -> str:
    for name in ("rdata", "exchange", "target"):
        if hasattr(rr, name):
            value = getattr(rr, name)
            break
    else:
        return "?"
    if isinstance(value, list):
        value = b" ".join(v if isinstance(v, bytes) else str(v).encode() for v in value)
    if isinstance(value, bytes):
        text = _escaped(value)
        return text[:-1] if text.endswith(".") else text
    return _escaped(str(value).encode("utf-8"))


def _escaped(octets: bytes) -> str:
    """
    Record data as text a terminal can show: octets outside printable ASCII
    (control characters, escape sequences) and the backslash are written
    ``\\DDD`` as dig(1) does.
    """
    return "".join(
        chr(b) if 0x20 <= b <= 0x7E and b != 0x5C else "\\%03d" % b
        for b in octets
    )
