"""
Tests for L{loopy.wire}: records as compressed, chunked JSON, and the bounds
every box is held to.
"""

from __future__ import annotations

import json
import random
import zlib

from attrs import frozen
from twisted.internet.error import ConnectionClosed
from twisted.internet.testing import StringTransport
from twisted.protocols import amp
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase

from loopy import wire
from loopy.errors import WireError
from loopy.model import AgentReport, DnsSnapshot, FleetView, IpSnapshot, TcpSnapshot
from loopy.wire import (
    CHUNK_BYTES,
    MAX_BOX_BYTES,
    MAX_BOX_KEYS,
    MAX_RECORD_BYTES,
    BoundedAMP,
    GetFleet,
    Record,
    Report,
    decode_record,
    encode_record,
)
from loopy import testing
from loopy.testing import Ping, box_bytes


def _compressed_json(value) -> bytes:
    return zlib.compress(json.dumps(value).encode("utf-8"))


def _big_report() -> AgentReport:
    """
    A report whose compressed JSON needs three chunks: 150,000 random octets,
    hex-encoded, compress to about 160,000.
    """
    noise = random.Random(7).randbytes(150_000).hex()
    return testing.report(analysers={"blob": {"noise": noise}, "ip": testing.ip_snapshot()})


class EncodeDecodeTests(SynchronousTestCase):
    """
    L{encode_record} and L{decode_record}.
    """

    def test_report_round_trip(self):
        """
        A report with every built-in snapshot decodes equal to the original,
        snapshots as their record types.
        """
        report = testing.report()
        decoded = decode_record(encode_record(report), AgentReport)
        self.assertEqual(decoded, report)
        self.assertIsInstance(decoded.analysers["ip"], IpSnapshot)
        self.assertIsInstance(decoded.analysers["tcp"], TcpSnapshot)
        self.assertIsInstance(decoded.analysers["dns"], DnsSnapshot)

    def test_view_round_trip(self):
        """
        A fleet view, with a report nested in an entry, round-trips.
        """
        view = testing.view()
        self.assertEqual(decode_record(encode_record(view), FleetView), view)

    def test_unknown_analyser_is_dict(self):
        """
        Snapshots of analysers this process does not know travel as the
        plain JSON objects they were sent as.
        """
        report = testing.report()
        decoded = decode_record(encode_record(report), AgentReport)
        self.assertEqual(decoded.analysers["arp"], {"requests": 3, "replies": [1, 2]})
        self.assertIs(type(decoded.analysers["arp"]), dict)

    def test_registered_snapshot_is_record(self):
        """
        After L{wire.register_snapshot}, that analyser's snapshots decode as
        its record type.
        """

        @frozen
        class ArpSnapshot:
            requests: int
            replies: tuple[int, ...]

        wire.register_snapshot("arp", ArpSnapshot)
        self.addCleanup(wire.SNAPSHOT_TYPES.pop, "arp")
        decoded = decode_record(encode_record(testing.report()), AgentReport)
        self.assertEqual(decoded.analysers["arp"], ArpSnapshot(3, (1, 2)))

    def test_compressed(self):
        """
        The encoding is zlib-compressed, compact JSON.
        """
        report = testing.report()
        raw = zlib.decompress(encode_record(report))
        self.assertEqual(json.loads(raw), wire.to_json_value(report))
        self.assertNotIn(b", ", raw)

    def test_encode_too_large(self):
        """
        A record whose JSON is over L{MAX_RECORD_BYTES} is not encoded.
        """
        self.patch(wire, "MAX_RECORD_BYTES", 100)
        error = self.assertRaises(WireError, encode_record, testing.report())
        self.assertRegex(str(error), r"^record of \d+ bytes exceeds 100$")

    def test_not_zlib(self):
        error = self.assertRaises(WireError, decode_record, b"plain text", AgentReport)
        self.assertTrue(str(error).startswith("not zlib data: "), str(error))

    def test_empty(self):
        error = self.assertRaises(WireError, decode_record, b"", AgentReport)
        self.assertEqual(str(error), "record is not exactly one complete zlib stream")

    def test_truncated(self):
        """
        A zlib stream cut short is refused before any JSON is parsed.
        """
        data = encode_record(testing.report())
        error = self.assertRaises(WireError, decode_record, data[:-20], AgentReport)
        self.assertEqual(str(error), "record is not exactly one complete zlib stream")

    def test_trailing_bytes(self):
        """
        Bytes after the end of the zlib stream are refused.
        """
        data = encode_record(testing.report())
        error = self.assertRaises(WireError, decode_record, data + b"junk", AgentReport)
        self.assertEqual(str(error), "record is not exactly one complete zlib stream")

    def test_not_json(self):
        error = self.assertRaises(
            WireError, decode_record, zlib.compress(b"{nope"), AgentReport
        )
        self.assertIn("JSONDecodeError", str(error))

    def test_wrong_shape(self):
        """
        JSON that does not structure into the record type is refused, with
        what is missing in the message.
        """
        for value in [[1, 2], {"agent_id": "a"}, "report", None]:
            self.assertRaises(
                WireError, decode_record, _compressed_json(value), AgentReport
            )
        error = self.assertRaises(
            WireError, decode_record, _compressed_json({"agent_id": "a"}), AgentReport
        )
        self.assertIn("KeyError('hostname')", str(error))

    def test_analysers_not_object(self):
        value = wire.to_json_value(testing.report())
        value["analysers"] = ["ip"]
        error = self.assertRaises(
            WireError, decode_record, _compressed_json(value), AgentReport
        )
        self.assertIn("analysers must be an object", str(error))

    def test_validators_apply(self):
        """
        A value the record's validators refuse (a negative seq) is refused.
        """
        value = wire.to_json_value(testing.report())
        value["seq"] = -1
        error = self.assertRaises(
            WireError, decode_record, _compressed_json(value), AgentReport
        )
        self.assertIn("'seq' must be >= 0: -1", str(error))

    def test_message_bounded(self):
        """
        An error message quoting the peer's data is at most 500 characters.
        """
        value = wire.to_json_value(testing.report())
        value["epoch"] = value["seq"] = value["ts"] = "x" * 5000
        error = self.assertRaises(
            WireError, decode_record, _compressed_json(value), AgentReport
        )
        self.assertEqual(len(str(error)), 500)

    def test_largest_record(self):
        """
        A record of exactly L{MAX_RECORD_BYTES} of JSON decodes.
        """
        raw = json.dumps(wire.to_json_value(testing.report())).encode("utf-8")
        raw += b" " * (MAX_RECORD_BYTES - len(raw))
        self.assertEqual(
            decode_record(zlib.compress(raw, 1), AgentReport), testing.report()
        )

    def test_too_large(self):
        """
        Valid JSON one octet over L{MAX_RECORD_BYTES} is refused.
        """
        raw = json.dumps(wire.to_json_value(testing.report())).encode("utf-8")
        raw += b" " * (MAX_RECORD_BYTES + 1 - len(raw))
        error = self.assertRaises(
            WireError, decode_record, zlib.compress(raw, 1), AgentReport
        )
        self.assertEqual(str(error), f"record exceeds {MAX_RECORD_BYTES} bytes")

    def test_bomb_not_inflated(self):
        """
        A zlib bomb is refused after inflating at most one octet more than
        the bound, not all of it.
        """
        inflated = []
        real = zlib.decompressobj

        class CountingInflater:
            def __init__(self):
                self._inflater = real()

            def decompress(self, data, max_length=0):
                out = self._inflater.decompress(data, max_length)
                inflated.append(len(out))
                return out

            @property
            def unconsumed_tail(self):
                return self._inflater.unconsumed_tail

        self.patch(zlib, "decompressobj", CountingInflater)
        self.patch(wire, "MAX_RECORD_BYTES", 1000)
        bomb = zlib.compress(b" " * 10_000_000, 9)
        error = self.assertRaises(WireError, decode_record, bomb, AgentReport)
        self.assertEqual(str(error), "record exceeds 1000 bytes")
        self.assertEqual(inflated, [1001])


class RecordArgumentTests(SynchronousTestCase):
    """
    L{Record} as an AMP argument: chunked over keys C{name}, C{name.1} ….
    """

    def test_one_chunk(self):
        strings = {}
        Record(AgentReport).toBox(b"report", strings, {"report": testing.report()}, None)
        self.assertEqual(list(strings), [b"report"])
        self.assertEqual(strings[b"report"], encode_record(testing.report()))

    def test_chunks(self):
        """
        Compressed JSON longer than L{CHUNK_BYTES} is split into chunks of
        that size, the last one shorter, and joined again on receipt.
        """
        report = _big_report()
        data = encode_record(report)
        self.assertTrue(2 * CHUNK_BYTES < len(data) < 3 * CHUNK_BYTES, len(data))
        strings = {}
        Record(AgentReport).toBox(b"report", strings, {"report": report}, None)
        self.assertEqual(list(strings), [b"report", b"report.1", b"report.2"])
        self.assertEqual(
            [len(v) for v in strings.values()],
            [CHUNK_BYTES, CHUNK_BYTES, len(data) - 2 * CHUNK_BYTES],
        )
        objects = {}
        Record(AgentReport).fromBox(b"report", strings, objects, None)
        self.assertEqual(objects, {"report": report})

    def test_missing_chunk(self):
        """
        A missing middle chunk ends the record early, so it does not decode.
        """
        strings = {}
        Record(AgentReport).toBox(b"report", strings, {"report": _big_report()}, None)
        del strings[b"report.1"]
        self.assertRaises(
            WireError, Record(AgentReport).fromBox, b"report", strings, {}, None
        )

    def test_missing(self):
        self.assertRaises(WireError, Record(AgentReport).fromBox, b"report", {}, {}, None)
        self.assertRaises(WireError, Record(AgentReport).toBox, b"report", {}, {}, None)

    def test_optional(self):
        strings, objects = {}, {}
        Record(AgentReport, optional=True).toBox(b"report", strings, {}, None)
        self.assertEqual(strings, {})
        Record(AgentReport, optional=True).fromBox(b"report", strings, objects, None)
        self.assertEqual(objects, {"report": None})


class Peer(BoundedAMP):
    """
    The far end of an AMP pair: keeps reports, answers with a fixed view.
    """

    def __init__(self):
        BoundedAMP.__init__(self)
        self.reports = []
        self.errors = []
        self.on_protocol_error = self.errors.append

    @Report.responder
    def report(self, report):
        self.reports.append(report)
        return {"accepted": True}

    @GetFleet.responder
    def get_fleet(self):
        return {"view": testing.view()}

    @Ping.responder
    def ping(self):
        return {}


class RawReport(amp.Command):
    """
    L{Report} as a peer that does not encode its record would send it.
    """

    commandName = b"Report"
    arguments = [(b"report", amp.String())]
    response = [(b"accepted", amp.Boolean())]


class AmpPairTests(SynchronousTestCase):
    """
    Records through a real AMP pair over an in-memory connection.
    """

    def setUp(self):
        self.client, self.server, self.pump = connectedServerAndClient(Peer, BoundedAMP)

    def test_report(self):
        report = testing.report()
        d = self.client.callRemote(Report, report=report)
        self.pump.flush()
        self.assertEqual(self.successResultOf(d), {"accepted": True})
        self.assertEqual(self.server.reports, [report])

    def test_chunked_report(self):
        """
        A report of several chunks arrives whole.
        """
        report = _big_report()
        d = self.client.callRemote(Report, report=report)
        self.pump.flush()
        self.assertEqual(self.successResultOf(d), {"accepted": True})
        self.assertEqual(self.server.reports, [report])

    def test_view_in_answer(self):
        d = self.client.callRemote(GetFleet)
        self.pump.flush()
        self.assertEqual(self.successResultOf(d), {"view": testing.view()})

    def test_bad_record_drops_peer(self):
        """
        A record that does not decode is the peer's protocol error: the
        connection is dropped and C{on_protocol_error} told, and nothing is
        logged as an unhandled error.
        """
        bomb = zlib.compress(b" " * (MAX_RECORD_BYTES + 1), 9)
        d = self.client.callRemote(RawReport, report=bomb)
        self.pump.flush()
        self.failureResultOf(d, ConnectionClosed)
        self.assertEqual(self.server.reports, [])
        self.assertEqual(
            self.server.errors,
            [f"bad Report arguments: record exceeds {MAX_RECORD_BYTES} bytes"],
        )
        self.assertTrue(self.pump.serverIO.disconnected)
        self.assertEqual(self.flushLoggedErrors(), [])


class BoundedAMPTests(SynchronousTestCase):
    """
    L{BoundedAMP} drops a peer whose box has too many keys or octets.
    """

    def setUp(self):
        self.errors = []
        self.proto = Peer()
        self.proto.on_protocol_error = self.errors.append
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def ping(self, extra_keys=0, value=b"", ask=b"1"):
        """
        A Ping box with C{extra_keys} keys C{k0000} … holding C{value}.
        """
        pairs = [(b"_ask", ask), (b"_command", b"Ping")]
        pairs += [(b"k%04d" % i, value) for i in range(extra_keys)]
        return box_bytes(pairs)

    def test_largest_box(self):
        """
        A box of exactly L{MAX_BOX_KEYS} keys is answered.
        """
        self.proto.dataReceived(self.ping(MAX_BOX_KEYS - 2))
        self.assertEqual(self.transport.value(), box_bytes([(b"_answer", b"1")]))
        self.assertFalse(self.transport.disconnected)
        self.assertEqual(self.errors, [])

    def test_too_many_keys(self):
        """
        A box of L{MAX_BOX_KEYS} + 1 keys is not answered; the peer is
        dropped and anything it sent after is ignored.
        """
        self.proto.dataReceived(self.ping(MAX_BOX_KEYS - 1) + self.ping(ask=b"2"))
        self.assertEqual(self.transport.value(), b"")
        self.assertTrue(self.transport.disconnected)
        # 4+1 (_ask) + 8+4 (_command) + 255 keys of 5 octets
        self.assertEqual(self.errors, ["box over bounds (257 keys, 1292 bytes)"])

    def test_keys_counted_per_box(self):
        """
        The key bound is per box: boxes of 200 keys one after the other pass.
        """
        self.proto.dataReceived(self.ping(198, ask=b"1") + self.ping(198, ask=b"2"))
        self.assertEqual(
            self.transport.value(),
            box_bytes([(b"_answer", b"1")]) + box_bytes([(b"_answer", b"2")]),
        )
        self.assertEqual(self.errors, [])

    def test_too_many_bytes(self):
        """
        A box over L{MAX_BOX_BYTES} (keys and values) drops the peer at the
        value that crosses the bound.
        """
        self.proto.dataReceived(self.ping(70, value=b"x" * 60000))
        self.assertEqual(self.transport.value(), b"")
        self.assertTrue(self.transport.disconnected)
        # 17 octets of _ask and _command, then 60005 per key.
        self.assertEqual(self.errors, ["box over bounds (72 keys, 4200367 bytes)"])

    def test_exactly_max_bytes(self):
        """
        A box of exactly L{MAX_BOX_BYTES} octets is answered.
        """
        full, rest = divmod(MAX_BOX_BYTES - 17, 60005)
        pairs = [(b"_ask", b"1"), (b"_command", b"Ping")]
        pairs += [(b"k%04d" % i, b"x" * 60000) for i in range(full)]
        pairs.append((b"last!", b"y" * (rest - 5)))
        self.proto.dataReceived(box_bytes(pairs))
        self.assertEqual(self.transport.value(), box_bytes([(b"_answer", b"1")]))
        self.assertEqual(self.errors, [])

    def test_default_on_protocol_error(self):
        """
        Without an C{on_protocol_error}, a peer past a bound is still dropped.
        """
        proto = BoundedAMP()
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(self.ping(MAX_BOX_KEYS))
        self.assertTrue(transport.disconnected)
