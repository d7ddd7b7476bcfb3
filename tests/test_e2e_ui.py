"""
The real terminal UI in tmux, against a real hub and agent on ``lo``:
keys in with ``send-keys``, the screen out with ``capture-pane``.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
from pathlib import Path

from twisted.internet import defer
from twisted.trial import unittest

from tests import e2e


class Tmux:
    """
    A private tmux server (its own socket) running one program in a pane of
    a fixed size.
    """

    def __init__(self, socket_name: str):
        self.socket = socket_name
        self.tmux = e2e.require_tool("tmux")

    def _run(self, *args: str, check: bool = True) -> str:
        done = subprocess.run([self.tmux, "-L", self.socket, *args],
                              capture_output=True, text=True, timeout=10)
        if check and done.returncode != 0:
            raise AssertionError(f"tmux {args}: {done.stderr}")
        return done.stdout

    def start(self, command: list[str], env: dict) -> None:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        line = f"env {exports} {shlex.join(command)}"
        self._run("-f", "/dev/null", "new-session", "-d", "-s", "ui",
                  "-x", "132", "-y", "40", line)
        self._run("set-option", "-t", "ui", "remain-on-exit", "on")
        self._run("set-option", "-s", "escape-time", "0")

    def keys(self, *keys: str) -> None:
        self._run("send-keys", "-t", "ui", *keys)

    def text(self, *keys: str) -> None:
        self._run("send-keys", "-t", "ui", "-l", *keys)

    def screen(self) -> str:
        return self._run("capture-pane", "-p", "-t", "ui", check=False)

    def dead(self) -> bool:
        return self._run("list-panes", "-t", "ui", "-F", "#{pane_dead}",
                         check=False).strip() == "1"

    def kill(self) -> None:
        self._run("kill-server", check=False)


class TerminalUITests(e2e.FleetCase):
    """
    Drive ``loopy-ui`` like a person: fleet screen, hubs screen, agent tabs,
    sort, filter, help, back, quit.
    """

    def wait_screen(self, *needles: str, timeout: float = 15.0, absent: str = ""):
        def check():
            screen = self.tmux.screen()
            if all(n in screen for n in needles) and not (absent and absent in screen):
                return screen
            return None

        return e2e.poll(check, timeout, what=f"{needles} on screen:\n{self.tmux.screen()}")

    @defer.inlineCallbacks
    def test_fleet_agent_tabs_filter_help_quit(self):
        self.tmux = Tmux(f"loopy-test-{os.getpid()}")
        self.addCleanup(self.tmux.kill)
        made = yield self.connections([(300, 7000)])
        yield self.dig_query("www.loopy.test", "A")
        yield self.dig_query("nx.loopy.test", "A")
        env = {"PYTHONPATH": str(e2e.REPO), "TERM": "xterm-256color", "LANG": "C.UTF-8"}
        self.ui_log = self.directory / "ui.log"
        self.tmux.start([e2e.program("loopy-ui"), "--hub", f"127.0.0.1:{self.hub_port}",
                         "--log", str(self.ui_log)], env)

        # The fleet screen: the agent's line, the link line.
        screen = yield self.wait_screen(self.agent_id, "online", "Loopy · fleet",
                                        "agents online")
        self.assertIn(f"hub hub (tcp:{self.hub_port}:interface=127.0.0.1, connected) · mesh 1 hub",
                      screen)

        # The hubs screen: this hub alone, marked as the UI's; Esc goes back.
        self.tmux.keys("h")
        yield self.wait_screen("Loopy · hubs", "on hub · 1/1 hubs", "▸ hub ", " self ")
        self.tmux.keys("Escape")
        yield self.wait_screen("Loopy · fleet", self.agent_id)

        # A second hub peers with this one: the UI's hub learns of it from
        # the mesh, and the hubs screen lists it as linked.
        port2 = e2e.free_port()
        self.procs.start_hub("hub2", port2, "--peer", f"127.0.0.1:{self.hub_port}")
        yield self.wait_screen("mesh 2 hubs", timeout=20)
        self.tmux.keys("h")
        yield self.wait_screen("on hub · 2/2 hubs: 1 linked", f"tcp:{port2}:interface=127.0.0.1",
                               " linked ")
        self.tmux.keys("Escape")
        yield self.wait_screen("Loopy · fleet", self.agent_id)

        # Filter that matches nothing, then clear it.
        self.tmux.keys("/")
        yield self.wait_screen("Filter rows")
        self.tmux.text("no-such-agent")
        self.tmux.keys("Enter")
        yield self.wait_screen("(no agents match)", "filter: no-such-agent")
        self.tmux.keys("/")
        yield self.wait_screen("Filter rows")
        self.tmux.keys("C-u", "Enter")  # empty the field
        yield self.wait_screen(self.agent_id, absent="(no agents match)")

        # Open the agent: traffic tab first, then TCP and DNS.
        self.tmux.keys("Enter")
        yield self.wait_screen("Loopy · agent", "[1 traffic]", self.tcp_addr)
        self.tmux.keys("2")
        conn = made[0]
        yield self.wait_screen("[2 tcp]", f"{self.tcp_addr}:{conn['dport']}",
                               f"{conn['src']}:{conn['sport']}", "closed", "6.84kB")
        # Sort by the next column, then reverse: the arrow moves and flips.
        self.tmux.keys("s")
        yield self.wait_screen("in▼")
        self.tmux.keys("S")
        yield self.wait_screen("in▲")
        self.tmux.keys("3")
        yield self.wait_screen("[3 dns]", "www.loopy.test", "nx.loopy.test", "NXDOMAIN",
                               self.dns_addr)

        # Help, then back to the fleet, then quit.
        self.tmux.keys("?")
        yield self.wait_screen("Loopy keys")
        self.tmux.keys("Enter")
        yield self.wait_screen("[3 dns]", absent="Loopy keys")
        self.tmux.keys("Escape")
        yield self.wait_screen("Loopy · fleet", self.agent_id)
        self.tmux.keys("q")
        yield e2e.poll(self.tmux.dead, 10, what="loopy-ui to exit on q")


class HistoryScreenTests(e2e.FleetCase):
    """
    The history screen against a real hub's history: from the fleet screen
    and from an agent's, its charts and tables, and the keys that move the
    range; then ``loopy-ui --history`` opening on it.
    """

    wait_screen = TerminalUITests.wait_screen

    def start_ui(self, *args: str) -> None:
        self.tmux = Tmux(f"loopy-history-{os.getpid()}-{len(args)}")
        self.addCleanup(self.tmux.kill)
        env = {"PYTHONPATH": str(e2e.REPO), "TERM": "xterm-256color", "LANG": "C.UTF-8"}
        self.tmux.start([e2e.program("loopy-ui"), "--hub", f"127.0.0.1:{self.hub_port}",
                         "--log", str(self.directory / "ui.log"), *args], env)

    @defer.inlineCallbacks
    def test_history_screen_and_range_keys(self):
        yield self.connections([(300, 7000)])
        yield self.dig_query("www.loopy.test", "A")
        self.start_ui()
        yield self.wait_screen(self.agent_id, "online", "Loopy · fleet", "H history")

        # The fleet's history: charts, totals, the agents.
        self.tmux.keys("H")
        yield self.wait_screen("Loopy · history of the fleet", "fleet · last 1h (until now)",
                               "bits/s in", "packets/s", "tcp syn/s", "dns q/s", "drops/s",
                               "totals  in", "agents (1)", self.agent_id, "[ ] earlier/later",
                               timeout=20)

        # The range keys: presets, earlier and later, zoom.
        self.tmux.keys("2")
        yield self.wait_screen("fleet · last 1d (until now)")
        self.tmux.keys("3")
        yield self.wait_screen("fleet · last 7d (until now)")
        self.tmux.keys("1")
        yield self.wait_screen("fleet · last 1h (until now)")
        self.tmux.keys("[")
        yield self.wait_screen(" → ", "(1h)", absent="until now")
        self.tmux.keys("]")
        yield self.wait_screen("fleet · last 1h (until now)")
        self.tmux.keys("+")
        yield self.wait_screen("fleet · last 30m (until now)")
        self.tmux.keys("-", "-")
        yield self.wait_screen("fleet · last 2h (until now)")

        # From / to: two hours ago to one hour ago.
        self.tmux.keys("f")
        yield self.wait_screen("History from / to")
        self.tmux.keys("C-u")
        self.tmux.text("2h")
        self.tmux.keys("Enter", "C-u")
        self.tmux.text("1h")
        self.tmux.keys("Enter")
        yield self.wait_screen(" → ", "(1h)", absent="History from / to")

        # Esc back to the fleet; the agent's own history from its screen,
        # with what it saw: the TCP peer and the DNS name.
        self.tmux.keys("1")
        yield self.wait_screen("fleet · last 1h (until now)")
        self.tmux.keys("Escape")
        yield self.wait_screen("Loopy · fleet", self.agent_id)
        self.tmux.keys("Enter")
        yield self.wait_screen("Loopy · agent", "[1 traffic]", "delivery spool")
        self.tmux.keys("H")
        yield self.wait_screen(f"agent {self.agent_id} · last 1h (until now)",
                               f"{self.agent_id} (", "top talkers", self.tcp_addr, timeout=20)
        self.tmux.keys("G")
        yield self.wait_screen("DNS names", "www.loopy.test", "alerts (")
        self.tmux.keys("Escape")
        yield self.wait_screen("Loopy · agent", "[1 traffic]")
        self.tmux.keys("q")
        yield e2e.poll(self.tmux.dead, 10, what="loopy-ui to exit on q")

        # ``loopy-ui --history --agent`` opens on that agent's history; Esc
        # goes to its screen.
        self.tmux.kill()
        self.start_ui("--history", "--since", "3h", "--agent", self.agent_id)
        yield self.wait_screen(f"agent {self.agent_id} · last 3h (until now)", "bits/s in")
        self.tmux.keys("Escape")
        yield self.wait_screen("Loopy · agent", "[1 traffic]", self.agent_id)


class AllInOneTests(unittest.TestCase):
    """
    The README's first command: ``loopy-local`` starts a hub and an agent,
    shows this machine in the UI, and stops both when the UI quits.
    """

    timeout = 90

    def setUp(self):
        e2e.require_root()
        self.tmux = Tmux(f"loopy-local-{os.getpid()}")
        self.addCleanup(self.tmux.kill)
        self.data = Path(self.mktemp())
        self.port = e2e.free_port()

    def hub_listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    @defer.inlineCallbacks
    def test_local_monitor_starts_shows_and_stops(self):
        env = {"PYTHONPATH": str(e2e.REPO), "TERM": "xterm-256color", "LANG": "C.UTF-8"}
        self.tmux.start([e2e.program("loopy-local"), "--port", str(self.port),
                         "--data", str(self.data), "--interface", "lo"], env)
        hostname = socket.gethostname()

        def screen_shows_this_host():
            screen = self.tmux.screen()
            return screen if hostname in screen and "1/1 agents online" in screen else None

        yield e2e.poll(screen_shows_this_host, 30,
                       what=f"{hostname} online in loopy-local's UI")
        self.assertTrue(self.hub_listening())
        self.assertIn("capturing on lo", (self.data / "agent.log").read_text())
        self.tmux.keys("q")
        yield e2e.poll(self.tmux.dead, 15, what="loopy-local to exit on q")
        yield e2e.poll(lambda: not self.hub_listening(), 10, what="the hub to stop")
        self.assertIn("Server Shut Down", (self.data / "hub.log").read_text())
        self.assertIn("Server Shut Down", (self.data / "agent.log").read_text())

    def test_without_root_says_what_it_needs(self):
        setpriv = e2e.require_tool("setpriv")
        done = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
             e2e.program("loopy-local"), "--port", str(self.port), "--data", str(self.data)],
            capture_output=True, text=True, timeout=60, env=e2e.environment(),
        )
        self.assertEqual(done.returncode, 2, done.stderr)
        self.assertIn("capturing packets needs root", done.stderr)
        self.assertFalse(self.hub_listening())
