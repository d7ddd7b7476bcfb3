"""
The traffic generator (``bench/trafficgen.c``): compiled once into the build
directory, then run for each step, pinned to its own CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Optional

SOURCE = Path(__file__).resolve().parent.parent / "trafficgen.c"

#: A step whose achieved rate is below this share of the requested rate was
#: limited by the generator (the sending CPU), not by the contender.
GENERATOR_SHORTFALL = 0.97


def build(build_dir: Path) -> Path:
    """
    Compile the generator with gcc unless the binary is newer than the source.

    :returns: the binary's path.
    :raises RuntimeError: with gcc's message if it fails.
    """
    build_dir.mkdir(parents=True, exist_ok=True)
    binary = build_dir / "trafficgen"
    if binary.exists() and binary.stat().st_mtime >= SOURCE.stat().st_mtime:
        return binary
    done = subprocess.run(["gcc", "-O2", "-Wall", "-o", str(binary), str(SOURCE)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"compiling {SOURCE} failed:\n{done.stderr}")
    return binary


class Generator:
    """
    Runs the compiled generator and returns what it says it did.
    """

    def __init__(self, binary: Path, cpu: Optional[int], tag: int, seed: int = 1):
        """
        :param cpu: the CPU it is pinned to (the kernel's loopback receive
            path runs there too), or None.
        :param tag: 24 bits written into every frame's MAC addresses, so
            that contenders can filter this run's frames from other traffic
            on ``lo`` (L{filter}).
        """
        self.binary = binary
        self.cpu = cpu
        self.tag = tag
        self.seed = seed
        octets = ":".join(f"{(tag >> shift) & 0xff:02x}" for shift in (16, 8, 0))
        #: pcap-filter(7) expression matching every frame this generator sends
        self.filter = f"ether host 02:{octets}:00:01"
        self.fastest = 0.0  # highest rate achieved so far, pps

    def _run(self, *args: str) -> dict:
        command = [str(self.binary), "--seed", str(self.seed), "--tag", str(self.tag), *args]
        if self.cpu is not None:
            command += ["--cpu", str(self.cpu)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if result["mode"] != "pcap":
            self.fastest = max(self.fastest, result["pps"])
        return result

    def send(self, rate: float, seconds: float) -> dict:
        """
        Send the mix on ``lo`` at C{rate} frames/s for C{seconds}.

        :returns: ``sent``, ``seconds``, ``pps`` (achieved), ``requested_pps``.
        """
        return self._run("--rate", str(rate), "--seconds", str(seconds))

    def flows(self, count: int, rate: float) -> dict:
        """
        Send C{count} TCP SYNs, each with its own 5-tuple, at C{rate}.
        """
        return self._run("--flows", str(count), "--rate", str(rate))

    def write_pcap(self, path: Path, count: int) -> dict:
        """
        Write C{count} frames of the mix to a pcap file (stamped 10 µs apart).
        """
        return self._run("--pcap", os.fspath(path), "--count", str(count),
                         "--rate", "100000")

    def describe(self) -> dict:
        """
        The pool's composition: frames per kind (tcp, dns, udp, icmp, arp).
        """
        return json.loads(subprocess.run(
            [str(self.binary), "--seed", str(self.seed), "--describe"],
            capture_output=True, text=True, check=True).stdout)


def limited(result: dict) -> bool:
    """
    Whether the generator fell short of the rate it was asked for.
    """
    return result["pps"] < GENERATOR_SHORTFALL * result["requested_pps"]
