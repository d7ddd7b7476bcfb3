"""
What the benchmark reads from the machine (CPU time and RSS of a process,
``lo``'s counters, the machine's description) and the child processes it
starts and always stops.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """
    User plus system CPU seconds of a process, all its threads
    (``utime`` + ``stime``, fields 14 and 15 of proc(5) ``/proc/PID/stat``).
    """
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()  # fields 3 on: state is [0]
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """
    Resident set size of a process in octets (``VmRSS`` of ``/proc/PID/status``).
    """
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def wait_idle(pid: int, busy: float = 0.05, window: float = 0.25,
              timeout: float = 60.0) -> float:
    """
    Wait until a process uses less than C{busy} of a core over C{window}
    seconds (it has drained its socket), at most C{timeout} seconds.

    :returns: its CPU seconds at that moment.
    """
    deadline = time.monotonic() + timeout
    last = cpu_seconds(pid)
    while True:
        time.sleep(window)
        now = cpu_seconds(pid)
        if now - last < busy * window or time.monotonic() > deadline:
            return now
        last = now


def lo_counters() -> dict:
    """
    Counters that show what the generator's frames did to the host:

    - ``otherhost``: IPv4/IPv6 frames ``lo`` dropped as PACKET_OTHERHOST
      (``ip -s -s -j link``; None where the kernel or iproute2 lacks it);
    - ``tcp_out_rsts``: TCP resets the host sent (``/proc/net/snmp`` OutRsts);
    - ``backlog_drops``: frames dropped before any socket saw them, because a
      CPU's input backlog was full (``/proc/net/softnet_stat``, column 2).
    """
    counters: dict[str, Optional[int]] = {"otherhost": None}
    try:
        out = subprocess.run(["ip", "-s", "-s", "-j", "link", "show", "lo"],
                             capture_output=True, text=True, timeout=10).stdout
        counters["otherhost"] = json.loads(out)[0]["stats64"]["rx"].get("otherhost")
    except (OSError, ValueError, KeyError, IndexError, subprocess.SubprocessError):
        pass
    with open("/proc/net/snmp") as f:
        lines = [line.split() for line in f if line.startswith("Tcp:")]
    counters["tcp_out_rsts"] = int(lines[1][lines[0].index("OutRsts")])
    with open("/proc/net/softnet_stat") as f:
        counters["backlog_drops"] = sum(int(line.split()[1], 16) for line in f)
    return counters


def packet_listeners() -> int:
    """
    Packet sockets of any process that receive every protocol on ``lo`` or
    on all interfaces (``/proc/net/packet``: Proto 0003, ETH_P_ALL): each
    gets a copy of every frame sent on ``lo``.
    """
    interfaces = {"0", str(socket.if_nametoindex("lo"))}
    with open("/proc/net/packet") as f:
        rows = [line.split() for line in f][1:]
    return sum(1 for row in rows if row[3] == "0003" and row[4] in interfaces)


def lo_rx_packets() -> int:
    """
    Frames ``lo`` has received (each frame sent on it counts once).
    """
    with open("/sys/class/net/lo/statistics/rx_packets") as f:
        return int(f.read())


def difference(after: dict, before: dict) -> dict:
    """
    C{after} minus C{before}, key by key (None where either is None).
    """
    return {k: (None if after.get(k) is None or before.get(k) is None
                else after[k] - before[k]) for k in after}


def tool_version(args: list[str], pattern: str = r"[\d]+\.[\d.]+") -> str:
    """
    The first version-looking word a tool prints, or "missing".
    """
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "missing"
    found = re.search(pattern, out.stdout + out.stderr)
    return found.group(0) if found else "unknown"


def machine(python: str) -> list[tuple[str, str]]:
    """
    The machine and the tools, as (what, description) pairs.

    :param python: the contenders' Python (the virtualenv's).
    """
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    py = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                        capture_output=True, text=True).stdout.strip()
    scapy = subprocess.run([python, "-c", "import scapy; print(scapy.__version__)"],
                           capture_output=True, text=True).stdout.strip()
    return [
        ("CPU", f"{model}, {os.cpu_count()} cores"),
        ("memory", f"{mem_kib / 2**20:.1f} GiB"),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("Python", f"{py} ({python})"),
        ("tcpdump", tool_version(["tcpdump", "--version"])),
        ("tshark", tool_version(["tshark", "--version"])),
        ("scapy", scapy or "missing"),
        ("gcc", tool_version(["gcc", "--version"])),
    ]


class Processes:
    """
    Child processes, each in its own process group and optionally pinned to
    one CPU, logging to a file; L{stop_all} ends every one still running.
    """

    def __init__(self, directory: Path, env: dict):
        self.directory = directory
        self.env = env
        self.children: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], cpu: Optional[int] = None,
              stdout=None) -> subprocess.Popen:
        """
        Start C{args}; its output goes to C{DIRECTORY/NAME.log} unless
        C{stdout} is given (then stderr still goes to the log).
        """
        log = open(self.directory / f"{name}.log", "w")

        def pin():
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        proc = subprocess.Popen(
            args, stdout=stdout if stdout is not None else log, stderr=log,
            stdin=subprocess.DEVNULL, env=self.env, cwd=str(self.directory),
            start_new_session=True, preexec_fn=pin,
        )
        log.close()
        self.children[name] = proc
        return proc

    def log(self, name: str) -> str:
        try:
            return (self.directory / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, name: str, sig: int = signal.SIGTERM, wait: float = 10.0) -> Optional[int]:
        """
        Signal a child's process group and wait for it (SIGKILL after C{wait}).

        :returns: its exit code.
        """
        proc = self.children.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        return proc.returncode

    def stop_all(self) -> None:
        for name in list(self.children):
            self.stop(name)
