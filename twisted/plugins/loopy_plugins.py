"""
twistd plugins for Loopy.  Declarations only: importing this file must stay
cheap (``twistd --help`` imports every plugin), so nothing from ``loopy`` is
imported here; each ServiceMaker names the module that holds its
``Options`` and ``makeService``.
"""

from twisted.application.service import ServiceMaker

loopyAgent = ServiceMaker(
    "Loopy agent",
    "loopy.agent.tap",
    "Capture and analyse this server's traffic and report it to Loopy hubs.",
    "loopy-agent",
)

loopyHub = ServiceMaker(
    "Loopy hub",
    "loopy.hub.tap",
    "Accept Loopy agents and UIs, keep fleet state and route commands.",
    "loopy-hub",
)
