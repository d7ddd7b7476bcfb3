# -*- test-case-name: tests.test_wire -*-
"""
Every AMP command Loopy speaks, defined once.

Records travel as JSON (unstructured by cattrs), zlib-compressed and split
over as many AMP keys as needed, because AMP caps one value at 65,535 octets
(L{twisted.protocols.amp}).  Every box is bounded on receipt: at most
L{MAX_BOX_KEYS} keys and L{MAX_BOX_BYTES} octets, and a record at most
L{MAX_RECORD_BYTES} once decompressed.  A peer that breaks a bound is logged,
counted and disconnected (L{BoundedAMP}).

Commands, and who calls them:

=================  ============  ===========================================
command            caller        meaning
=================  ============  ===========================================
L{AgentHello}      agent → hub   "I am this agent, in this epoch"
L{Report}          agent → hub   one L{AgentReport}; answered once accepted
L{Watch}           UI → hub      push me L{FleetUpdate}s, with details of
                                 one agent (or none)
L{FleetUpdate}     hub → UI      the current L{FleetView}
L{GetFleet}        UI → hub      the current view, every agent in detail
L{SendAlert}       agent → hub   one new revision of an L{Alert}, sent the
                                 moment the agent's detectors raise,
                                 update or end it
L{AlertUpdate}     hub → UI      alerts that changed (new revision or
                                 acknowledged), pushed at once
L{AcknowledgeAlert} UI → hub     a user acknowledged an alert
L{PeerHello}       hub → hub     "I am this hub, in this epoch"
L{GossipPull}      hub → hub     "this is my digest: send what I lack"
=================  ============  ===========================================
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Callable

import cattrs
from attrs import field, frozen
from cattrs.preconf.json import make_converter
from twisted.internet.defer import fail
from twisted.logger import Logger
from twisted.protocols import amp

from loopy.errors import HistoryError, WireError
from loopy.history import History, HistoryQuery, SyncRanges, SyncRows
from loopy.model import (
    AgentReport,
    Alert,
    AlertEntry,
    DetectSnapshot,
    DnsSnapshot,
    FleetView,
    IpSnapshot,
    TcpSnapshot,
)

log = Logger()

#: Largest record, in octets of JSON, that a peer may send.
MAX_RECORD_BYTES = 8 * 1024 * 1024
#: Largest number of keys in one AMP box.
MAX_BOX_KEYS = 256
#: Largest AMP box, in octets of keys and values.
MAX_BOX_BYTES = 4 * 1024 * 1024
#: Octets of compressed JSON per AMP value (AMP's cap is 65,535).
CHUNK_BYTES = 60000

#: Analyser name to the record class of its snapshot.  Analysers from plugins
#: add theirs with L{register_snapshot}; names not here travel as dicts.
SNAPSHOT_TYPES: dict[str, type] = {
    "ip": IpSnapshot,
    "tcp": TcpSnapshot,
    "dns": DnsSnapshot,
    "detect": DetectSnapshot,
}


def register_snapshot(name: str, record_type: type) -> None:
    """
    Make reports carry analyser C{name}'s snapshots as C{record_type}.
    """
    SNAPSHOT_TYPES[name] = record_type


def _make_converter() -> cattrs.Converter:
    converter = make_converter()

    def unstructure_analysers(analysers: Any) -> dict:
        return {
            name: snap if isinstance(snap, dict) else converter.unstructure(snap)
            for name, snap in analysers.items()
        }

    def structure_analysers(value: Any, _type: Any) -> dict:
        if not isinstance(value, dict):
            raise WireError("analysers must be an object")
        out = {}
        for name, snap in value.items():
            record_type = SNAPSHOT_TYPES.get(name)
            out[name] = (
                converter.structure(snap, record_type) if record_type else snap
            )
        return out

    report_hooks = cattrs.gen.make_dict_structure_fn(
        AgentReport,
        converter,
        analysers=cattrs.gen.override(struct_hook=structure_analysers),
    )
    converter.register_structure_hook(AgentReport, report_hooks)
    converter.register_unstructure_hook(
        AgentReport,
        cattrs.gen.make_dict_unstructure_fn(
            AgentReport,
            converter,
            analysers=cattrs.gen.override(unstruct_hook=unstructure_analysers),
        ),
    )
    return converter


#: The one converter between records and JSON-shaped values.
converter = _make_converter()


def to_json_value(record: Any) -> Any:
    """
    Unstructure a record into JSON-shaped values (dicts, lists, str, numbers).
    """
    return converter.unstructure(record)


def encode_record(record: Any) -> bytes:
    """
    A record as compressed JSON.

    :raises WireError: if its JSON is larger than L{MAX_RECORD_BYTES}.
    """
    raw = json.dumps(
        converter.unstructure(record), separators=(",", ":")
    ).encode("utf-8")
    if len(raw) > MAX_RECORD_BYTES:
        raise WireError(f"record of {len(raw)} bytes exceeds {MAX_RECORD_BYTES}")
    return zlib.compress(raw, 1)


def decode_record(data: bytes, record_type: type) -> Any:
    """
    Inverse of L{encode_record}.

    :raises WireError: if the data is not zlib, is larger than
        L{MAX_RECORD_BYTES} decompressed, is not JSON, or does not structure
        into C{record_type}.
    """
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data, MAX_RECORD_BYTES + 1)
    except zlib.error as e:
        raise WireError(f"not zlib data: {e}") from None
    if len(raw) > MAX_RECORD_BYTES or inflater.unconsumed_tail:
        raise WireError(f"record exceeds {MAX_RECORD_BYTES} bytes")
    if inflater.unused_data or not inflater.eof:
        raise WireError("record is not exactly one complete zlib stream")
    try:
        value = json.loads(raw)
        return converter.structure(value, record_type)
    except WireError:
        raise
    except Exception as e:
        raise WireError(f"bad {record_type.__name__}: {e!r}"[:500]) from None


class Record(amp.Argument):
    """
    An AMP argument carrying one attrs record of a given type, compressed and
    split over keys C{name}, C{name.1}, C{name.2} ….
    """

    def __init__(self, record_type: type, optional: bool = False):
        amp.Argument.__init__(self, optional)
        self.record_type = record_type

    def toBox(self, name, strings, objects, proto):
        value = objects.get(name.decode("ascii"))
        if value is None:
            if self.optional:
                return
            raise WireError(f"missing record {name!r}")
        put_chunks(name, self.encode(value), strings)

    def fromBox(self, name, strings, objects, proto):
        if name not in strings:
            if self.optional:
                objects[name.decode("ascii")] = None
                return
            raise WireError(f"missing record {name!r}")
        objects[name.decode("ascii")] = self.decode(get_chunks(name, strings))

    def encode(self, value: Any) -> bytes:
        return encode_record(value)

    def decode(self, data: bytes) -> Any:
        return decode_record(data, self.record_type)


def put_chunks(name: bytes, data: bytes, strings: dict) -> None:
    """
    Put C{data} in a box under keys C{name}, C{name.1}, C{name.2} …, at
    most L{CHUNK_BYTES} each.
    """
    chunks = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]
    for index, chunk in enumerate(chunks or [b""]):
        key = name if index == 0 else name + b"." + str(index).encode("ascii")
        strings[key] = chunk


def get_chunks(name: bytes, strings: dict) -> bytes:
    """
    Inverse of L{put_chunks}.
    """
    parts = [strings[name]]
    index = 1
    while (key := name + b"." + str(index).encode("ascii")) in strings:
        parts.append(strings[key])
        index += 1
    return b"".join(parts)


class GossipEntries(Record):
    """
    A L{loopy.hub.mesh.Batch}: entries travel as the JSON they were made
    or received as (L{loopy.hub.mesh.encode_batch}), not re-encoded per
    peer.
    """

    def __init__(self):
        Record.__init__(self, object)

    def encode(self, value: Any) -> bytes:
        from loopy.hub.mesh import encode_batch

        return encode_batch(value)

    def decode(self, data: bytes) -> Any:
        from loopy.hub.mesh import PULL_BYTES, decode_batch

        # One entry of up to a whole record, or a budget's worth of entries.
        return decode_batch(data, MAX_RECORD_BYTES + PULL_BYTES)


class AgentHello(amp.Command):
    """
    An agent introduces itself; sent first on every link.  C{link} counts
    the links this agent run has made, from 1: it orders the agent's links
    to different hubs across the mesh (the newest link says which hub the
    agent reports through).  Agents before the mesh send none (0).
    """

    arguments = [
        (b"agent_id", amp.Unicode()),
        (b"hostname", amp.Unicode()),
        (b"epoch", amp.Integer()),
        (b"version", amp.Unicode()),
        (b"link", amp.Integer(optional=True)),
    ]
    response = [(b"hub", amp.Unicode())]
    errors = {WireError: b"WIRE_ERROR"}


class Report(amp.Command):
    """
    One agent report.  The answer means the hub has written it to its
    history and the write is committed (durable): the agent may forget it.
    C{accepted} is False for a report the history already had (a retry, or
    a copy that came through a peer).  C{HISTORY_ERROR}: the hub could not
    write it now (queue full, disk error); the agent keeps it and sends it
    again.
    """

    arguments = [(b"report", Record(AgentReport))]
    response = [(b"accepted", amp.Boolean())]
    errors = {WireError: b"WIRE_ERROR", HistoryError: b"HISTORY_ERROR"}


class Watch(amp.Command):
    """
    A UI asks for L{FleetUpdate} pushes, with the full report of agent
    C{detail} (empty for none).  Calling it again changes C{detail}.
    """

    arguments = [(b"detail", amp.Unicode())]
    response = [(b"view", Record(FleetView))]


class FleetUpdate(amp.Command):
    """
    The hub pushes the current fleet view to a watching UI.  The hub sends
    the next one only after this is answered (flow control).
    """

    arguments = [(b"view", Record(FleetView))]
    response: list = []


class GetFleet(amp.Command):
    """
    The current fleet view with every agent's newest report.
    """

    arguments: list = []
    response = [(b"view", Record(FleetView))]


class SendAlert(amp.Command):
    """
    One revision of one alert, sent at once (not at the next report).  The
    answer means the hub has merged it and committed it to its history
    (durable); C{accepted} is False for a revision it already had.
    """

    arguments = [(b"alert", Record(Alert))]
    response = [(b"accepted", amp.Boolean())]
    errors = {WireError: b"WIRE_ERROR", HistoryError: b"HISTORY_ERROR"}


@frozen
class AlertBatch:
    """
    Alerts that changed, for L{AlertUpdate}; or, with C{full}, the hub's
    newest alerts, to replace what the UI holds (sent to a UI that fell so
    far behind that the changes for it were more than that).
    """

    alerts: tuple[AlertEntry, ...] = ()
    full: bool = False


class AlertUpdate(amp.Command):
    """
    The hub pushes alerts that changed to a watching UI.  At most one is in
    flight per UI; changes made meanwhile are folded into the next.
    """

    arguments = [(b"batch", Record(AlertBatch))]
    response: list = []


class AcknowledgeAlert(amp.Command):
    """
    A user acknowledges alert ``(agent_id, epoch, seq)``.  C{by} names who
    (``user@host``).  The answer says whether the hub holds that alert.
    """

    arguments = [
        (b"agent_id", amp.Unicode()),
        (b"epoch", amp.Integer()),
        (b"seq", amp.Integer()),
        (b"by", amp.Unicode()),
    ]
    response = [(b"known", amp.Boolean())]
    errors = {WireError: b"WIRE_ERROR"}


class GetHistory(amp.Command):
    """
    A UI asks for the history of a range (L{loopy.history.HistoryQuery});
    the answer is a L{loopy.history.History}.  C{HISTORY_ERROR}: the query
    is bad or the store failed.
    """

    arguments = [(b"query", Record(HistoryQuery))]
    response = [(b"history", Record(History))]
    errors = {WireError: b"WIRE_ERROR", HistoryError: b"HISTORY_ERROR"}


class HistorySync(amp.Command):
    """
    A peer hub asks for the history rows it lacks (L{loopy.hub.history}):
    C{have} is what the asker holds at the finest tier since C{since}, as
    seq ranges per agent run; the answer holds rows the asker lacks, at most
    about L{loopy.hub.mesh.PULL_BYTES}, with C{more} if there are others.
    """

    arguments = [(b"since", amp.Float()), (b"have", Record(SyncRanges))]
    response = [(b"rows", Record(SyncRows)), (b"more", amp.Boolean())]
    errors = {WireError: b"WIRE_ERROR", HistoryError: b"HISTORY_ERROR"}


class PeerHello(amp.Command):
    """
    A hub introduces itself to a peer hub; sent first on a peer link, by
    the hub that dialled.  The answer is the same about the peer.  Names
    are unique in a mesh: a hub refuses a peer with its own name.
    """

    arguments = [
        (b"name", amp.Unicode()),
        (b"epoch", amp.Integer()),
        (b"endpoint", amp.Unicode()),
        (b"version", amp.Unicode()),
    ]
    response = [
        (b"name", amp.Unicode()),
        (b"epoch", amp.Integer()),
        (b"endpoint", amp.Unicode()),
    ]
    errors = {WireError: b"WIRE_ERROR"}


@frozen
class Digest:
    """
    What a hub holds: origin (``NAME#EPOCH``) to watermark (see
    L{loopy.hub.mesh}).
    """

    watermarks: dict[str, int] = field(factory=dict)


class GossipPull(amp.Command):
    """
    A hub asks a peer for what its digest shows it lacks.  The answer is
    one chunk (L{loopy.hub.mesh.PULL_BYTES} of entries at most); with
    C{more} set the puller asks again at once.  Either hub of a peer link
    pulls, one pull at a time.
    """

    arguments = [(b"digest", Record(Digest))]
    response = [(b"batch", GossipEntries())]
    errors = {WireError: b"WIRE_ERROR"}


class BoundedAMP(amp.AMP):
    """
    AMP with bounds on what a peer may send in one box (L{MAX_BOX_KEYS},
    L{MAX_BOX_BYTES}).  A peer past a bound, or whose command arguments do
    not decode, is disconnected and C{on_protocol_error} is called with a
    reason.
    """

    on_protocol_error: Callable[[str], None] = staticmethod(lambda reason: None)
    _box_keys = 0
    _box_bytes = 0

    def proto_init(self, string):
        self._box_keys = self._box_bytes = 0
        return amp.AMP.proto_init(self, string)

    def proto_value(self, string):
        self._box_keys += 1
        self._box_bytes += len(string) + len(self._currentKey or b"")
        if self._box_keys > MAX_BOX_KEYS or self._box_bytes > MAX_BOX_BYTES:
            self._protocol_error(
                f"box over bounds ({self._box_keys} keys, {self._box_bytes} bytes)"
            )
            return "dead"
        return amp.AMP.proto_value(self, string)

    def locateResponder(self, name):
        """
        As AMP's, but a command whose arguments do not decode (a record past
        L{MAX_RECORD_BYTES}, bad JSON) is the peer's protocol error too.
        """
        responder = amp.AMP.locateResponder(self, name)
        if responder is None:
            return None

        def parse_or_drop(box):
            # AMP parses the arguments before calling the responder method,
            # so only those errors are raised here, not the method's.
            try:
                return responder(box)
            except WireError as e:
                self._protocol_error(f"bad {name.decode('ascii', 'replace')} arguments: {e}")
                return fail(amp.RemoteAmpError(b"WIRE_ERROR", str(e), fatal=True))

        return parse_or_drop

    def proto_dead(self, string):
        """
        After a protocol error: ignore whatever was already buffered.
        """
        return "dead"

    def _protocol_error(self, reason: str) -> None:
        log.warn(
            "dropping {peer}: {reason}", peer=self.transport.getPeer(), reason=reason
        )
        self.on_protocol_error(reason)
        self.transport.abortConnection()
