"""
The measurements that are not a climb: the agent's CPU at a typical
server's rate, its memory after a million distinct flows, and the offline
race against ``tshark``.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .contenders import Agent
from .generator import Generator
from .system import Processes, cpu_seconds, rss_bytes, wait_idle


@dataclass
class IdleCpu:
    rate: float  # pps achieved
    sent: int  # frames sent
    seconds: float  # wall seconds measured
    cpu: float  # agent CPU seconds in that time

    @property
    def percent(self) -> float:
        """
        Per cent of one core.
        """
        return self.cpu / self.seconds * 100


def idle_cpu(agent: Agent, generator: Generator, rate: float, seconds: float) -> IdleCpu:
    """
    The agent's CPU while the generator sends at C{rate} for C{seconds}
    (reports to the hub included, as in production).
    """
    wait_idle(agent.pid)
    started, before = time.monotonic(), cpu_seconds(agent.pid)
    result = generator.send(rate, seconds)
    wall, cpu = time.monotonic() - started, cpu_seconds(agent.pid) - before
    return IdleCpu(result["pps"], result["sent"], wall, cpu)


@dataclass
class Memory:
    flows: int  # SYNs sent, each a new 5-tuple
    rate: float  # pps achieved
    received: int  # frames the agent counted
    drops: int  # kernel drops meanwhile
    rss_before: int  # octets, agent just started
    rss_after: int  # octets, after the flows and the next report
    tcp: dict  # the agent's TCP counters after


def memory(agent: Agent, generator: Generator, flows: int, rate: float) -> Memory:
    """
    Start C{agent}, send C{flows} SYNs with distinct 5-tuples at C{rate},
    and read its RSS once it has reported them.
    """
    agent.start()
    try:
        before_report = agent.last
        rss_before = rss_bytes(agent.pid)
        result = generator.flows(flows, rate)
        wait_idle(agent.pid)
        after_report = agent.report_after(time.time())
        rss_after = rss_bytes(agent.pid)
    finally:
        agent.stop()
    capture_before, capture_after = before_report["capture"], after_report["capture"]
    tcp = {k: v for k, v in after_report.get("tcp", {}).items() if not isinstance(v, list)}
    return Memory(flows, result["pps"], capture_after["frames"] - capture_before["frames"],
                  capture_after["kernel_drops"] - capture_before["kernel_drops"],
                  rss_before, rss_after, tcp)


@dataclass
class Offline:
    label: str
    frames: int  # frames in the file
    wall: float  # seconds, process start to exit
    cpu: float  # CPU seconds of the process
    code: int  # exit code
    note: str = ""

    @property
    def pps(self) -> float:
        return self.frames / self.wall if self.wall else 0.0

    @property
    def cpu_per_mpkt(self) -> float:
        return self.cpu / max(self.frames, 1) * 1e6


def _timed(procs: Processes, name: str, args: list[str], cpu: Optional[int],
           stdout=None) -> tuple[float, float, int]:
    """
    Run a command to its end: (wall seconds, CPU seconds, exit code).
    """
    started = time.monotonic()
    proc = procs.start(name, args, cpu=cpu, stdout=stdout)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    procs.children.pop(name, None)
    return wall, usage.ru_utime + usage.ru_stime, proc.returncode


def offline_agent(procs: Processes, bin_dir: Path, hub_port: int, pcap: Path,
                  frames: int, cpu: Optional[int]) -> Offline:
    """
    ``twistd loopy-agent --pcap FILE --exit-after-pcap`` (all analysers,
    final report to the hub), start to exit.
    """
    wall, used, code = _timed(procs, "agent-offline", [
        str(bin_dir / "twistd"), "-n", "--pidfile=", "loopy-agent", "--pcap", str(pcap),
        "--exit-after-pcap", "--hub", f"tcp:127.0.0.1:{hub_port}",
        "--agent-id", "bench-offline"], cpu)
    found = re.search(r"replayed .*?: (\d+) frames.*?\((\d+) frames/s\)",
                      procs.log("agent-offline"))
    note = f"replay loop alone: {int(found.group(2)):,} frames/s" if found else "no replay line"
    if found and int(found.group(1)) != frames:
        note += f"; replayed {int(found.group(1)):,} of {frames:,} frames"
    return Offline("loopy agent --pcap", frames, wall, used, code, note)


def offline_tshark(procs: Processes, pcap: Path, frames: int, cpu: Optional[int]) -> Offline:
    """
    ``tshark -r FILE -q -z conv,tcp -z conv,udp -z conv,ip``, start to exit.
    """
    with open(procs.directory / "tshark.out", "w") as out:
        wall, used, code = _timed(procs, "tshark", [
            "tshark", "-r", str(pcap), "-q", "-z", "conv,tcp", "-z", "conv,udp",
            "-z", "conv,ip"], cpu, stdout=out)
    return Offline("tshark -r -z conv,tcp,udp,ip", frames, wall, used, code)


def median(runs: list[Offline]) -> Offline:
    """
    The run with the median wall time, noting the others' times.
    """
    ordered = sorted(runs, key=lambda o: o.wall)
    middle = ordered[len(ordered) // 2]
    if len(runs) > 1:
        walls = ", ".join(f"{o.wall:.2f}" for o in runs)
        middle.note = f"median of {len(runs)} runs ({walls} s)" + (
            f"; {middle.note}" if middle.note else "")
    return middle


def warm(path: Path) -> None:
    """
    Read a file once so that neither contender pays for the disk.
    """
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass
