"""
Loopy: a network monitor for fleets of Linux servers.

``loopy.agent`` captures and analyses traffic on a server, ``loopy.hub``
gathers agents' reports and serves them to ``loopy.ui``.  The records that
cross between them live in ``loopy.model``; the AMP commands that carry them
in ``loopy.wire``.
"""

__version__ = "0.1.0"

#: The hub's default TCP port for agents and UIs (AMP).
DEFAULT_HUB_PORT = 7420
