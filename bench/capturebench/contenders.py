"""
The live contenders and one step of the ladder for each: send at a rate,
wait until the contender has drained its socket, count what it received and
what the kernel dropped, and the contender's CPU seconds from the first frame
sent until it went idle.

Loopback accounting: a packet socket on ``lo`` gets every frame twice, the
outgoing copy (PACKET_OUTGOING) and the incoming one.  All three contenders
skip the outgoing copy (Loopy and libpcap by design, scapy because it reads
with ``L2Socket``), so each is expected to receive every frame sent once.
Kernel drops count both copies, so any drop fails the step.

Other programs may use ``lo`` at the same time (this is often a shared
machine).  Every contender gets the same kernel filter, which passes this
run's frames only (L{Generator.filter}: a tag in their MAC addresses), and
every step counts the frames on ``lo`` that were not the generator's
(``foreign``), so that a disturbed step can be repeated.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .generator import Generator, limited
from .system import Processes, cpu_seconds, lo_rx_packets, packet_listeners, wait_idle

#: A step with more foreign frames on lo than this share of its own was disturbed.
FOREIGN_SHARE = 0.01


@dataclass
class Step:
    """
    One rate step of one contender.
    """

    requested: float  # pps asked of the generator
    achieved: float  # pps the generator sent
    sent: int  # frames sent
    seconds: float  # seconds the generator sent for
    received: int  # frames the contender counted
    drops: int  # the kernel's drops on the contender's socket
    cpu: float  # contender CPU seconds, first frame sent until idle
    drain: float = 0.0  # seconds from the last frame sent until the contender was idle
    foreign: int = 0  # other frames on lo meanwhile
    others: int = 0  # other programs' capture sockets on lo (they get every frame too)
    notes: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """
        Zero kernel drops and every frame received (other traffic on ``lo``
        may add a few frames, never remove any).
        """
        return self.drops == 0 and self.received >= self.sent

    @property
    def rate(self) -> float:
        """
        The step's rate in pps: the rate asked for when the generator came
        within 0.5 % of it (pacing ends a step a few frames short), else the
        rate it achieved.
        """
        return self.requested if self.achieved >= 0.995 * self.requested else self.achieved

    @property
    def disturbed(self) -> bool:
        """
        Whether other traffic on ``lo`` was large enough to matter.
        """
        return self.foreign > 500 + FOREIGN_SHARE * self.sent

    @property
    def generator_limited(self) -> bool:
        return limited({"pps": self.achieved, "requested_pps": self.requested})

    @property
    def cpu_per_mpkt(self) -> float:
        """
        CPU seconds per million frames received.
        """
        return self.cpu / max(self.received, 1) * 1e6

    def line(self) -> str:
        verdict = "ok" if self.ok else "FAIL"
        if self.generator_limited:
            verdict += " (generator-limited)"
        if self.disturbed:
            verdict += f" (disturbed: {self.foreign:,} foreign frames on lo)"
        if self.others:
            verdict += f" ({self.others} other capture sockets on lo)"
        return (f"{self.requested:>9,.0f} pps asked, {self.achieved:>9,.0f} sent/s: "
                f"sent {self.sent:,} received {self.received:,} drops {self.drops:,} "
                f"cpu {self.cpu:.2f} s ({self.cpu_per_mpkt:.1f} s/Mpkt) "
                f"idle {self.drain:.2f} s after: {verdict}")


def _step(generator: Generator, rate: float, seconds: float, pid: int,
          linger: float = 0.0) -> tuple[dict, float, dict]:
    """
    Send, then wait until C{pid} has drained, and C{linger} seconds more.

    :returns: the generator's result, C{pid}'s CPU seconds used, and the
        L{Step} fields C{drain} and C{foreign}.
    """
    before, frames = cpu_seconds(pid), lo_rx_packets()
    others = packet_listeners() - 1  # the contender's own socket
    result = generator.send(rate, seconds)
    sent = time.monotonic()
    wait_idle(pid)
    drain = time.monotonic() - sent
    time.sleep(linger)
    foreign = lo_rx_packets() - frames - result["sent"]
    return result, cpu_seconds(pid) - before, {"drain": drain, "foreign": foreign,
                                               "others": others}


class Agent:
    """
    A real ``twistd loopy-agent -i lo`` (all analysers) reporting to a real
    hub; its counters come from ``loopy-ui --json``.
    """

    def __init__(self, procs: Processes, bin_dir: Path, hub_port: int, mode: Optional[str],
                 cpu: Optional[int], name: str, capture_filter: str):
        """
        :param mode: the agent's ``--capture`` mode, or None where the agent
            has no such option.
        :param capture_filter: its ``--filter``.
        """
        self.procs, self.bin_dir, self.hub_port = procs, bin_dir, hub_port
        self.mode, self.cpu, self.name, self.filter = mode, cpu, name, capture_filter
        self.label = "loopy agent" + (f" ({mode})" if mode else "")
        self.pid = 0
        self.last: Optional[dict] = None

    def start(self, timeout: float = 30.0) -> None:
        """
        Start the agent and wait for its first report at the hub.

        :raises RuntimeError: with its log, if it is not online in time.
        """
        args = [str(self.bin_dir / "twistd"), "-n", "--pidfile=", "loopy-agent",
                "--hub", f"tcp:127.0.0.1:{self.hub_port}", "-i", "lo",
                "--agent-id", self.name, "--filter", self.filter]
        if self.mode:
            args += ["--capture", self.mode]
        proc = self.procs.start(self.name, args, cpu=self.cpu)
        self.pid = proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            agent = self.report()
            if agent is not None and agent["status"] == "online":
                self.settle()
                return
            time.sleep(0.5)
        self.procs.stop(self.name)
        raise RuntimeError(f"{self.label} did not come online:\n{self.procs.log(self.name)[-3000:]}")

    def stop(self) -> None:
        self.procs.stop(self.name)

    def settle(self) -> None:
        """
        Wait until the agent is idle and has reported: the counters the
        next step starts from.
        """
        wait_idle(self.pid)
        self.last = self.report_after(time.time())

    def report(self) -> Optional[dict]:
        """
        This agent's entry in ``loopy-ui --json``, or None.
        """
        done = subprocess.run(
            [str(self.bin_dir / "loopy-ui"), "--hub", f"127.0.0.1:{self.hub_port}", "--json",
             "--timeout", "5"], capture_output=True, text=True)
        if done.returncode != 0:
            return None
        for agent in json.loads(done.stdout)["agents"]:
            if agent["agent_id"] == self.name:
                return agent
        return None

    def report_after(self, moment: float, timeout: float = 15.0) -> dict:
        """
        The first report the agent made after C{moment} (seconds since the
        epoch): its counters include everything read and dropped until then.
        """
        deadline = time.monotonic() + timeout
        while True:
            agent = self.report()
            if agent is not None and agent["ts"] > moment:
                return agent
            if time.monotonic() > deadline:
                raise RuntimeError(f"no report from {self.label} after {moment}; "
                                   f"log:\n{self.procs.log(self.name)[-3000:]}")
            time.sleep(0.3)

    def step(self, generator: Generator, rate: float, seconds: float) -> Step:
        before = self.last["capture"]
        result, cpu, fields = _step(generator, rate, seconds, self.pid)
        self.last = self.report_after(time.time())
        after = self.last["capture"]
        return Step(rate, result["pps"], result["sent"], result["seconds"],
                    received=after["frames"] - before["frames"],
                    drops=after["kernel_drops"] - before["kernel_drops"], cpu=cpu, **fields,
                    notes={"malformed": after["malformed"] - before["malformed"]})


class Tcpdump:
    """
    ``tcpdump -i lo -w /dev/null -n -B 8192 FILTER``, one process per step;
    its counts come from its exit summary.
    """

    label = "tcpdump -w /dev/null"

    def __init__(self, procs: Processes, cpu: Optional[int], capture_filter: str):
        self.procs, self.cpu, self.filter = procs, cpu, capture_filter

    def step(self, generator: Generator, rate: float, seconds: float) -> Step:
        proc = self.procs.start("tcpdump", ["tcpdump", "-i", "lo", "-w", "/dev/null", "-n",
                                            "-B", "8192", self.filter], cpu=self.cpu)
        deadline = time.monotonic() + 10
        while "listening on" not in self.procs.log("tcpdump"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tcpdump did not start: {self.procs.log('tcpdump')}")
            time.sleep(0.05)
        # tcpdump asks libpcap for a 1 s ring block timeout: the last block
        # reaches it up to 1 s after the last frame.
        result, cpu, fields = _step(generator, rate, seconds, proc.pid, linger=1.2)
        self.procs.stop("tcpdump", signal.SIGINT)
        summary = self.procs.log("tcpdump")
        captured = re.search(r"(\d+) packets? captured", summary)
        dropped = re.search(r"(\d+) packets? dropped by kernel", summary)
        if not captured or not dropped:
            raise RuntimeError(f"tcpdump printed no summary: {summary}")
        return Step(rate, result["pps"], result["sent"], result["seconds"],
                    received=int(captured.group(1)), drops=int(dropped.group(1)), cpu=cpu,
                    **fields)


class Scapy:
    """
    ``sniff(store=0)`` with an analysing callback (L{scapy_sniffer}), one
    process per step.
    """

    label = "scapy sniff(store=0)"

    def __init__(self, procs: Processes, python: str, cpu: Optional[int], capture_filter: str):
        self.procs, self.python, self.cpu, self.filter = procs, python, cpu, capture_filter

    def step(self, generator: Generator, rate: float, seconds: float) -> Step:
        out = self.procs.directory / "scapy.out"
        with open(out, "w") as f:
            proc = self.procs.start(
                "scapy", [self.python, str(Path(__file__).with_name("scapy_sniffer.py")),
                          self.filter],
                cpu=self.cpu, stdout=f)
        deadline = time.monotonic() + 30
        while "ready" not in out.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the scapy sniffer did not start: {self.procs.log('scapy')}")
            time.sleep(0.1)
        time.sleep(0.2)
        result, cpu, fields = _step(generator, rate, seconds, proc.pid)
        self.procs.stop("scapy", signal.SIGINT)
        lines = out.read_text().strip().splitlines()
        try:
            counts = json.loads(lines[-1])
        except (IndexError, ValueError):
            raise RuntimeError(f"the scapy sniffer printed no result: {self.procs.log('scapy')}")
        return Step(rate, result["pps"], result["sent"], result["seconds"],
                    received=counts["frames"], drops=counts["kernel_drops"], cpu=cpu,
                    notes=counts, **fields)


def python_of(bin_dir: Path) -> str:
    """
    The virtualenv's Python, else this one.
    """
    candidate = bin_dir / "python"
    return str(candidate) if candidate.exists() else sys.executable
