# -*- test-case-name: tests.test_ui_cli -*-
"""
``loopy-ui``: the terminal UI, or with ``--json`` one JSON document of the
fleet for scripts.
"""

from __future__ import annotations

import json
import os
import sys

from twisted.python import usage

from loopy import DEFAULT_HUB_PORT
from loopy.options import LoopyOptions, hub_option, parse_command_line, positive_float


class Options(LoopyOptions):
    synopsis = "Usage: loopy-ui [--hub HOST[:PORT]] [--json]"
    longdesc = (
        "Watch a Loopy fleet through a hub. Keys: ? help, q quit. With --json, "
        "print the fleet once as JSON and exit (0 on success, 2 when the hub "
        "cannot be reached)."
    )
    optFlags = [["json", None, "Print the fleet state as one JSON document and exit."]]
    optParameters = [
        ["hub", None, f"127.0.0.1:{DEFAULT_HUB_PORT}",
         "The hub: HOST[:PORT] or a client endpoint string."],
        ["timeout", None, 10.0, "Seconds --json waits for the hub.", positive_float],
        ["log", None, None, "Append the UI's log (hub links, failures) to this file."],
        ["drop-warning", None, 1.0,
         "Warn about an agent whose kernel drops reach this percent of its "
         "packets over its last report interval.", positive_float],
    ]

    def postOptions(self):
        self["endpoint"] = hub_option(self["hub"])
        if self["log"] is not None:
            try:
                open(self["log"], "a").close()
            except OSError as e:
                raise usage.UsageError(f"--log {self['log']}: {e.strerror}") from None


def fetch_json(endpoint: str, timeout: float, reactor):
    """
    Connect, ask for the fleet (L{GetFleet}) and return its JSON document.

    :returns: a Deferred firing with the document (a dict), or failing with
        L{HubUnreachable} on connection failure or timeout.
    """
    from twisted.internet.endpoints import clientFromString, connectProtocol

    from loopy.errors import HubUnreachable
    from loopy.ui.views import fleet_document
    from loopy.wire import BoundedAMP, GetFleet

    d = connectProtocol(clientFromString(reactor, endpoint), BoundedAMP())

    def ask(proto):
        call = proto.callRemote(GetFleet)
        call.addBoth(lambda result: (proto.transport.loseConnection(), result)[1])
        return call

    d.addCallback(ask)
    d.addCallback(lambda answer: fleet_document(answer["view"]))
    d.addTimeout(timeout, reactor)

    def unreachable(failure):
        raise HubUnreachable(
            f"cannot get the fleet from hub {endpoint}: {failure.getErrorMessage()}"
        )

    d.addErrback(unreachable)
    return d


def _json_main(options: Options) -> int:
    from twisted.internet import task

    result = {}

    def run(reactor):
        d = fetch_json(options["endpoint"], options["timeout"], reactor)
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

        code = run_tui(options["endpoint"], options["drop-warning"], options["log"])
    return code


if __name__ == "__main__":
    sys.exit(main())
