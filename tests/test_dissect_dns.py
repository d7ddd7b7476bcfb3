# -*- test-case-name: tests.test_dissect_dns -*-
"""
Tests for L{loopy.dissect.dns}: the hand-written header and question parser,
the mnemonics, and answer dissection with scapy.
"""

from __future__ import annotations

import struct

from scapy.layers.dns import DNS, DNSQR, DNSRR, DNSRRMX
from twisted.trial.unittest import SynchronousTestCase

from loopy.dissect.dns import (
    DnsMessage,
    answers_of,
    parse_message,
    qtype_text,
    rcode_text,
)
from tests.test_headers import LO_DNS_NXDOMAIN, DissectorTestMixin, frame_of


def header(ident=0x0101, flags=0x0100, qd=1, an=0, ns=0, ar=0) -> bytes:
    """
    A DNS header (RFC 1035 section 4.1.1); by default a query with one
    question.
    """
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


def labels(*parts: bytes) -> bytes:
    """
    A name in wire form: each part behind its length octet, then the root.
    """
    return b"".join(bytes([len(p)]) + p for p in parts) + b"\x00"


def pointer(offset: int) -> bytes:
    """
    A compression pointer to C{offset} (RFC 1035 section 4.1.4).
    """
    return struct.pack("!H", 0xC000 | offset)


TYPE_A_IN = struct.pack("!HH", 1, 1)


class ParseMessageTests(DissectorTestMixin, SynchronousTestCase):
    """
    L{parse_message} on well-formed messages.
    """

    def test_query(self):
        """
        A query's header and question; the name comes out lower case without
        its trailing dot.
        """
        data = bytes(DNS(id=0x1234, rd=1, qd=DNSQR(qname="WWW.Example.COM.",
                                                    qtype="AAAA")))
        self.assertEqual(parse_message(data), DnsMessage(
            id=0x1234, qr=False, opcode=0, rcode=0, qdcount=1, ancount=0,
            qname="www.example.com", qtype=28))

    def test_capturedExchange(self):
        """
        The query and NXDOMAIN response captured on lo.
        """
        query, response = [frame_of(h)[42:] for _, h in LO_DNS_NXDOMAIN]
        self.assertEqual(parse_message(query), DnsMessage(
            id=0x8D83, qr=False, opcode=0, rcode=0, qdcount=1, ancount=0,
            qname="nosuch.example", qtype=1))
        self.assertEqual(parse_message(response), DnsMessage(
            id=0x8D83, qr=True, opcode=0, rcode=3, qdcount=1, ancount=0,
            qname="nosuch.example", qtype=1))

    def test_responseWithAnswers(self):
        """
        A response counts its answers; only the question is read.
        """
        data = bytes(DNS(id=9, qr=1, aa=1, qd=DNSQR(qname="example.org",
                                                     qtype="MX"), an=[
            DNSRRMX(rrname="example.org", preference=10, exchange="mx.example.org"),
            DNSRRMX(rrname="example.org", preference=20, exchange="mx2.example.org"),
        ]))
        self.assertEqual(parse_message(data), DnsMessage(
            id=9, qr=True, opcode=0, rcode=0, qdcount=1, ancount=2,
            qname="example.org", qtype=15))

    def test_opcode(self):
        """
        The 4-bit opcode: NOTIFY (4) and UPDATE (5).
        """
        for opcode in (4, 5, 15):
            data = bytes(DNS(opcode=opcode, qd=DNSQR(qname="example.org")))
            self.assertEqual(parse_message(data).opcode, opcode)

    def test_rcode(self):
        """
        The rcode is the low 4 bits of the flags.
        """
        for rcode in (2, 3, 11, 15):
            data = header(flags=0x8180 | rcode) + labels(b"a") + TYPE_A_IN
            message = parse_message(data)
            self.assertEqual((message.qr, message.rcode), (True, rcode))

    def test_noQuestion(self):
        """
        Without a question the name is empty and the type 0, whatever
        follows the header.
        """
        message = parse_message(header(qd=0, an=1) + b"\xff\xff\xff")
        self.assertEqual((message.qdcount, message.ancount, message.qname,
                          message.qtype),
                         (0, 1, "", 0))

    def test_rootName(self):
        """
        The root is the empty name.
        """
        data = header() + b"\x00" + struct.pack("!HH", 2, 1)
        message = parse_message(data)
        self.assertEqual((message.qname, message.qtype), ("", 2))

    def test_forwardPointer(self):
        """
        A question name that ends in a compression pointer: the rest of the
        name is read where it points, and the type right after the pointer.
        """
        # www + pointer at 12..17, type/class at 18..21, example.com at 22.
        data = (header() + b"\x03www" + pointer(22) + struct.pack("!HH", 16, 1)
                + labels(b"example", b"com"))
        message = parse_message(data)
        self.assertEqual((message.qname, message.qtype), ("www.example.com", 16))

    def test_pointerChain(self):
        """
        A pointer to a name that ends in another pointer.
        """
        # Offsets in the message are in the comments.
        question = b"\x01a" + pointer(22)  # 12..15
        tail = struct.pack("!HH", 1, 1)  # 16..19
        filler = b"\xee\xee"  # 20..21
        middle = b"\x01b" + pointer(26)  # 22..25
        end = labels(b"example", b"com")  # 26..
        data = header() + question + tail + filler + middle + end
        self.assertEqual(parse_message(data).qname, "a.b.example.com")

    def test_oddOctets(self):
        """
        Octets outside printable ASCII, the dot and the backslash are written
        ``\\DDD``; upper case is lowered.
        """
        data = header() + labels(b"A.b\\ \x00\xff~!", b"Com") + TYPE_A_IN
        self.assertEqual(parse_message(data).qname,
                         "a\\046b\\092\\032\\000\\255~!.com")

    def test_dotInsideLabel(self):
        """
        A dot inside a label is written ``\\046``, so that C{a.b} in one
        label differs from the two labels C{a} and C{b}.
        """
        one = parse_message(header() + labels(b"a.b", b"c") + TYPE_A_IN)
        two = parse_message(header() + labels(b"a", b"b", b"c") + TYPE_A_IN)
        self.assertEqual((one.qname, two.qname), ("a\\046b.c", "a.b.c"))

    def test_everyOctet(self):
        """
        Every octet value in a label: printable ASCII but the dot and the
        backslash as it is (lowered), the rest as ``\\DDD`` with three
        decimal digits; also behind a compression pointer.
        """
        def expected(octets):
            return "".join(
                chr(b).lower() if 0x21 <= b <= 0x7E and b not in (0x2E, 0x5C)
                else "\\%03d" % b
                for b in octets)

        for low in (0, 128):
            parts = [bytes(range(start, min(start + 63, low + 128)))
                     for start in range(low, low + 128, 63)]
            want = ".".join(expected(part) for part in parts)
            data = header() + labels(*parts) + TYPE_A_IN
            self.assertEqual(parse_message(data).qname, want)
            # The question: a pointer to the same name, after the type.
            data = header() + pointer(18) + TYPE_A_IN + labels(*parts)
            self.assertEqual(parse_message(data).qname, want)

    def test_longestName(self):
        """
        A name of 255 octets in wire form (RFC 1035 section 3.1: labels and
        length octets, the root's included) is allowed; its text has 253
        characters.
        """
        name = labels(b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 61)
        self.assertEqual(len(name), 255)
        message = parse_message(header() + name + TYPE_A_IN)
        self.assertEqual(len(message.qname), 253)
        self.assertEqual(message.qname.split("."),
                         ["a" * 63, "b" * 63, "c" * 63, "d" * 61])


class DnsMessageTests(SynchronousTestCase):
    """
    L{DnsMessage}: equality and text.
    """

    def message(self, **changes):
        fields = dict(id=1, qr=True, opcode=0, rcode=3, qdcount=1, ancount=0,
                      qname="example.com", qtype=28)
        fields.update(changes)
        return DnsMessage(**fields)

    def test_equality(self):
        """
        Messages are equal when every field is; any one field differing
        makes them unequal; a message equals nothing else.
        """
        self.assertEqual(self.message(), self.message())
        self.assertFalse(self.message() != self.message())
        for name, value in [("id", 2), ("qr", False), ("opcode", 4),
                            ("rcode", 0), ("qdcount", 2), ("ancount", 1),
                            ("qname", "example.org"), ("qtype", 1)]:
            self.assertNotEqual(self.message(**{name: value}), self.message(), name)
        self.assertNotEqual(self.message(), (1, True, 0, 3, 1, 0, "example.com", 28))
        self.assertNotEqual(self.message(), None)

    def test_repr(self):
        """
        The text names every field and its value.
        """
        self.assertEqual(
            repr(self.message()),
            "DnsMessage(id=1, qr=True, opcode=0, rcode=3, qdcount=1, ancount=0,"
            " qname='example.com', qtype=28)")


class MalformedMessageTests(DissectorTestMixin, SynchronousTestCase):
    """
    L{parse_message} on bytes that are not a DNS message.
    """

    def test_shortHeader(self):
        """
        Fewer than 12 octets is no message.
        """
        for n in range(12):
            self.assertIsNone(parse_message(header(qd=0)[:n]))
        self.assertIsNotNone(parse_message(header(qd=0)))

    def test_everyTruncation(self):
        """
        A query cut anywhere before the end of its question is malformed;
        cut after (in its EDNS record) it still parses.
        """
        question = labels(b"www", b"example", b"com") + TYPE_A_IN
        opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
        data = header(ar=1) + question + opt
        parsed = [n for n in range(len(data) + 1)
                  if parse_message(data[:n]) is not None]
        self.assertEqual(parsed, list(range(12 + len(question), len(data) + 1)))

    def test_truncatedLabel(self):
        """
        A label longer than what is left of the message is malformed.
        """
        self.assertIsNone(parse_message(header() + b"\x05abc"))

    def test_pointerToItself(self):
        """
        A pointer that points at itself gives None (and does not hang).
        """
        self.assertIsNone(parse_message(header() + pointer(12) + TYPE_A_IN))

    def test_pointerCycle(self):
        """
        Two pointers that point at each other give None.
        """
        data = header() + pointer(14) + pointer(12) + TYPE_A_IN
        self.assertIsNone(parse_message(data))

    def test_labelLoop(self):
        """
        A label followed by a pointer back to it: the name grows without end
        until it passes 255 octets, then None.
        """
        data = header() + b"\x01a" + pointer(12) + TYPE_A_IN
        self.assertIsNone(parse_message(data))

    def test_pointerPastEnd(self):
        """
        A pointer beyond the message, or cut in half, gives None.
        """
        self.assertIsNone(parse_message(header() + pointer(0x3FFF) + TYPE_A_IN))
        self.assertIsNone(parse_message(header() + b"\xc0"))

    def test_reservedLabelTypes(self):
        """
        The label types 0x40 (extended, RFC 6891) and 0x80 (reserved) are
        refused.
        """
        for first in (0x40, 0x41, 0x80, 0xBF):
            data = header() + bytes([first]) + b"x" * 70 + TYPE_A_IN
            self.assertIsNone(parse_message(data), hex(first))

    def test_nameTooLong(self):
        """
        A name of 256 octets in wire form is too long, whether written out or
        put together from compression pointers.
        """
        name = labels(b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 62)
        self.assertEqual(len(name), 256)
        self.assertIsNone(parse_message(header() + name + TYPE_A_IN))
        # The question is 3 labels (192 octets) and a pointer to 2 more.
        front = b"".join(bytes([63]) + bytes([c]) * 63 for c in b"abc")
        rest = labels(b"d" * 30, b"e" * 31)
        data = header() + front + pointer(12 + len(front) + 2 + 4) + TYPE_A_IN
        self.assertEqual(len(front) + len(rest), 256)
        self.assertIsNone(parse_message(data + rest))
        shorter = labels(b"d" * 30, b"e" * 30)
        self.assertEqual(len(parse_message(data + shorter).qname), 253)

    def test_garbage(self):
        """
        Random bytes after a header with one question parse or give None;
        they never raise.
        """
        import random

        rng = random.Random(53)
        outcomes = set()
        for _ in range(3000):
            data = header() + rng.randbytes(rng.randrange(40))
            message = parse_message(data)
            outcomes.add(message is None)
            if message is not None:
                self.assertEqual(message.qdcount, 1)
        self.assertEqual(outcomes, {True, False})


class MnemonicTests(SynchronousTestCase):
    """
    L{rcode_text} and L{qtype_text}.
    """

    def test_rcodes(self):
        """
        Named rcodes by name; the rest as ``RCODE<n>``.
        """
        self.assertEqual(
            [rcode_text(n) for n in (0, 1, 2, 3, 4, 5, 10, 11, 15, 23)],
            ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
             "NOTZONE", "RCODE11", "RCODE15", "RCODE23"],
        )

    def test_qtypes(self):
        """
        Named types by name; the rest as ``TYPE<n>`` (RFC 3597 section 5).
        """
        self.assertEqual(
            [qtype_text(n) for n in (1, 28, 5, 15, 16, 65, 255, 0, 65280, 65535)],
            ["A", "AAAA", "CNAME", "MX", "TXT", "HTTPS", "ANY", "TYPE0",
             "TYPE65280", "TYPE65535"],
        )


class AnswersTests(DissectorTestMixin, SynchronousTestCase):
    """
    L{answers_of}: answer records dissected by scapy, as text.
    """

    def response(self, *answers, **fields):
        return bytes(DNS(id=1, qr=1, qd=DNSQR(qname="example.com"),
                         an=list(answers), **fields))

    def test_records(self):
        """
        A, AAAA, CNAME, MX and TXT records; names without the trailing dot.
        """
        data = self.response(
            DNSRR(rrname="www.example.com", type="CNAME", rdata="web.example.net"),
            DNSRR(rrname="web.example.net", type="A", rdata="192.0.2.1"),
            DNSRR(rrname="web.example.net", type="AAAA", rdata="2001:db8::1"),
            DNSRRMX(rrname="example.com", preference=10, exchange="mail.example.com"),
            DNSRR(rrname="example.com", type="TXT", rdata=[b"v=spf1 -all", b"x"]),
        )
        self.assertEqual(answers_of(data), (
            "CNAME web.example.net",
            "A 192.0.2.1",
            "AAAA 2001:db8::1",
            "MX mail.example.com",
            "TXT v=spf1 -all x",
        ))

    def test_limit(self):
        """
        At most C{limit} answers, 8 by default, the first ones.
        """
        data = self.response(*[
            DNSRR(rrname="example.com", type="A", rdata=f"192.0.2.{i}")
            for i in range(1, 11)
        ])
        self.assertEqual(answers_of(data),
                         tuple(f"A 192.0.2.{i}" for i in range(1, 9)))
        self.assertEqual(answers_of(data, limit=2), ("A 192.0.2.1", "A 192.0.2.2"))

    def test_noAnswers(self):
        """
        A response without answers has none; so has a query.
        """
        self.assertEqual(answers_of(self.response(rcode=3)), ())
        self.assertEqual(answers_of(bytes(DNS(qd=DNSQR(qname="a.example")))), ())

    def test_unknownType(self):
        """
        A type scapy does not know: ``TYPE<n>`` and its data.
        """
        data = self.response(DNSRR(rrname="example.com", type=65280, rdata=b"ok"))
        self.assertEqual(answers_of(data), ("TYPE65280 ok",))

    def test_controlOctetsEscaped(self):
        """
        Octets outside printable ASCII in record data (a TXT record with a
        terminal escape sequence here) are written ``\\DDD`` and never reach
        a terminal as they are.
        """
        data = self.response(
            DNSRR(rrname="example.com", type="TXT", rdata=[b"a\x1b[2J\xffb\\"]),
            DNSRR(rrname="example.com", type="CNAME", rdata=b"t\x07ab.example."),
        )
        self.assertEqual(answers_of(data), (
            "TXT a\\027[2J\\255b\\092",
            "CNAME t\\007ab.example",
        ))

    def test_garbage(self):
        """
        Bytes scapy cannot dissect as DNS give None: garbage, anything
        shorter than a header, a truncated answer.
        """
        data = self.response(DNSRR(rrname="example.com", type="A",
                                   rdata="192.0.2.1"))
        self.assertIsNone(answers_of(b"garbage"))
        for n in range(12):
            self.assertIsNone(answers_of(data[:n]), n)
        self.assertIsNone(answers_of(data[:-2]))
        self.assertEqual(answers_of(data), ("A 192.0.2.1",))
