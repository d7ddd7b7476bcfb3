"""
The capture benchmark behind ``bench/capture``: a paced traffic generator on
``lo`` (``bench/trafficgen.c``), three live contenders (the Loopy agent,
``tcpdump -w /dev/null``, scapy's ``sniff``) stepped through rising rates,
an offline race against ``tshark -r``, and the agent's memory after a
million distinct flows.

Standard library only: the harness runs with any Python 3.11; the
contenders are run with the virtualenv's programs.  It must not import
Loopy: it measures Loopy from the outside, as an operator would run it.
"""
