"""
The hub: accepts agents and UIs over AMP (L{loopy.wire}), keeps the newest
state of every agent, and pushes it to watching UIs.  Runs as
``twistd loopy-hub``.  Knows nothing of packets beyond the report records.
"""
