"""
The mesh benchmark behind ``bench/mesh``: N real ``twistd loopy-hub``
processes on 127.0.0.1, peered as a full mesh or a line, and M simulated
agents in one process (L{agents}) that report to them over AMP once a
second each, with a realistic report (L{sample}); the hubs' own counters
(L{hubinfo}: replication age, gossip octets) and their CPU time from
``/proc`` give the numbers (L{report}).
"""
