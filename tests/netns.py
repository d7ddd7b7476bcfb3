# -*- test-case-name: tests.test_e2e_attacks -*-
"""
Hosts as network namespaces, for the end-to-end tests and the benchmarks
that need a network: each host is a namespace with one interface, ``eth0``,
plugged into a bridge in one more namespace (the switch); nothing touches
the host's own network namespace, and no namespace has a route out of the
lab.

L{Lab} is the attack tests' and ``bench/detect``'s small LAN: an attacker,
a victim running a real Loopy hub and agent, and the victim's gateway::

    attacker  10.77.0.1    fd77::1   02:77:00:00:00:01  sources 10.78.0.0/16, fd78::/64
    victim    10.77.0.2    fd77::2   02:77:00:00:00:02  targets 10.79.0.0/16
    gateway   10.77.0.254  fd77::fe  02:77:00:00:00:fe  the victim's default route

The victim routes 10.78.0.0/16 (and fd78::/64) through the attacker, and the
attacker 10.79.0.0/16 through the victim, so an attack can come
from a fresh source address and hit a fresh target without any ARP for it
(the attacker's MAC never claims more than its one address, which would be
an ARP anomaly of its own).  Both use ``arp_announce = 2``, so their ARP
requests name their main address.

L{Sites} is the mesh tests': hosts at two sites, a bridge each, joined by
one WAN link that can be cut (L{Sites.set_wan}), as can any host's own link
(L{Network.set_port}).

Namespaces are named ``lpy<pid>`` (``lpy<pid>-N`` for a second lab in one
process) and the host's role (``a``, ``v``, ``g``, ``s``; ``h<N>`` for the
extra hosts of L{Lab.add_host}; the roles given to L{Sites}), so parallel
runs never collide; L{Network.destroy} kills every process inside and
deletes the namespaces, and L{Network.create} first removes the namespaces
of earlier runs whose process is gone.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

from tests.e2e import Processes, environment, program

#: Host roles, one letter each (the switch's port to a host is ``port<role>``).
ATTACKER, VICTIM, GATEWAY = "a", "v", "g"
SWITCH = "s"
#: How many extra addresses the victim has for horizontal scans
#: (10.79.1.1 ...); L{Lab.target} adds more, one per attack.
TARGETS = 40
#: The hub's port inside the victim namespace (its own port space).
HUB_PORT = 7420
AGENT_ID = "victim"

_labs = itertools.count()


class Host:
    """
    One namespace of a lab with its interface ``eth0``.

    :ivar ns: the namespace's name.
    :ivar address: IPv4 address of eth0 (text); C{address6}: IPv6.
    :ivar mac: eth0's MAC address.
    """

    iface = "eth0"

    def __init__(self, ns: str, number: int):
        self.ns = ns
        self.address = f"10.77.0.{number}"
        self.address6 = f"fd77::{number:x}"
        self.mac = f"02:77:00:00:00:{number:02x}"

    def command(self, argv: list[str]) -> list[str]:
        """
        C{argv} to be run inside this namespace.
        """
        return ["ip", "netns", "exec", self.ns, *argv]


def ip(*args: str, ns: Optional[str] = None, check: bool = True) -> str:
    """
    Run ``ip [-n NS] ARGS``; return its output.

    :raises RuntimeError: when it fails and C{check} is set, with its stderr.
    """
    argv = ["ip"] + (["-n", ns] if ns else []) + list(args)
    done = subprocess.run(argv, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


def ip_batch(ns: str, lines: list[str]) -> None:
    """
    Run many ``ip`` commands in namespace C{ns} in one process.
    """
    done = subprocess.run(["ip", "-n", ns, "-batch", "-"], input="\n".join(lines) + "\n",
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip -n {ns} -batch failed: {done.stderr.strip()}")


def _kill_inside(ns: str) -> None:
    """
    End every process in namespace C{ns}: SIGTERM, then SIGKILL for those
    still there after 3 s.
    """
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
        pids = [int(p) for p in ip("netns", "pids", ns, check=False).split()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and ip("netns", "pids", ns, check=False).split():
            time.sleep(0.05)


def remove_stale() -> list[str]:
    """
    Delete the lab namespaces of runs whose process has gone (a run killed
    before its clean-up), with every process still inside.

    :returns: the namespaces deleted.
    """
    stale = []
    for line in ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(r"lpy(\d+)(-\d+)?[a-z]+\d*", name)
        if m is None or Path(f"/proc/{m.group(1)}").exists():
            continue
        _kill_inside(name)
        ip("netns", "del", name, check=False)
        stale.append(name)
    return stale


class Network:
    """
    Namespaces plugged into bridges of one switch namespace, and the
    processes started in them.  A subclass says what to build (L{_build}).

    :ivar hosts: role to L{Host}.
    :ivar switch: the switch's namespace (bridges, and the hosts' ports).
    :ivar procs: the processes started with L{start} (logs in C{directory}).
    """

    def __init__(self, directory: Path, procs: Optional[Processes] = None):
        """
        :param procs: where to start processes (a test's, from
            L{tests.e2e.start_processes}); default a new one in C{directory}.
        """
        n = next(_labs)
        self.tag = f"lpy{os.getpid()}" + (f"-{n}" if n else "")
        self.directory = directory.resolve()
        self.procs = procs if procs is not None else Processes(self.directory)
        self.switch = self.tag + SWITCH
        self.hosts: dict[str, Host] = {}
        self.created = False

    # -- building and tearing down ---------------------------------------------

    def create(self) -> None:
        """
        Make the switch, the hosts' namespaces, links, addresses and routes.

        :raises RuntimeError: when an ``ip`` command fails (after removing
            what was made).
        """
        remove_stale()
        self.created = True
        try:
            self._namespace(self.switch)
            self._build()
        except BaseException:
            self.destroy()
            raise

    def _build(self) -> None:
        raise NotImplementedError

    def _namespace(self, ns: str) -> None:
        ip("netns", "add", ns)
        # Quiet IPv6: no duplicate address detection (addresses usable at
        # once), no router solicitations; ARP requests name the main address.
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                        "net.ipv6.conf.default.accept_dad=0",
                        "net.ipv6.conf.default.router_solicitations=0",
                        "net.ipv4.conf.default.arp_announce=2",
                        "net.ipv4.conf.all.arp_announce=2"],
                       check=True, capture_output=True)
        ip("link", "set", "lo", "up", ns=ns)

    def _bridge(self, name: str) -> None:
        ip("link", "add", name, "type", "bridge", ns=self.switch)
        ip("link", "set", name, "up", ns=self.switch)

    def port(self, host: Host) -> str:
        """
        The name of C{host}'s port on the switch (the far end of its eth0).
        """
        return "port" + host.ns[len(self.tag):]

    def _plug(self, host: Host, bridge: str = "br0") -> None:
        """
        Make C{host}'s namespace and plug its eth0 into C{bridge}.
        """
        self._namespace(host.ns)
        port = self.port(host)
        ip("link", "add", host.iface, "netns", host.ns, "type", "veth",
           "peer", "name", port, "netns", self.switch)
        ip_batch(self.switch, [f"link set dev {port} master {bridge}",
                               f"link set dev {port} up"])
        ip_batch(host.ns, [
            f"link set dev {host.iface} address {host.mac}",
            f"addr add {host.address}/24 dev {host.iface}",
            f"addr add {host.address6}/64 dev {host.iface} nodad",
            f"link set dev {host.iface} up",
        ])

    def set_port(self, host: Host, up: bool) -> None:
        """
        Cut (C{up} false) or restore C{host}'s link: ``ip link set PORT
        down|up`` on its switch port, so its eth0 loses its carrier, as when
        its cable is pulled.
        """
        ip("link", "set", self.port(host), "up" if up else "down", ns=self.switch)

    def destroy(self) -> None:
        """
        Stop every process started (the logged ones first, politely), kill
        anything else inside, and delete the namespaces.  Safe to call twice.
        """
        if not self.created:
            return
        self.procs.stop_all()
        for ns in [h.ns for h in self.hosts.values()] + [self.switch]:
            _kill_inside(ns)
            ip("netns", "del", ns, check=False)
        self.created = False

    # -- processes -------------------------------------------------------------

    def start(self, host: Host, name: str, argv: list[str]) -> subprocess.Popen:
        """
        Start C{argv} in C{host}'s namespace, logging to C{name}.out.
        """
        return self.procs.start(name, host.command(argv))

    def run(self, host: Host, argv: list[str], timeout: float = 60.0,
            check: bool = True) -> subprocess.CompletedProcess:
        """
        Run C{argv} in C{host}'s namespace to its end (blocking).

        :raises RuntimeError: when it fails and C{check} is set.
        """
        done = subprocess.run(host.command(argv), capture_output=True, text=True,
                              timeout=timeout, env=environment(), stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} in {host.ns} exited {done.returncode}: "
                               f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
        return done


class Lab(Network):
    """
    The attack lab's namespaces (four, and any L{add_host} made).

    :ivar attacker: L{Host}; also C{victim}, C{gateway}.
    """

    def __init__(self, directory: Path, procs: Optional[Processes] = None):
        Network.__init__(self, directory, procs)
        self.attacker = Host(self.tag + ATTACKER, 1)
        self.victim = Host(self.tag + VICTIM, 2)
        self.gateway = Host(self.tag + GATEWAY, 254)
        self.hosts.update({ATTACKER: self.attacker, VICTIM: self.victim,
                           GATEWAY: self.gateway})
        self._sources = itertools.count(1)
        self._targets = itertools.count(1)
        self._hosts = itertools.count(10)

    def _build(self) -> None:
        self._bridge("br0")
        for host in self.hosts.values():
            self._plug(host)
        a, v, g = self.attacker, self.victim, self.gateway
        ip_batch(v.ns, [f"addr add {t}/32 dev {v.iface}" for t in self.targets()]
                 + [f"route add 10.78.0.0/16 via {a.address}",
                    f"route add fd78::/64 via {a.address6}",
                    f"route add default via {g.address}"])
        ip("route", "add", "10.79.0.0/16", "via", v.address, ns=a.ns)

    def add_host(self) -> Host:
        """
        Another host on the switch, 10.77.0.N with MAC 02:77:00:00:00:N
        (N from 10 up): a bystander whose address can be spoofed, or a
        fresh MAC for an ARP storm; removed with the lab.

        :raises RuntimeError: past 10.77.0.253.
        """
        number = next(self._hosts)
        if number > 253:
            raise RuntimeError("no more host addresses in 10.77.0.0/24")
        host = Host(f"{self.tag}h{number}", number)
        self.hosts[f"h{number}"] = host
        self._plug(host)
        return host

    # -- addresses -------------------------------------------------------------

    def targets(self) -> list[str]:
        """
        The victim's extra addresses for horizontal scans: 10.79.1.1 ...
        """
        return [f"10.79.1.{i}" for i in range(1, TARGETS + 1)]

    def target(self) -> str:
        """
        A fresh address of the victim (10.79.16.1 ...), added to its eth0:
        the target of one attack, or the source of one of its clients.
        """
        addr = str(ipaddress.IPv4Address("10.79.16.0") + next(self._targets))
        ip("addr", "add", f"{addr}/32", "dev", self.victim.iface, ns=self.victim.ns)
        return addr

    def source(self, family: int = 4) -> str:
        """
        A fresh attacker source address (10.78.X.Y or fd78::N), added to the
        attacker's eth0; each call gives a new one, so alerts keyed by their
        source never merge across attacks.
        """
        n = next(self._sources)
        if family == 6:
            addr, length = f"fd78::{n:x}", 128
        else:
            addr, length = str(ipaddress.IPv4Address("10.78.0.0") + n), 32
        ip("addr", "add", f"{addr}/{length}", "dev", self.attacker.iface,
           *(["nodad"] if family == 6 else []), ns=self.attacker.ns)
        return addr


class Sites(Network):
    """
    Hosts at two sites: each site a bridge in the switch namespace
    (``br0``, ``br1``), the two bridges joined by the WAN link, a veth pair
    ``wan0``–``wan1``.  Every host is on 10.77.0.0/24 (and fd77::/64), so
    while the WAN is up any host reaches any other; L{set_wan} cuts it and
    partitions the sites, L{Network.set_port} cuts one host's own link.

    :ivar hosts: role (as given) to L{Host}, numbered 1, 2 … in the order
        given (10.77.0.1 …).
    """

    def __init__(self, directory: Path, sites: tuple[list[str], list[str]],
                 procs: Optional[Processes] = None):
        """
        :param sites: the roles of the hosts at each site (short words:
            ``h1``, ``a2``); they name the namespaces and the switch ports.
        :raises ValueError: for a role that is not a short word.
        """
        Network.__init__(self, directory, procs)
        self.site_of: dict[str, int] = {}
        number = itertools.count(1)
        for site, roles in enumerate(sites):
            for role in roles:
                if not re.fullmatch(r"[a-z]+\d*", role) or len(role) > 6 or role == SWITCH:
                    raise ValueError(f"bad host role {role!r}: a short word like h1")
                self.hosts[role] = Host(self.tag + role, next(number))
                self.site_of[role] = site

    def _build(self) -> None:
        self._bridge("br0")
        self._bridge("br1")
        ip("link", "add", "wan0", "type", "veth", "peer", "name", "wan1", ns=self.switch)
        ip_batch(self.switch, ["link set dev wan0 master br0", "link set dev wan1 master br1",
                               "link set dev wan0 up", "link set dev wan1 up"])
        for role, host in self.hosts.items():
            self._plug(host, f"br{self.site_of[role]}")

    def set_wan(self, up: bool) -> None:
        """
        Cut (C{up} false) or restore the link between the sites: ``ip link
        set wan0 down|up`` in the switch (its peer ``wan1`` loses its
        carrier with it).
        """
        ip("link", "set", "wan0", "up" if up else "down", ns=self.switch)


def detect_config(learning_period: float = 5.0, quiet_after: float = 2.0,
                  extra: str = "") -> str:
    """
    The agent's detector settings for the lab: every threshold at its
    default; only the novelty detectors' learning period is short (a test
    cannot wait five minutes) and alerts end C{quiet_after} seconds after
    their condition stops (default 10 s), so a test can see them end.
    """
    return (f"[detect]\nquiet_after = {quiet_after}\n\n"
            f"[new_listener]\nlearning_period = {learning_period}\n\n"
            f"[new_outbound]\nlearning_period = {learning_period}\n\n{extra}")


class Loopy:
    """
    A real hub and agent in the victim's namespace: the hub on
    127.0.0.1:L{HUB_PORT} there, the agent capturing the victim's eth0 with
    C{config} (a L{detect_config} text) as its ``--detect-config``.
    """

    def __init__(self, lab: Lab, config: str):
        self.lab = lab
        self.config_path = lab.directory / "detect.toml"
        self.config_path.write_text(config)

    def start(self) -> None:
        lab, v = self.lab, self.lab.victim
        lab.start(v, "hub", [program("twistd"), "-n", "--pidfile=", "loopy-hub",
                             "--listen", f"tcp:{HUB_PORT}:interface=127.0.0.1",
                             "--name", "hub", "--data", str(lab.directory / "hub.data")])
        lab.start(v, AGENT_ID, [program("twistd"), "-n", "--pidfile=", "loopy-agent",
                                "-i", v.iface, "--hub", f"127.0.0.1:{HUB_PORT}",
                                "--detect-config", str(self.config_path),
                                "--agent-id", AGENT_ID])

    def exited(self) -> Optional[str]:
        """
        Why the hub or agent is no longer running (its log), or None.
        """
        for name in ("hub", AGENT_ID):
            proc = self.lab.procs.children.get(name)
            if proc is not None and proc.poll() is not None:
                return f"{name} exited {proc.returncode}:\n{self.lab.procs.output(name)[-3000:]}"
        return None

    def fleet(self, timeout: float = 5.0) -> Optional[dict]:
        """
        Run ``loopy-ui --json`` against the hub in the victim's namespace
        and return its document, or None when it failed.

        :raises AssertionError: when the hub or the agent has exited.
        """
        gone = self.exited()
        if gone:
            raise AssertionError(gone)
        return ui_json(self.lab.victim, f"127.0.0.1:{HUB_PORT}", timeout)

    def wait_online(self, timeout: float = 30.0) -> dict:
        """
        Wait until the hub shows the agent online with a capture report.
        """
        def online():
            entry = agent(self.fleet())
            return entry if entry and entry["status"] == "online" and entry["capture"] else None

        return poll(online, timeout, what="the victim's agent online at the hub")

    def wait_learned(self, timeout: float = 30.0) -> dict:
        """
        Wait until no detector is learning any more (the novelty detectors'
        C{learning} stat is 0).
        """
        def learned():
            stats = detect_stats(self.fleet()).get("detectors", {})
            if stats and not any(d.get("learning") for d in stats.values()):
                return stats
            return None

        return poll(learned, timeout, what="the detectors' learning period to end")


def ui_json(host: Host, hub: str, timeout: float = 5.0) -> Optional[dict]:
    """
    Run ``loopy-ui --json --hub HUB`` in C{host}'s namespace and return its
    document, or None when it failed (the hub could not be reached).
    """
    return ui_json_many([(host, hub)], timeout)[0]


def ui_json_many(asks: list[tuple[Host, str]], timeout: float = 5.0) -> list[Optional[dict]]:
    """
    L{ui_json} for each ``(host, hub)`` of C{asks}, all run at once.

    :returns: the documents (None for each that failed), in the order asked.
    """
    procs = [subprocess.Popen(
        host.command([program("loopy-ui"), "--json", "--hub", hub, "--timeout", str(timeout)]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=environment()) for host, hub in asks]
    docs = []
    for proc in procs:
        out, _err = proc.communicate()
        docs.append(json.loads(out) if proc.returncode == 0 else None)
    return docs


def poll(check: Callable[[], Any], timeout: float, interval: float = 0.2,
         what: str = "condition") -> Any:
    """
    Call C{check} every C{interval} seconds until it returns something
    true, and return that.

    :raises AssertionError: after C{timeout} seconds, with the last value.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                                 f"last: {str(last)[:2000]}")
        time.sleep(interval)


def agent(doc: Optional[dict]) -> Optional[dict]:
    """
    The victim agent's entry in a ``loopy-ui --json`` document, or None.
    """
    for entry in (doc or {}).get("agents", ()):
        if entry["agent_id"] == AGENT_ID:
            return entry
    return None


def detect_stats(doc: Optional[dict]) -> dict:
    """
    The detect analyser's snapshot in the victim's newest report ({} when
    there is none): counters, and per detector its stats.
    """
    return (agent(doc) or {}).get("detect") or {}


def alerts(doc: Optional[dict]) -> list[dict]:
    """
    The alerts of a ``loopy-ui --json`` document, newest first.
    """
    return list((doc or {}).get("alerts", ()))


def python() -> str:
    """
    The Python that runs this code (the virtualenv's), for helper scripts.
    """
    return sys.executable
