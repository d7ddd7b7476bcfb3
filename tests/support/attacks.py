"""
The attacks of the end-to-end attack tests and ``bench/detect``, made with
real tools in a L{tests.netns.Lab}, and the lab's ordinary services and
benign traffic.

Each recipe returns an L{Attack}: the commands to start (in which host's
namespace), what the alert must look like (kind, ``src``, ``dst``,
severity, evidence), and a tcpdump filter that matches the attack's first
packet on the victim's interface.  Every recipe takes fresh addresses (and
ports) from the lab, so the alerts of two attacks never merge.

Tools: nmap, hping3, ping, arpspoof (dsniff), arping (iputils), dig, curl,
and two helpers: L{tests.support.dnsamp} (spoofed DNS responses, scapy) and
L{tests.support.tunneldns} (a tunnel's DNS server).
"""

from __future__ import annotations

import base64
import itertools
import os
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from tests.netns import Host, Lab, Loopy, detect_config, python

#: The tunnel domain the attacker's DNS server answers for.
TUNNEL_DOMAIN = "t.example"
#: The benign names the gateway's DNS server answers (tests.support.dnsserver).
BENIGN_NAMES = [("www.loopy.test", "A"), ("mail.loopy.test", "AAAA"),
                ("text.loopy.test", "TXT"), ("nx.loopy.test", "A")]


@dataclass
class Attack:
    """
    One attack, ready to start.

    :ivar name: what it is, as tables print it (``nmap -sS``).
    :ivar detector: the detector that must see it (its stats key).
    :ivar kind: the alert kind it must raise.
    :ivar commands: ``(host, argv)`` to start at once, each in its host.
    :ivar src: the alert's expected C{src} (None: many sources).
    :ivar dst: the alert's expected C{dst} (None: many targets).
    :ivar severity: the expected severity, or None for any.
    :ivar evidence: keys the alert's evidence must have, with their values.
    :ivar first_packet: a tcpdump filter matching the attack's first packet
        as the victim's eth0 sees it.
    :ivar settings: the detector settings the attack has to cross, for
        reports.
    :ivar started: the names of its processes, once started.
    """

    name: str
    detector: str
    kind: str
    commands: list[tuple[Host, list[str]]]
    src: Optional[str]
    dst: Optional[str]
    first_packet: str
    severity: Optional[str] = None
    evidence: dict[str, Any] = field(default_factory=dict)
    settings: str = ""
    started: list[str] = field(default_factory=list)

    def matches(self, alert: dict) -> bool:
        """
        Whether C{alert} (a ``loopy-ui --json`` alert) is this attack's:
        same kind, source and target.
        """
        return (alert["kind"] == self.kind and alert["src"] == self.src
                and alert["dst"] == self.dst)

    def start(self, lab: Lab) -> None:
        """
        Start every command (a flood runs until L{stop}).
        """
        for host, argv in self.commands:
            name = f"{self.kind}-{next(_names)}"
            lab.start(host, name, argv)
            self.started.append(name)

    def stop(self, lab: Lab) -> None:
        """
        Stop the commands still running (SIGTERM: arpspoof then puts the
        real MAC back).
        """
        for name in self.started:
            lab.procs.stop(name)

    def output(self, lab: Lab) -> str:
        """
        The end of each command's output, for failure messages.
        """
        return "".join(lab.procs.output(n)[-1500:] for n in self.started)

    def mismatches(self, alert: dict) -> list[str]:
        """
        How C{alert} differs from what this attack must raise (empty: it
        is right).
        """
        wrong = []
        expected = [("kind", self.kind), ("src", self.src), ("dst", self.dst)]
        if self.severity is not None:
            expected.append(("severity", self.severity))
        for key, value in expected:
            if alert.get(key) != value:
                wrong.append(f"{key} is {alert.get(key)!r}, not {value!r}")
        for key, value in self.evidence.items():
            got = alert["evidence"].get(key)
            if got != value:
                wrong.append(f"evidence {key} is {got!r}, not {value!r}")
        return wrong


_names = itertools.count(1)
_ports = itertools.count(8101)


# -- services and benign traffic ---------------------------------------------

def start_services(lab: Lab) -> None:
    """
    The lab's ordinary services, started before the agent so that the
    victim's listeners are known to it: a web server on the victim (port
    80, every address); DNS (tests.support.dnsserver), a web server and
    NTP on the gateway; the tunnel's DNS server on the attacker.
    """
    v, g, a = lab.victim, lab.gateway, lab.attacker
    lab.start(v, "victim-web", [python(), "-m", "http.server", "80"])
    lab.start(g, "gateway-dns", [python(), "-m", "tests.support.dnsserver", g.address])
    lab.start(g, "gateway-web", [python(), "-m", "http.server", "80", "--bind", g.address])
    lab.start(g, "gateway-ntp", [python(), "-m", "tests.support.ntp", "serve", g.address])
    lab.start(a, "tunnel-dns", [python(), "-m", "tests.support.tunneldns", a.address,
                                TUNNEL_DOMAIN])


def wait_for_services(lab: Lab, timeout: float = 20.0) -> None:
    """
    Wait until every service answers (each asked from its own namespace's
    neighbour, so the asking is ordinary traffic too).
    """
    v, g, a = lab.victim, lab.gateway, lab.attacker
    checks = [
        (g, ["curl", "-sf", "-o", "/dev/null", f"http://{v.address}/"]),
        (v, ["curl", "-sf", "-o", "/dev/null", f"http://{g.address}/"]),
        (v, ["dig", f"@{g.address}", "+tries=1", "+time=1", "www.loopy.test", "A"]),
        (v, [python(), "-m", "tests.support.ntp", "ask", g.address]),
        (v, ["dig", f"@{a.address}", "+tries=1", "+time=1", f"ready.{TUNNEL_DOMAIN}", "A"]),
    ]
    deadline = time.monotonic() + timeout
    for host, argv in checks:
        while lab.run(host, argv, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"service not answering: {' '.join(argv)} in {host.ns}:\n"
                                   + "".join(lab.procs.output(n)[-1000:]
                                             for n in lab.procs.children))
            time.sleep(0.2)


def benign_round(lab: Lab, web: int = 10, names: int = 4) -> None:
    """
    One round of ordinary traffic: the gateway fetches C{web} pages from
    the victim's web server and the victim C{web} from the gateway's; the
    victim resolves C{names} names at the gateway's DNS server (one of them
    NXDOMAIN), asks its NTP server twice, and pings it and is pinged.
    """
    v, g = lab.victim, lab.gateway
    lab.run(g, ["curl", "-sf", "-o", "/dev/null"] + [f"http://{v.address}/"] * web)
    lab.run(v, ["curl", "-sf", "-o", "/dev/null"] + [f"http://{g.address}/"] * web)
    for qname, qtype in (BENIGN_NAMES * names)[:names]:
        lab.run(v, ["dig", f"@{g.address}", "+tries=1", "+time=2", qname, qtype])
    lab.run(v, [python(), "-m", "tests.support.ntp", "ask", g.address, "2"])
    lab.run(v, ["ping", "-c", "3", "-i", "0.2", "-W", "1", g.address])
    lab.run(g, ["ping", "-c", "3", "-i", "0.2", "-W", "1", v.address])


def prepared_lab(directory, config: Optional[str] = None) -> tuple[Lab, Loopy]:
    """
    A lab ready for attacks: namespaces, services, a hub and an agent in
    the victim (C{config}: its detector settings, L{detect_config} by
    default) that has seen one round of benign traffic while learning and
    learned.  On failure everything made is removed.
    """
    lab = Lab(directory)
    lab.create()
    try:
        start_services(lab)
        wait_for_services(lab)
        loopy = Loopy(lab, config or detect_config())
        loopy.start()
        loopy.wait_online()
        benign_round(lab)
        loopy.wait_learned()
    except BaseException:
        lab.destroy()
        raise
    return lab, loopy


# -- port scans ---------------------------------------------------------------

#: The technique word an alert names, to nmap's flag and the threshold it crosses.
SCANS = {
    "syn": ("-sS", "ports (20)"),
    "connect": ("-sT", "ports (20)"),
    "fin": ("-sF", "stealth_ports (5)"),
    "null": ("-sN", "stealth_ports (5)"),
    "xmas": ("-sX", "stealth_ports (5)"),
    "udp": ("-sU", "udp_ports (10)"),
}


def _nmap(src: str, *args: str) -> list[str]:
    # --send-ip: the kernel routes and resolves the next hop (ARP naming
    # the attacker's own address), as for any program; nmap's own ARP
    # would name the spoofed source and make the attacker's MAC claim it.
    return ["nmap", "-n", "-Pn", "--send-ip", "-e", "eth0", "-S", src,
            "--max-retries", "1", *args]


def port_scan(lab: Lab, technique: str = "syn", family: int = 4) -> Attack:
    """
    A vertical scan of the victim's main address from a fresh source: 100
    TCP ports (20 UDP ports, or 20 ports for the stealth probes, whose
    threshold is lower).
    """
    flag, threshold = SCANS[technique]
    ports = "1-100" if technique in ("syn", "connect") else "1-20"
    src = lab.source(family)
    dst = lab.victim.address if family == 4 else lab.victim.address6
    argv = _nmap(src, flag, "-p", ports, *(["-6"] if family == 6 else []), dst)
    return Attack(
        name=f"nmap {flag}" + (" (IPv6)" if family == 6 else ""), detector="port_scan",
        kind="port_scan", commands=[(lab.attacker, argv)], src=src, dst=dst,
        first_packet=f"src host {src}",
        evidence={"technique": technique, "shape": "vertical", "direction": "inbound"},
        settings=f"{threshold} in window (10 s)")


def horizontal_scan(lab: Lab) -> Attack:
    """
    One port (23) on each of the victim's L{tests.netns.TARGETS} extra
    addresses.
    """
    src = lab.source()
    targets = lab.targets()
    argv = _nmap(src, "-sS", "-p", "23", *targets)
    return Attack(
        name=f"nmap -sS, {len(targets)} hosts", detector="port_scan", kind="port_scan",
        commands=[(lab.attacker, argv)], src=src, dst=None,
        first_packet=f"src host {src}",
        evidence={"technique": "syn", "shape": "horizontal", "targets_count": len(targets)},
        settings="hosts (20) in window (10 s)")


# -- floods -------------------------------------------------------------------

def syn_flood(lab: Lab, spoofed: bool = False) -> Attack:
    """
    hping3 SYNs at 10,000 a second (``-i u100``) to the victim's web
    server on a fresh address: from one fresh source, or from random
    (spoofed) ones.
    """
    dst = lab.target()
    if spoofed:
        src, source, where = None, ["--rand-source"], f"dst host {dst} and tcp dst port 80"
    else:
        src = lab.source()
        source, where = ["-a", src], f"src host {src}"
    argv = ["hping3", "-q", "-S", "-p", "80", "-i", "u100", *source, dst]
    return Attack(
        name="hping3 -S" + (" --rand-source" if spoofed else ""), detector="syn_flood",
        kind="syn_flood", commands=[(lab.attacker, argv)], src=src, dst=dst,
        first_packet=where,
        evidence={"dport": 80,
                  "source_distribution": "many_spoofed" if spoofed else "single"},
        settings="syn_per_second (200), completion_ratio_max (0.5)")


def icmp_flood(lab: Lab) -> Attack:
    """
    ``ping -f`` (as fast as the replies come, at least 100 a second) from a
    fresh source to a fresh address.
    """
    src, dst = lab.source(), lab.target()
    return Attack(
        name="ping -f", detector="icmp_flood", kind="icmp_flood",
        commands=[(lab.attacker, ["ping", "-q", "-f", "-I", src, dst])], src=src, dst=dst,
        first_packet=f"src host {src}",
        evidence={"technique": "echo_request", "source_distribution": "single"},
        settings="echo_per_second (500) or bits_per_second (10M)")


def udp_flood(lab: Lab) -> Attack:
    """
    hping3 UDP datagrams at 10,000 a second to one closed port.
    """
    src, dst = lab.source(), lab.target()
    argv = ["hping3", "-q", "--udp", "-p", "9999", "-i", "u100", "-a", src, dst]
    return Attack(
        name="hping3 --udp", detector="udp_flood", kind="udp_flood",
        commands=[(lab.attacker, argv)], src=src, dst=dst,
        first_packet=f"src host {src}",
        evidence={"technique": "one_port", "source_distribution": "single"},
        settings="packets_per_second (2000) or bits_per_second (50M)")


def dns_amplification(lab: Lab, reflectors: int = 4, rate: float = 300.0,
                      seconds: float = 30.0) -> Attack:
    """
    Large DNS responses (ANY, ~1,400 octets) from C{reflectors} spoofed
    resolvers at C{rate} a second to a fresh address that asked nothing.
    """
    dst = lab.target()
    sources = [lab.source() for _ in range(reflectors)]
    a, v = lab.attacker, lab.victim
    argv = [python(), "-m", "tests.support.dnsamp", "--iface", a.iface, "--src-mac", a.mac,
            "--dst-mac", v.mac, "--dst", dst, "--rate", str(rate), "--seconds", str(seconds)]
    for s in sources:
        argv += ["--reflector", s]
    return Attack(
        name="spoofed DNS responses (scapy)", detector="dns_amplification",
        kind="dns_amplification", commands=[(a, argv)], src=None, dst=dst,
        first_packet=f"dst host {dst} and udp src port 53",
        evidence={"technique": "reflection", "reflectors_count": reflectors},
        settings="responses_per_second (50), mean_octets (512)")


# -- ARP ----------------------------------------------------------------------

def arp_spoof(lab: Lab, owner: Optional[Host] = None) -> Attack:
    """
    ``arpspoof -t VICTIM OWNER``: the attacker tells the victim, every 2 s,
    that C{owner}'s address (the victim's gateway by default) is at the
    attacker's MAC.  First the victim talks to C{owner}, so the real
    binding is known to the agent.
    """
    owner = owner or lab.gateway
    v, a = lab.victim, lab.attacker
    # A fresh ARP exchange (the victim's cache entry for the owner may be
    # younger than the agent), as a host makes every few minutes.
    lab.run(v, ["ip", "neigh", "flush", "to", owner.address])
    lab.run(v, ["ping", "-c", "1", "-W", "1", owner.address])
    gateway = owner is lab.gateway
    spa = "0x" + "".join(f"{int(x):02x}" for x in owner.address.split("."))
    return Attack(
        name="arpspoof", detector="arp", kind="arp_spoof",
        commands=[(a, ["arpspoof", "-i", a.iface, "-t", v.address, owner.address])],
        src=owner.address, dst=v.address,
        first_packet=f"arp and ether src {a.mac} and arp[6:2] = 2 and arp[14:4] = {spa}",
        severity="critical" if gateway else None,
        evidence={"reason": "gateway_mac_changed" if gateway else "mac_changed",
                  "ip": owner.address, "gateway": gateway},
        settings="a MAC change within rebind_after (300 s)")


def arp_storm(lab: Lab, host: Optional[Host] = None, processes: int = 40) -> Attack:
    """
    Gratuitous ARP from C{host} (the attacker by default): C{processes}
    ``arping -U`` at once, each one a second for 4 s (iputils arping's
    interval is whole seconds), about C{processes} a second.
    """
    host = host or lab.attacker
    argv = ["arping", "-q", "-U", "-I", host.iface, "-c", "4", "-i", "1", host.address]
    return Attack(
        name=f"arping -U x{processes}", detector="arp", kind="arp_storm",
        commands=[(host, argv)] * processes, src=host.mac, dst=None,
        first_packet=f"arp and ether src {host.mac}",
        evidence={"mac": host.mac},
        settings="storm_rate (20/s) for storm_seconds (2)")


# -- DNS abuse ----------------------------------------------------------------

def _dig_attack(lab: Lab, lines: list[str], **fields) -> Attack:
    """
    The victim, from a fresh address of its own (the client), asking the
    attacker's DNS server C{lines} (``dig -f``: ``NAME TYPE`` a line).
    """
    client = lab.target()
    path = lab.directory / f"names-{client}-{next(_names)}.txt"
    path.write_text("\n".join(lines) + "\n")
    argv = ["dig", f"@{lab.attacker.address}", "-b", client, "+tries=1", "+time=1",
            "-f", str(path)]
    return Attack(commands=[(lab.victim, argv)], src=client, dst=lab.attacker.address,
                  first_packet=f"src host {client} and udp dst port 53", **fields)


def _random_label(octets: int) -> str:
    return base64.b32encode(os.urandom(octets)).decode().lower().rstrip("=")


def dns_tunnel(lab: Lab, queries: int = 80) -> Attack:
    """
    A tunnel client on the victim: C{queries} TXT queries for long random
    base32 labels under one domain, as iodine or dnscat2 send, against the
    attacker's tunnel server.
    """
    lines = [f"{_random_label(25)}.{i}.{TUNNEL_DOMAIN} TXT" for i in range(queries)]
    attack = _dig_attack(lab, lines, name="dig: long TXT names", detector="dns_tunnel",
                         kind="dns_tunnel",
                         settings="unique_names (50) in window (60 s), encoded_share (0.5)")
    attack.evidence = {"domain": TUNNEL_DOMAIN, "client": attack.src}
    return attack


def dns_nxdomain(lab: Lab, queries: int = 80, domains: int = 40) -> Attack:
    """
    Domain-generation malware on the victim: C{queries} random names under
    C{domains} random domains, all NXDOMAIN.
    """
    tlds = ["com", "net", "org", "info"]
    zones = [f"{_random_label(10)[:12]}.{tlds[i % len(tlds)]}" for i in range(domains)]
    lines = [f"{_random_label(5)[:8]}.{zones[i % domains]} A" for i in range(queries)]
    attack = _dig_attack(lab, lines, name="dig: DGA names", detector="dns_nxdomain",
                         kind="dns_nxdomain_storm",
                         settings="nxdomains (50), domains (20) in window (60 s)")
    attack.evidence = {"client": attack.src}
    return attack


# -- novelty ------------------------------------------------------------------

def _serve_http(lab: Lab, host: Host, port: int, bind: Optional[str] = None,
                timeout: float = 10.0) -> None:
    """
    Start a web server on C{host}'s C{port} and wait until it listens
    (checked in ``/proc/net/tcp``, which sends no packet).
    """
    lab.start(host, f"http-{host.ns}-{port}",
              [python(), "-m", "http.server", str(port)] + (["--bind", bind] if bind else []))
    hexport = f":{port:04X} "
    deadline = time.monotonic() + timeout
    while True:
        table = lab.run(host, ["cat", "/proc/net/tcp", "/proc/net/tcp6"]).stdout
        if any(hexport in line and line.split()[3] == "0A" for line in table.splitlines()[1:]
               if len(line.split()) > 3):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"no web server on {host.ns} port {port}")
        time.sleep(0.1)


def new_listener(lab: Lab) -> Attack:
    """
    A web server started on the victim on a new port after learning, and a
    client connecting to it (from a fresh address, to a fresh one).
    """
    port = next(_ports)
    _serve_http(lab, lab.victim, port)
    src, dst = lab.source(), lab.target()
    argv = ["curl", "-s", "-o", "/dev/null", "--interface", src, f"http://{dst}:{port}/"]
    return Attack(
        name="new web server + curl", detector="new_listener", kind="new_listener",
        commands=[(lab.attacker, argv)], src=src, dst=dst,
        first_packet=f"dst host {dst} and tcp dst port {port}", severity="warning",
        evidence={"port": port, "address": dst},
        settings="after learning_period (5 s here)")


def new_outbound(lab: Lab) -> Attack:
    """
    The victim (a fresh address of it) fetching a page from a port it never
    used, on the attacker's web server.
    """
    port = next(_ports)
    a = lab.attacker
    _serve_http(lab, a, port, bind=a.address)
    client = lab.target()
    argv = ["curl", "-s", "-o", "/dev/null", "--interface", client, f"http://{a.address}:{port}/"]
    return Attack(
        name="curl to a new port", detector="new_outbound", kind="new_outbound",
        commands=[(lab.victim, argv)], src=client, dst=a.address,
        first_packet=f"src host {client} and tcp dst port {port}", severity="info",
        evidence={"dport": port, "proto": "tcp"},
        settings="after learning_period (5 s here)")


def tool_missing() -> Optional[str]:
    """
    The first attack tool not installed, or None.
    """
    import shutil

    for tool in ("nmap", "hping3", "arpspoof", "arping", "dig", "curl", "ping", "tcpdump"):
        if shutil.which(tool) is None:
            return tool
    return None

