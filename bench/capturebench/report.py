"""
The printed result: the machine, the mix, one table, the ratios against the
issue's targets (PASS/MISS), and what the frames did to the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .experiments import IdleCpu, Memory, Offline
from .ladder import Score

TARGET_RATE = 200_000  # pps, agent, zero drops
TARGET_VS_SCAPY = 50.0
TARGET_VS_TCPDUMP = 0.5
TARGET_IDLE_PERCENT = 2.0  # of one core at 1k pps
TARGET_RSS = 200 * 10**6  # octets after 1M flows
TARGET_VS_TSHARK = 1.0


@dataclass
class Results:
    machine: list[tuple[str, str]]
    mix: dict
    seconds: float  # per step
    capture_filter: str  # every live contender's kernel filter
    agents: list[Score] = field(default_factory=list)
    idle: dict[str, IdleCpu] = field(default_factory=dict)  # agent label -> 1k pps CPU
    tcpdump: Optional[Score] = None
    scapy: Optional[Score] = None
    memory: Optional[Memory] = None
    offline: list[Offline] = field(default_factory=list)
    loopback: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)  # every live Step
    frames_sent: int = 0  # frames of the mix sent on lo
    syns_sent: int = 0  # SYNs of the memory test sent on lo
    generator_fastest: float = 0.0
    elapsed: float = 0.0


def rate_text(score: Score) -> str:
    text = f"{score.rate:,.0f}"
    lower_bound = score.generator_limit is not None or score.exhausted
    return ("≥ " + text) if lower_bound and score.best else text


def score_notes(score: Score) -> str:
    notes = []
    if score.generator_limit is not None:
        notes.append(f"generator-limited at {score.generator_limit:,.0f} pps")
    if score.exhausted:
        notes.append("passed every step: a lower bound")
    if score.failed is not None and not score.failed.generator_limited:
        f = score.failed
        notes.append(f"drops from {f.requested:,.0f} pps "
                     f"({f.drops:,} dropped, {f.received:,}/{f.sent:,} received)")
    if score.best is None:
        notes.append("failed at the lowest step")
    return "; ".join(notes)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    numeric = {2, 3}

    def fmt(row):
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]


def render(r: Results) -> str:
    out = ["Loopy capture benchmark (bench/capture)", ""]
    width = max(len(k) for k, _ in r.machine)
    out += [f"  {k.ljust(width)}  {v}" for k, v in r.machine]
    total = r.mix.get("frames", 0) or 1
    kinds = ", ".join(f"{k} {r.mix[k] / total:.1%}" for k in ("tcp", "dns", "udp", "icmp", "arp"))
    out += ["", f"Mix on lo (pool of {r.mix.get('frames', 0):,} frames, client ports move on "
                f"every pass): {kinds}; {r.seconds:g} s per step; every live contender has an "
                f"8 MiB kernel buffer, the kernel filter `{r.capture_filter}` (this run's "
                "frames only) and its own CPU, the generator the other."]
    rows = []
    for score in r.agents + [s for s in (r.tcpdump, r.scapy) if s]:
        best = score.best
        rows.append(["live, zero drops", score.label, rate_text(score),
                     f"{best.cpu_per_mpkt:.1f}" if best else "-", score_notes(score)])
    for o in r.offline:
        note = f"{o.frames:,} frames in {o.wall:.2f} s" + (f"; {o.note}" if o.note else "")
        if o.code != 0:
            note += f"; EXIT CODE {o.code}"
        rows.append(["offline pcap", o.label, f"{o.pps:,.0f}", f"{o.cpu_per_mpkt:.1f}", note])
    out += [""] + table(rows, ["test", "contender", "packets/s", "CPU s/Mpkt", "notes"])

    out += ["", "Targets:"]
    scapy, tcpdump = r.scapy, r.tcpdump
    for agent in r.agents:
        name = agent.label
        bound = (" (a lower bound: generator-limited)" if agent.generator_limit
                 else " (a lower bound: it passed every step)" if agent.exhausted else "")
        out.append(f"  {name}: {agent.rate:,.0f} pps with zero drops{bound}; target "
                   f"≥ {TARGET_RATE:,} pps: {verdict(agent.rate >= TARGET_RATE)}")
        if scapy and scapy.rate:
            ratio = agent.rate / scapy.rate
            out.append(f"  {name} / scapy sniff: {ratio:.1f}×; target ≥ {TARGET_VS_SCAPY:g}×: "
                       f"{verdict(ratio >= TARGET_VS_SCAPY)}")
        if tcpdump and tcpdump.rate:
            ratio = agent.rate / tcpdump.rate
            caveat = (" (tcpdump's rate is a lower bound: "
                      + (f"generator-limited at {tcpdump.generator_limit:,.0f} pps)"
                         if tcpdump.generator_limit else "it passed every step)")
                      if tcpdump.generator_limit or tcpdump.exhausted else "")
            out.append(f"  {name} / tcpdump -w: {ratio:.2f}×{caveat}; target ≥ "
                       f"{TARGET_VS_TCPDUMP:g}×: {verdict(ratio >= TARGET_VS_TCPDUMP)}")
        idle = r.idle.get(name)
        if idle:
            out.append(f"  {name} at {idle.rate:,.0f} pps: {idle.percent:.2f} % of one core "
                       f"({idle.cpu:.2f} CPU s in {idle.seconds:.1f} s); target < "
                       f"{TARGET_IDLE_PERCENT:g} %: {verdict(idle.percent < TARGET_IDLE_PERCENT)}")
    if r.memory:
        m = r.memory
        seen = "" if m.drops == 0 and m.received >= m.flows else (
            f"; NOT ALL SEEN: the agent received {m.received:,} with {m.drops:,} kernel drops, "
            "lower --flow-rate")
        out.append(f"  agent RSS after {m.flows:,} distinct flows: {m.rss_after / 1e6:.1f} MB "
                   f"(at start {m.rss_before / 1e6:.1f} MB; SYNs sent at {m.rate:,.0f} pps"
                   f"{seen}); target < {TARGET_RSS / 1e6:.0f} MB: "
                   f"{verdict(m.rss_after < TARGET_RSS and not seen)}")
    agent_off = next((o for o in r.offline if o.label.startswith("loopy")), None)
    tshark = next((o for o in r.offline if o.label.startswith("tshark")), None)
    if agent_off and tshark and tshark.pps:
        ratio = agent_off.pps / tshark.pps
        ok = ratio > TARGET_VS_TSHARK and agent_off.code == 0 and tshark.code == 0
        out.append(f"  offline, loopy agent --pcap / tshark -r: {ratio:.3f}× "
                   f"({agent_off.wall:.2f} s against {tshark.wall:.2f} s on the same "
                   f"{agent_off.frames:,} frames); target > {TARGET_VS_TSHARK:g}×: {verdict(ok)}")

    lo = r.loopback
    arp = r.mix.get("arp", 0) / total
    out += ["", "Loopback checks over the whole run:",
            f"  frames sent on lo: {r.frames_sent + r.syns_sent:,} (fastest the generator "
            f"reached: {r.generator_fastest:,.0f} pps)"]
    if lo.get("otherhost") is not None:
        expected = r.frames_sent * (1 - arp) + r.syns_sent
        out.append(f"  dropped by the host's IP stack as PACKET_OTHERHOST: {lo['otherhost']:,} "
                   f"(expected about {expected:,.0f}: every IP frame sent; ARP frames end "
                   "in arp_rcv)")
    out.append(f"  TCP resets the host sent: {lo.get('tcp_out_rsts', 0):,} (other programs "
               "on lo count here too)")
    out.append(f"  frames dropped before any socket (input backlog): {lo.get('backlog_drops', 0):,}")
    others = max((s.others for s in r.steps), default=0)
    out.append(f"  other programs' capture sockets on lo during the steps: up to {others} "
               "(each gets a copy of every frame, costing CPU the contenders share)"
               if others else "  other programs' capture sockets on lo during the steps: none")
    out.append(f"  run time: {r.elapsed / 60:.1f} min")
    return "\n".join(out)
