# -*- test-case-name: tests.test_local -*-
"""
``loopy-local``: Loopy on this machine, all in one.  Starts a hub on
loopback and an agent on every interface (``twistd`` processes), attaches the
terminal UI, and stops both when the UI exits.

Files: ``DATA/hub.log``, ``DATA/agent.log`` and ``DATA/agent.err`` (the
agent's start-up errors), the hub's history ``DATA/hub/history.sqlite``
and the agent's spool ``DATA/spool/``, where DATA is ``--data``
(default ``$XDG_DATA_HOME/loopy``, else ``~/.local/share/loopy``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from twisted.python import usage

from loopy import DEFAULT_HUB_PORT
from loopy.options import LoopyOptions, default_data_dir, parse_command_line


class Options(LoopyOptions):
    synopsis = "Usage: loopy-local [--port PORT] [--interface IFACE] [--data DIR]"
    longdesc = (
        "Run Loopy on this machine: a hub on 127.0.0.1, an agent on every "
        "interface, and the terminal UI. Leaving the UI (q) stops them. "
        "Needs root (packet capture)."
    )
    optParameters = [
        ["port", None, DEFAULT_HUB_PORT, "The hub's TCP port on 127.0.0.1.", int],
        ["interface", None, "any", "Interface to capture on."],
        ["filter", None, None, "tcpdump expression: capture only matching traffic."],
        ["data", None, None,
         "Directory for logs, the history and the spool [default: "
         "$XDG_DATA_HOME/loopy]."],
        ["detect-config", None, None,
         "The detectors' settings file (TOML) for the agent [default: the defaults]."],
    ]

    def postOptions(self):
        if not 0 < self["port"] < 65536:
            raise usage.UsageError("--port must be 1-65535")
        self["data"] = Path(self["data"]) if self["data"] else default_data_dir()


def twistd_path() -> str:
    """
    The ``twistd`` beside this Python (in its virtualenv), else on PATH.
    """
    beside = Path(sys.executable).parent / "twistd"
    if beside.exists():
        return str(beside)
    found = shutil.which("twistd")
    if found is None:
        raise SystemExit("loopy-local: cannot find twistd; is Twisted installed?")
    return found


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def wait_for_port(port: int, proc: subprocess.Popen, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def stop(proc: Optional[subprocess.Popen], grace: float = 5.0) -> None:
    """
    SIGTERM, then SIGKILL after C{grace} seconds.
    """
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main(argv=None) -> int:
    options = Options()
    if not parse_command_line(options, "loopy-local", argv):
        return 2
    if os.geteuid() != 0:
        sys.stderr.write(
            "loopy-local: capturing packets needs root (or CAP_NET_RAW and "
            "CAP_NET_ADMIN). Run it as root, e.g. `sudo make run` or "
            "`sudo .venv/bin/loopy-local`.\n"
        )
        return 2
    port = options["port"]
    if port_in_use(port):
        sys.stderr.write(
            f"loopy-local: port {port} on 127.0.0.1 is in use (another hub?). "
            "Choose another with --port.\n"
        )
        return 2
    data: Path = options["data"]
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        sys.stderr.write(f"loopy-local: cannot create {data}: {e}\n")
        return 2
    twistd = twistd_path()
    hub = agent = None

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        hub = subprocess.Popen(
            [twistd, "-n", "--pidfile=", f"--logfile={data / 'hub.log'}",
             "loopy-hub", "--listen", f"tcp:{port}:interface=127.0.0.1",
             "--data", str(data / "hub")],
            stdin=subprocess.DEVNULL,
        )
        if not wait_for_port(port, hub, time.monotonic() + 20):
            sys.stderr.write(f"loopy-local: the hub did not start:\n{tail(data / 'hub.log')}\n")
            return 1
        agent_args = [twistd, "-n", "--pidfile=", f"--logfile={data / 'agent.log'}",
                      "loopy-agent", "--hub", f"127.0.0.1:{port}",
                      "--interface", options["interface"], "--spool", str(data / "spool")]
        if options["filter"]:
            agent_args += ["--filter", options["filter"]]
        if options["detect-config"]:
            agent_args += ["--detect-config", options["detect-config"]]
        with open(data / "agent.err", "w") as errors:
            agent = subprocess.Popen(agent_args, stdin=subprocess.DEVNULL, stderr=errors)
        try:
            agent.wait(1.5)
        except subprocess.TimeoutExpired:
            pass
        if agent.poll() is not None:
            sys.stderr.write(
                "loopy-local: the agent did not start:\n"
                f"{tail(data / 'agent.err')}\n{tail(data / 'agent.log')}\n"
            )
            return 1
        from loopy.ui.app import run_tui

        return run_tui(f"tcp:host=127.0.0.1:port={port}")
    finally:
        stop(agent)
        stop(hub)


if __name__ == "__main__":
    sys.exit(main())
