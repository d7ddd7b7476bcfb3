"""
Analysers: packet summaries in, snapshot records out.

Each analyser keeps bounded state (every table has a cap, a policy at the cap
and a counter) and yields a frozen snapshot every report interval.  Analysers
are found as plugins (L{IAnalyserFactory} in the L{loopy.plugins} package), so
a new protocol is a new file.  This package knows nothing of sockets, AMP or
the reactor: it is driven with packets and a clock value.
"""
