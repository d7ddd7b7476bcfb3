"""
The agent: capture on raw packet sockets, the header fast path, analysers,
and the uplink that reports to a hub.  Runs as ``twistd loopy-agent``.
Knows the hub only through L{loopy.wire}; knows nothing of the UI.
"""
