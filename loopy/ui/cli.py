# -*- test-case-name: tests.test_ui_cli -*-
"""
``loopy-ui``: the terminal UI, or with ``--json`` one JSON document of the
fleet for scripts.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Sequence, Union

from twisted.python import usage

from loopy import DEFAULT_HUB_PORT
from loopy.options import HubListOptions, parse_command_line, positive_float


class Options(HubListOptions):
    synopsis = "Usage: loopy-ui [--hub HOST[:PORT]]... [--json]"
    longdesc = (
        "Watch a Loopy fleet through a hub; with several --hub, the first "
        "that answers, moving to the next when it fails. Keys: ? help, q quit. "
        "With --json, print the fleet once as JSON and exit (0 on success, 2 "
        "when no hub can be reached)."
    )
    default_hub = f"127.0.0.1:{DEFAULT_HUB_PORT}"
    optFlags = [["json", None, "Print the fleet state as one JSON document and exit."]]
    optParameters = [
        ["timeout", None, 10.0,
         "Seconds --json waits for each hub (connected within 2 s, then its "
         "answer) before trying the next.", positive_float],
        ["log", None, None, "Append the UI's log (hub links, failures) to this file."],
        ["drop-warning", None, 1.0,
         "Warn about an agent whose kernel drops reach this percent of its "
         "packets over its last report interval.", positive_float],
    ]

    def postOptions(self):
        HubListOptions.postOptions(self)
        if self["log"] is not None:
            try:
                open(self["log"], "a").close()
            except OSError as e:
                raise usage.UsageError(f"--log {self['log']}: {e.strerror}") from None


def fetch_json(endpoints: Union[str, Sequence[str]], timeout: float, reactor):
    """
    Ask the hubs in order for the fleet (L{GetFleet}); the first that
    answers gives the JSON document.  Each gets C{timeout} seconds, and
    must be connected within L{CONNECT_TIMEOUT <loopy.failover.CONNECT_TIMEOUT>}.

    :param endpoints: client endpoint strings, or one.
    :returns: a Deferred firing with the document (a dict), or failing with
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
            raise HubUnreachable("cannot get the fleet " + "; ".join(tried))

        return _fetch_one(endpoint, timeout, reactor).addErrback(failed)

    return attempt(0)


def _fetch_one(endpoint: str, timeout: float, reactor):
    """
    The JSON document of one hub's fleet: a Deferred, failing as the
    connection or the call does, or with a timeout.
    """
    from twisted.internet.defer import TimeoutError
    from twisted.internet.endpoints import clientFromString
    from twisted.internet.protocol import Factory

    from loopy.failover import CONNECT_TIMEOUT, connect_within, time_limit
    from loopy.ui.views import fleet_document
    from loopy.wire import BoundedAMP, GetFleet

    d = connect_within(clientFromString(reactor, endpoint), Factory.forProtocol(BoundedAMP),
                       CONNECT_TIMEOUT, reactor)

    def ask(proto):
        call = proto.callRemote(GetFleet)
        call.addBoth(lambda result: (proto.transport.loseConnection(), result)[1])
        return call

    d.addCallback(ask)
    d.addCallback(lambda answer: fleet_document(answer["view"]))
    return time_limit(d, timeout, reactor, TimeoutError(f"no answer within {timeout:g} s"))


def _json_main(options: Options) -> int:
    from twisted.internet import task

    result = {}

    def run(reactor):
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


def main(argv=None) -> int:
    options = Options()
    if not parse_command_line(options, "loopy-ui", argv):
        return 2
    if options["json"]:
        code = _json_main(options)
    else:
        from loopy.ui.app import run_tui

        code = run_tui(options["hubs"], options["drop-warning"], options["log"])
    return code


if __name__ == "__main__":
    sys.exit(main())
