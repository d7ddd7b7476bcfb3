"""
The printed result of ``bench/mesh``: the run, one row per hub, the
simulator, and the issue's targets with PASS/MISS.
"""

from __future__ import annotations

import statistics
import textwrap
from dataclasses import dataclass, field
from typing import Optional

from capturebench.report import verdict
from meshbench.propagation import quantile

#: Issue 5's targets: 5 hubs × 500 agents at 1 report/s each, p99 time for a
#: report to reach every hub under 1.5 s, each hub under half a core.
TARGET_HUBS, TARGET_AGENTS, TARGET_RATE = 5, 500, 1.0
TARGET_P99 = 1.5  # seconds
TARGET_CORES = 0.5  # of one core, per hub


@dataclass
class HubRun:
    """
    One hub's measurements: its HubInfo (as JSON) and CPU seconds at the
    start and end of the window, and its last answer's fleet counts.
    """

    name: str
    port: int
    pid: int
    cpu: tuple[float, float] = (0.0, 0.0)
    info: tuple[dict, dict] = ({}, {})
    agents: int = 0  # agents the hub lists at the end
    online: int = 0  # of those, online

    def cores(self, seconds: float) -> float:
        return (self.cpu[1] - self.cpu[0]) / seconds

    def rate(self, counter: str, seconds: float) -> float:
        return (self.info[1].get(counter, 0) - self.info[0].get(counter, 0)) / seconds


@dataclass
class Run:
    hubs: int
    agents: int
    rate: float
    warmup: float
    duration: float  # the window as asked
    gossip_interval: float
    topology: str
    machine: list[tuple[str, str]]
    report_json: int  # octets of one report's JSON
    report_wire: int  # octets of it compressed, as sent
    seconds: float = 0.0  # the window as measured
    hub_runs: list[HubRun] = field(default_factory=list)
    sim_cpu: tuple[float, float] = (0.0, 0.0)
    sim_status: list[dict] = field(default_factory=list)  # its lines in the window
    sim_sent: tuple[int, int] = (0, 0)  # reports sent at the start and end
    reach: Optional[list[float]] = None  # s, each watched report's time to reach every hub
    age_samples: int = 0  # replication ages a hub keeps at most (loopy.hub.server)
    stalled: Optional[float] = None  # share of the window some task waited for a CPU
    load: float = 0.0  # 1-minute load average at the window's end


def table(rows: list[list[str]], header: list[str]) -> list[str]:
    """
    Columns padded to their widest cell; every column but the first is a
    number, right-aligned.
    """
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                      for i, (c, w) in enumerate(zip(row, widths)))
            for row in [header, ["-" * w for w in widths]] + rows]


def propagation(run: Run) -> Optional[tuple[float, float]]:
    """
    The worst hub's replication age p50 and p99 (seconds), or None when the
    hubs are not peered.
    """
    if run.topology == "none" or run.hubs < 2:
        return None
    return (max(h.info[1].get("replication_age_p50", 0.0) for h in run.hub_runs),
            max(h.info[1].get("replication_age_p99", 0.0) for h in run.hub_runs))


def render(run: Run) -> str:
    s = run.seconds
    out = ["Loopy hub mesh benchmark (bench/mesh)", ""]
    width = max(len(k) for k, _ in run.machine)
    out += [f"  {k.ljust(width)}  {v}" for k, v in run.machine]
    shape = {"full": "a full mesh", "line": "a line", "none": "not peered (baseline)"}
    out += [""] + textwrap.wrap(
        f"{run.hubs} hubs ({shape[run.topology]}, gossip every {run.gossip_interval:g} s) × "
        f"{run.agents} simulated agents, {run.rate:g} report/s each, spread evenly over the "
        f"hubs and over each second, one process (bench/meshbench/agents.py). Each report: "
        f"{run.report_json:,} octets of JSON, {run.report_wire:,} compressed (every analyser, "
        "20 top talkers and conversations, 50 TCP connections, 20 DNS transactions). "
        f"Measured over {s:.1f} s after {run.warmup:g} s of warm-up. {contention(run)}",
        width=96)
    rows = []
    for h in run.hub_runs:
        end = h.info[1]
        cores = h.cores(s)
        rows.append([
            h.name, f"{end.get('agents_linked', 0)}", f"{h.online}/{h.agents}",
            f"{end.get('peers_linked', 0)}", f"{cores:.3f}",
            f"{cores * 1000 / run.agents:.3f}",
            f"{h.rate('gossip_bytes_in', s) / 1000:,.1f}",
            f"{h.rate('gossip_bytes_out', s) / 1000:,.1f}",
            f"{h.rate('entries_replicated', s):,.0f}",
            f"{end.get('replication_age_p50', 0.0):.3f}",
            f"{end.get('replication_age_p99', 0.0):.3f}"])
    out += [""] + table(rows, ["hub", "linked", "online", "peers", "cores", "ms/agent/s",
                               "gossip in kB/s", "out kB/s", "entries/s", "age p50 s",
                               "age p99 s"])
    out += [""] + textwrap.wrap(
        "linked: agents reporting to the hub directly; online: agents it shows online, of "
        "those it lists; peers: live peer links; cores: the hub process's CPU time "
        "(utime + stime, /proc/PID/stat) over the window, in cores; ms/agent/s: that per "
        "agent of the fleet, in ms of CPU per second; gossip: octets on peer links "
        "(HubInfo.gossip_bytes_in/out, delta over the window); entries/s: entries taken "
        "from peers because they were newer (HubInfo.entries_replicated); age: "
        "HubInfo.replication_age_p50/p99, the hub's clock when it merged a report taken from "
        "a peer minus the report's ts (the simulator's clock when it sent the report: the "
        f"same machine's clock), over {age_window(run)} before the window's end.", width=96)
    out += ["", simulator(run), ""]
    out += targets(run)
    return "\n".join(out)


def contention(run: Run) -> str:
    """
    How busy the machine's CPUs were in the window: a run whose processes
    waited for a CPU much of the time measured the machine, not Loopy.
    """
    text = f"Load average at the end: {run.load:.2f}"
    if run.stalled is not None:
        text += (f"; some task waited for a CPU {run.stalled:.0%} of the window (PSI "
                 "/proc/pressure/cpu)")
    return text + "."


def age_window(run: Run) -> str:
    """
    How far back the hubs' replication ages reach at the window's end: a
    minute, or the newest C{age_samples} reports taken from peers.
    """
    from_peers = run.agents * run.rate * (run.hubs - 1) / run.hubs
    if not from_peers or run.age_samples / from_peers >= 60:
        return "the minute"
    return (f"the newest {run.age_samples:,} reports each hub took from peers (about "
            f"{run.age_samples / from_peers:.0f} s at {from_peers:,.0f} reports/s)")


def simulator(run: Run) -> str:
    s = run.seconds
    lines = run.sim_status
    sent = run.sim_sent[1] - run.sim_sent[0]
    failed = (lines[-1]["failed"] - lines[0]["failed"]) if lines else 0
    lost = lines[-1]["lost"] if lines else 0
    lag = max((x["lag_p99"] for x in lines), default=0.0)
    ack50 = statistics.median([x["ack_p50"] for x in lines]) if lines else 0.0
    ack99 = max((x["ack_p99"] for x in lines), default=0.0)
    return "\n".join(textwrap.wrap(
        f"Simulator: {(run.sim_cpu[1] - run.sim_cpu[0]) / s:.3f} cores; sent {sent / s:,.1f} "
        f"reports/s (asked {run.agents * run.rate:,.1f}); {failed} failed, {lost} links "
        f"lost; sends late by at most {lag * 1000:.1f} ms (worst second's p99); a hub's answer "
        f"to a report took {ack50 * 1000:.1f} ms (median second's p50), worst second's p99 "
        f"{ack99 * 1000:.1f} ms.", width=96))


def targets(run: Run) -> list[str]:
    out = []
    if (run.hubs, run.agents, run.rate) != (TARGET_HUBS, TARGET_AGENTS, TARGET_RATE):
        out += textwrap.wrap(
            f"(The targets are for {TARGET_HUBS} hubs × {TARGET_AGENTS} agents at "
            f"{TARGET_RATE:g} report/s; this run is {run.hubs} × {run.agents} at "
            f"{run.rate:g}.)", width=96)
    prop = propagation(run)
    if prop is None:
        out.append("  time for a report to reach every hub: no peered hubs to reach; "
                   f"target p99 < {TARGET_P99:g} s: MISS")
    else:
        p50, p99 = prop
        out.append(f"  time for a report to reach every hub (HubInfo, worst hub): p50 {p50:.3f} s,"
                   f" p99 {p99:.3f} s; target p99 < {TARGET_P99:g} s: "
                   f"{verdict(p99 < TARGET_P99)}")
        out += reached(run)
        missing = [f"{h.name} {h.online}/{run.agents}" for h in run.hub_runs
                   if h.online < run.agents]
        if missing:
            out.append(f"  !! not every hub shows every agent online: {', '.join(missing)}")
    busiest = max(run.hub_runs, key=lambda h: h.cores(run.seconds))
    cores = busiest.cores(run.seconds)
    behind = prop is not None and any(h.online < run.agents for h in run.hub_runs)
    judged = ("not judged: the hubs fell behind, so they did less than the fleet's work"
              if behind else verdict(cores < TARGET_CORES))
    out.append(f"  hub CPU: busiest {busiest.name} {cores:.3f} cores "
               f"({cores * 1000 / run.agents:.3f} ms per agent per s); target < "
               f"{TARGET_CORES:g} core each: {judged}")
    return out


def reached(run: Run) -> list[str]:
    """
    The watched (exact) time for a report to reach every hub, if measured.
    """
    if run.reach is None:
        return []
    sent = run.sim_sent[1] - run.sim_sent[0]
    if not run.reach:
        return [f"  time for a report to reach every hub (watched): none of the {sent:,} "
                "reports sent in the window was seen on every hub: MISS"]
    p99 = quantile(run.reach, 0.99)
    return textwrap.wrap(
        f"time for a report to reach every hub (watched: the latest hub's merge minus the "
        f"send): p50 {quantile(run.reach, 0.5):.3f} s, p99 {p99:.3f} s, max "
        f"{max(run.reach):.3f} s, over {len(run.reach):,} reports seen on every hub (of "
        f"{sent:,} sent in the window); target p99 < {TARGET_P99:g} s: "
        f"{verdict(p99 < TARGET_P99)}", width=96, initial_indent="  ",
        subsequent_indent="    ")
