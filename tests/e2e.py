"""
Helpers for end-to-end tests: real ``twistd`` hubs and agents, real clients,
polling with a deadline, and cleanup of every process started.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest
from twisted.trial.unittest import SkipTest

REPO = Path(__file__).resolve().parent.parent


def environment() -> dict:
    """
    The environment for child processes: this checkout first on the path, so
    they run the code under test.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    return env


def program(name: str) -> str:
    """
    A console script beside this Python (the virtualenv's), else on PATH.
    """
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} is not installed; run the tests with `make test`")
    return found


def require_root() -> None:
    if os.geteuid() != 0:
        raise SkipTest("end-to-end capture tests need root (raw sockets)")


def require_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise AssertionError(
            f"{name} is missing; `make test` installs it (see .ci/debs)"
        )
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listening(*ports: int, host: str = "127.0.0.1") -> bool:
    """
    Whether something accepts TCP connections on each of C{ports} (a check
    for L{poll}: a hub opens its history before it listens).
    """
    for port in ports:
        try:
            socket.create_connection((host, port), timeout=1).close()
        except OSError:
            return False
    return True


def loopback_address() -> str:
    """
    A random address in 127.0.0.0/8 other than 127.0.0.1, so a test's
    traffic is told apart from anything else on ``lo``.
    """
    rng = random.Random()
    return f"127.{rng.randint(20, 250)}.{rng.randint(1, 250)}.{rng.randint(2, 250)}"


class Processes:
    """
    Child processes of one test, each logging to a file in the test's
    directory; L{stop_all} ends them all (SIGTERM, then SIGKILL).
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self.children: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.directory / f"{name}.out", "w")
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=environment(), cwd=str(self.directory),
        )
        log.close()
        self.children[name] = proc
        return proc

    def output(self, name: str) -> str:
        try:
            return (self.directory / f"{name}.out").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.children.get(name)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.children):
            self.stop(name)

    def start_hub(self, name: str, port: int, *extra: str) -> subprocess.Popen:
        data = [] if "--data" in extra else ["--data", str(self.directory / f"{name}.data")]
        return self.start(name, [
            program("twistd"), "-n", "--pidfile=", "loopy-hub",
            "--listen", f"tcp:{port}:interface=127.0.0.1", "--name", name, *data, *extra,
        ])

    def start_agent(self, name: str, hub_port: int, *extra: str) -> subprocess.Popen:
        return self.start(name, [
            program("twistd"), "-n", "--pidfile=", "loopy-agent",
            "--hub", f"127.0.0.1:{hub_port}", "--agent-id", name, *extra,
        ])


def start_processes(case: unittest.TestCase) -> Processes:
    """
    Give C{case} a fresh directory (C{case.directory}) and a L{Processes}
    in it (C{case.procs}), stopped when the test ends.
    """
    case.directory = Path(case.mktemp())
    case.directory.mkdir(parents=True)
    case.procs = Processes(case.directory)
    case.addCleanup(case.procs.stop_all)
    return case.procs


def poll(check: Callable[[], Any], timeout: float, interval: float = 0.25,
         what: str = "condition") -> defer.Deferred:
    """
    Call C{check} (which may return a Deferred) every C{interval} seconds
    until it returns something true, and fire with that; fail with
    AssertionError after C{timeout} seconds, with the last value seen.
    """

    @defer.inlineCallbacks
    def loop():
        deadline = time.monotonic() + timeout
        last = None
        while True:
            last = yield defer.maybeDeferred(check)
            if last:
                return last
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                     f"last: {str(last)[:2000]}")
            yield task.deferLater(reactor, interval, lambda: None)

    return loop()


@defer.inlineCallbacks
def fleet_json(hub_port: int, timeout: float = 5.0):
    """
    Run ``loopy-ui --hub 127.0.0.1:PORT --json`` and return its document
    (None if it failed).
    """
    out, err, code = yield getProcessOutputAndValue(
        program("loopy-ui"),
        ["--hub", f"127.0.0.1:{hub_port}", "--json", "--timeout", str(timeout)],
        env=environment(),
    )
    if code != 0:
        return None
    return json.loads(out)


def agent_of(doc: Optional[dict], agent_id: str) -> Optional[dict]:
    if not doc:
        return None
    for agent in doc["agents"]:
        if agent["agent_id"] == agent_id:
            return agent
    return None


@defer.inlineCallbacks
def run(args: list[str]):
    """
    Run a command; return (stdout, stderr, exit code).
    """
    result = yield getProcessOutputAndValue(args[0], args[1:], env=environment())
    return result


class SizedServer(protocol.Protocol):
    """
    Reads a request line ``M<spaces>\\n`` (its length is the request size),
    answers with M octets and closes.
    """

    def connectionMade(self):
        self.buffer = b""

    def dataReceived(self, data):
        self.buffer += data
        if self.buffer.endswith(b"\n"):
            size = int(self.buffer.split()[0])
            self.transport.write(b"x" * size)
            self.transport.loseConnection()


class SizedClient(protocol.Protocol):
    def __init__(self, request: int, response: int):
        self.request, self.response = request, response
        self.received = 0
        self.done = defer.Deferred()

    def connectionMade(self):
        line = str(self.response).encode().ljust(self.request - 1) + b"\n"
        assert len(line) == self.request
        self.transport.write(line)

    def dataReceived(self, data):
        self.received += len(data)

    def connectionLost(self, reason):
        self.done.callback(self.received)


class FleetCase(unittest.TestCase):
    """
    A real DNS server, hub and agent (on ``lo``) per test, all stopped after.
    """

    timeout = 120

    def setUp(self):
        require_root()
        self.dig = require_tool("dig")
        start_processes(self)
        self.hub_port = free_port()
        self.agent_id = f"e2e-{os.getpid()}"
        self.dns_addr = loopback_address()
        self.tcp_addr = loopback_address()
        self.procs.start("dns", [sys.executable, "-m", "tests.support.dnsserver",
                                 self.dns_addr])
        self.procs.start_hub("hub", self.hub_port)
        self.procs.start_agent(self.agent_id, self.hub_port, "--interface", "lo")
        return poll(self.agent_online, 30, what="the agent online at the hub")

    @defer.inlineCallbacks
    def agent_online(self):
        for name in ("hub", self.agent_id, "dns"):
            proc = self.procs.children[name]
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited:\n{self.procs.output(name)}")
        doc = yield fleet_json(self.hub_port)
        agent = agent_of(doc, self.agent_id)
        return agent is not None and agent["status"] == "online" and agent["capture"]

    @defer.inlineCallbacks
    def connections(self, sizes):
        listening = reactor.listenTCP(0, protocol.Factory.forProtocol(SizedServer),
                                      interface=self.tcp_addr)
        self.addCleanup(listening.stopListening)
        port = listening.getHost().port
        made = []
        for request, response in sizes:
            client = SizedClient(request, response)
            yield connectProtocol(TCP4ClientEndpoint(reactor, self.tcp_addr, port), client)
            host = client.transport.getHost()
            received = yield client.done
            self.assertEqual(received, response)
            made.append({"src": host.host, "sport": host.port, "dst": self.tcp_addr,
                         "dport": port, "bytes_out": request, "bytes_in": response})
        return made

    @defer.inlineCallbacks
    def dig_query(self, *args):
        out, err, code = yield run(
            [self.dig, f"@{self.dns_addr}", "+tries=1", "+time=3", *args])
        self.assertEqual(code, 0, f"dig {args} failed: {out!r} {err!r}")
        return out.decode()
