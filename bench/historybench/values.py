"""
Report values (JSON-shaped, as a hub holds them: L{loopy.wire.to_json_value})
of simulated agents on busy web servers, made cheaply for many agents.

Every value is the mesh benchmark's report (L{meshbench.sample.busy_report},
about 29 kB of JSON with every analyser) with what the history reads filled
in for its second: 20 interval talkers and conversations drawn from 200
clients, 50 TCP connections of which 10 are first seen and 2 closed in the
interval, 20 DNS transactions of which 5 fall in the interval, and
per-interval counts.  The analysers of a second are made in L{VARIANTS}
versions shared by all agents (agent C{i} takes version C{(i + second) %
VARIANTS}), so making a value costs a shallow copy; agents report at
``second + i / agents / 2``, so each version's events fall in every agent's
interval.
"""

from __future__ import annotations

import copy
import random

from loopy.wire import to_json_value
from meshbench.sample import SERVER, busy_report

VARIANTS = 8
CLIENTS = 200
NEW_CONNECTIONS = 10
CLOSED_CONNECTIONS = 2
NEW_QUERIES = 5

COUNTS = {
    "frames": 3_940, "bytes": 3_080_000, "packets_in": 1_830, "packets_out": 2_110,
    "bytes_in": 390_056, "bytes_out": 2_694_251, "tcp_packets": 3_811,
    "tcp_bytes": 2_902_113, "udp_packets": 94, "udp_bytes": 12_880, "icmp_packets": 9,
    "icmp_bytes": 846, "other_packets": 3, "other_bytes": 180, "tcp_syn": 10,
    "tcp_established": 10, "tcp_closed": 9, "tcp_reset": 1, "tcp_retransmissions": 5,
    "dns_queries": 5, "dns_responses": 5, "dns_nxdomain": 0, "dns_servfail": 0,
}


def client(i: int) -> str:
    return f"10.2.{i // 250}.{i % 250 + 1}"


class Values:
    """
    Values of C{agents} simulated agents, any second.
    """

    def __init__(self, agents: int, seed: int = 1):
        self.agents = agents
        base = to_json_value(busy_report())
        self._analysers = base.pop("analysers")
        for name in ("agent_id", "hostname", "epoch", "seq", "ts", "counts"):
            base.pop(name, None)
        self._rest = base
        self._seed = seed
        self._slots: dict[int, list] = {}

    def ts(self, agent: int, second: int) -> float:
        """
        When agent C{agent} reports in C{second}.
        """
        return second + agent / self.agents / 2

    def value(self, agent: int, epoch: int, seq: int, second: int) -> dict:
        """
        Agent C{agent}'s report of C{second} (seconds since the Unix epoch).
        """
        slot = self._slots.get(second)
        if slot is None:
            if len(self._slots) > 4:
                self._slots.pop(min(self._slots))
            slot = self._slots[second] = [self._variant(second, k) for k in range(VARIANTS)]
        name = f"sim-{agent:04d}"
        return {**self._rest, "agent_id": name, "hostname": name, "epoch": epoch, "seq": seq,
                "ts": self.ts(agent, second), "interval": 1.0,
                "analysers": slot[(agent + second) % VARIANTS], "counts": COUNTS}

    def _variant(self, second: int, k: int) -> dict:
        rng = random.Random(self._seed * 1_000_003 + second * 17 + k)
        analysers = copy.deepcopy(self._analysers)
        ip, tcp, dns = analysers["ip"], analysers["tcp"], analysers["dns"]
        chosen = sorted(rng.sample(range(CLIENTS), 20), key=lambda i: rng.random())
        ip["interval_talkers"] = [
            {"addr": client(c), "packets_sent": 90 - 3 * n, "bytes_sent": 120_000 - 5_000 * n,
             "packets_received": 70 - 2 * n, "bytes_received": 6_000 - 250 * n}
            for n, c in enumerate(chosen)]
        ip["interval_conversations"] = [
            {"a": SERVER, "b": client(c), "packets_ab": 90 - 3 * n,
             "bytes_ab": 120_000 - 5_000 * n, "packets_ba": 70 - 2 * n,
             "bytes_ba": 6_000 - 250 * n} for n, c in enumerate(chosen)]
        for n, conn in enumerate(tcp["connections"]):
            conn["src"] = client(rng.randrange(CLIENTS))
            conn["sport"] = 1024 + (second * 61 + n * 7 + k) % 60_000
            if n < NEW_CONNECTIONS:
                conn["first_seen"] = second - 0.45 + n * 0.04
                conn["last_seen"] = second - 0.01
                conn["state"] = "established"
            elif n < NEW_CONNECTIONS + CLOSED_CONNECTIONS:
                conn["first_seen"] = second - 4.0 - n
                conn["last_seen"] = second - 0.2
                conn["state"] = "closed"
            else:
                conn["first_seen"] = second - 30.0 - n
                conn["last_seen"] = second - 0.3
                conn["state"] = "established"
        for n, query in enumerate(dns["queries"]):
            query["ts"] = second - 0.4 + n * 0.07 if n < NEW_QUERIES else second - 1.5 - n
            query["client"] = client(rng.randrange(CLIENTS)) if n % 3 else SERVER
        return analysers
