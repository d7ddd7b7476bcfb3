"""
The detection benchmark behind ``bench/detect``: real attacks in network
namespaces (the lab and attack recipes of the end-to-end tests,
tests/netns.py and tests/support/attacks.py) against a real hub and agent,
timed from the attack's first packet (tcpdump on the victim) to the alert's
arrival at a client watching the hub (L{watcher}); and the alerts raised by
a benign traffic mix.
"""
