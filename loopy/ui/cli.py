# -*- test-case-name: tests.test_ui_cli -*-
"""
``loopy-ui``: the terminal UI, or with ``--json`` one JSON document of the
fleet for scripts; with ``--history`` the history of a range (``--since``,
``--until``, ``--agent``): as JSON with ``--json``, else the UI opens on its
history screen.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable, Optional, Sequence, Union

from twisted.python import usage

from loopy import DEFAULT_HUB_PORT
from loopy.options import HubListOptions, parse_command_line, positive_float


class Options(HubListOptions):
    synopsis = ("Usage: loopy-ui [--hub HOST[:PORT]]... [--json] "
                "[--history [--since WHEN] [--until WHEN] [--agent ID]]")
    longdesc = (
        "Watch a Loopy fleet through a hub; with several --hub, the first "
        "that answers, moving to the next when it fails. Keys: ? help, q quit. "
        "With --json, print the fleet once as JSON and exit (0 on success, 2 "
        "when no hub can be reached). With --history, the history of a range: "
        "--json prints it, else the UI opens on the history screen. WHEN is "
        "10m, 2h, 7d, 1w, 90s (ago), now, 2026-11-21T10:00[:SS], "
        "'2026-11-21 10:00', 2026-11-21 (local time) or epoch seconds."
    )
    default_hub = f"127.0.0.1:{DEFAULT_HUB_PORT}"
    optFlags = [
        ["json", None, "Print the fleet state as one JSON document and exit."],
        ["history", None, "The history of a range: as JSON with --json, else the UI's "
                          "history screen."],
    ]
    optParameters = [
        ["since", None, None, "Start of the history range (default 1h ago)."],
        ["until", None, None, "End of the history range (default now, following it)."],
        ["agent", None, None, "History of this agent id only (default the fleet)."],
        ["timeout", None, 10.0,
         "Seconds --json waits for each hub (connected within 2 s, then its "
         "answer) before trying the next.", positive_float],
        ["log", None, None, "Append the UI's log (hub links, failures) to this file."],
        ["drop-warning", None, 1.0,
         "Warn about an agent whose kernel drops reach this percent of its "
         "packets over its last report interval.", positive_float],
    ]

    #: The clock --since and --until are read against (tests replace it).
    clock: Callable[[], float] = staticmethod(time.time)

    def postOptions(self):
        HubListOptions.postOptions(self)
        self["range"] = self._history_range()
        if self["log"] is not None:
            try:
                open(self["log"], "a").close()
            except OSError as e:
                raise usage.UsageError(f"--log {self['log']}: {e.strerror}") from None

    def _history_range(self):
        """
        The L{TimeRange} of --since and --until (the last hour by default),
        or None without --history.

        :raises usage.UsageError: for a time that cannot be read, a range
            that ends before it starts, or a range option without --history.
        """
        from loopy.ui.timerange import TimeRange, parse_when

        if not self["history"]:
            for name in ("since", "until", "agent"):
                if self[name] is not None:
                    raise usage.UsageError(f"--{name} needs --history")
            return None
        now = self.clock()
        times = {}
        for name, default in (("since", "1h"), ("until", "now")):
            try:
                times[name] = parse_when(self[name] or default, now)
            except ValueError as e:
                raise usage.UsageError(f"--{name}: {e}") from None
        try:
            return TimeRange.between(times["since"], times["until"], now)
        except ValueError as e:
            raise usage.UsageError(f"--since/--until: {e}") from None


def fetch_json(endpoints: Union[str, Sequence[str]], timeout: float, reactor):
    """
    Ask the hubs in order for the fleet (L{GetFleet}); the first that
    answers gives the JSON document.  Each gets C{timeout} seconds, and
    must be connected within L{CONNECT_TIMEOUT <loopy.failover.CONNECT_TIMEOUT>}.

    :param endpoints: client endpoint strings, or one.
    :returns: a Deferred firing with the document (a dict), or failing with
        L{HubUnreachable} naming every hub tried and why it failed.
    """
    from loopy.ui.views import fleet_document
    from loopy.wire import GetFleet

    return fetch_document(endpoints, timeout, reactor, "the fleet",
                          lambda proto: proto.callRemote(GetFleet),
                          lambda answer: fleet_document(answer["view"]))


def fetch_history_json(endpoints: Union[str, Sequence[str]], query, timeout: float,
                       reactor):
    """
    Ask the hubs in order for the history of C{query} (L{GetHistory}), as
    L{fetch_json} asks for the fleet; the document is
    L{loopy.ui.history.history_json}'s.  A hub that fails the question
    (C{HISTORY_ERROR}: its store failed, or the range is bad) is named in
    the error, and the next hub asked.

    :param query: a L{loopy.history.HistoryQuery}.
    :returns: a Deferred firing with the document, or failing with
        L{HubUnreachable}.
    """
    from loopy.ui.history import history_json
    from loopy.wire import GetHistory

    return fetch_document(endpoints, timeout, reactor, "the history",
                          lambda proto: proto.callRemote(GetHistory, query=query),
                          lambda answer: history_json(answer["history"]))


def fetch_document(endpoints: Union[str, Sequence[str]], timeout: float, reactor,
                   what: str, ask: Callable, document: Callable[[dict], dict]):
    """
    Ask the hubs in order, each on a connection of its own: the first that
    answers gives the document.

    :param what: what is asked for, for the error (``the fleet``).
    :param ask: an AMP protocol to the Deferred of the question.
    :param document: the answer (a dict of the response's arguments) to
        the document.
    :returns: a Deferred firing with the document, or failing with
        L{HubUnreachable} naming every hub tried and why it failed.
    """
    from loopy.errors import HubUnreachable

    if isinstance(endpoints, str):
        endpoints = (endpoints,)
    tried: list[str] = []

    def attempt(index: int):
        endpoint = endpoints[index]

        def failed(failure):
            tried.append(f"from hub {endpoint}: {failure.getErrorMessage()}")
            if index + 1 < len(endpoints):
                return attempt(index + 1)
            raise HubUnreachable(f"cannot get {what} " + "; ".join(tried))

        d = _fetch_one(endpoint, timeout, reactor, ask)
        d.addCallback(document)
        return d.addErrback(failed)

    return attempt(0)


def _fetch_one(endpoint: str, timeout: float, reactor, ask: Callable):
    """
    The answer of one hub to C{ask}: a Deferred, failing as the connection
    or the call does, or with a timeout.
    """
    from twisted.internet.defer import TimeoutError
    from twisted.internet.endpoints import clientFromString
    from twisted.internet.protocol import Factory

    from loopy.failover import CONNECT_TIMEOUT, connect_within, time_limit
    from loopy.wire import BoundedAMP

    d = connect_within(clientFromString(reactor, endpoint), Factory.forProtocol(BoundedAMP),
                       CONNECT_TIMEOUT, reactor)

    def asked(proto):
        call = ask(proto)
        call.addBoth(lambda result: (proto.transport.loseConnection(), result)[1])
        return call

    d.addCallback(asked)
    return time_limit(d, timeout, reactor, TimeoutError(f"no answer within {timeout:g} s"))


def _json_main(options: Options) -> int:
    from twisted.internet import task

    result = {}

    def run(reactor):
        if options["history"]:
            query = options["range"].query(options.clock(), options["agent"])
            d = fetch_history_json(options["hubs"], query, options["timeout"], reactor)
        else:
            d = fetch_json(options["hubs"], options["timeout"], reactor)
        d.addCallback(lambda doc: result.update(doc=doc))
        d.addErrback(lambda f: result.update(error=f.getErrorMessage()))
        return d

    try:
        task.react(run)
    except SystemExit:
        pass
    if "error" in result:
        sys.stderr.write(f"loopy-ui: {result['error']}\n")
        return 2
    try:
        json.dump(result["doc"], sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``loopy-ui --json | head``): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def history_start(options: Options) -> Optional[tuple]:
    """
    What the UI opens on with --history (and no --json): ``(range,
    agent_id)`` for its history screen (agent_id None for the fleet), or
    None for the fleet screen.
    """
    if not options["history"]:
        return None
    return options["range"], options["agent"]


def main(argv=None) -> int:
    options = Options()
    if not parse_command_line(options, "loopy-ui", argv):
        return 2
    if options["json"]:
        code = _json_main(options)
    else:
        from loopy.ui.app import run_tui

        code = run_tui(options["hubs"], options["drop-warning"], options["log"],
                       history=history_start(options))
    return code


if __name__ == "__main__":
    sys.exit(main())
