"""
The history benchmark behind ``bench/history``: one
L{loopy.hub.sqlhistory.SqliteHistory} on a temporary directory, fed report
values of simulated agents (L{values}); write throughput, CPU at a steady
rate, database size per agent per day, against a plain compressed JSON-lines
log of the same values (L{phases}).
"""
