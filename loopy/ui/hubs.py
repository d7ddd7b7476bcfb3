# -*- test-case-name: tests.test_ui_views -*-
"""
The hubs screen, as pure functions: the hubs of the mesh as the UI's hub
knows them (L{loopy.model.HubState}) in, text rows out.  Where the rest of
the UI shows the mesh (the link line, each agent's hub, the C{hubs} of
``loopy-ui --json``) is in L{loopy.ui.views}.
"""

from __future__ import annotations

from collections import Counter
from typing import Optional

from loopy.model import DOWN, LINKED, REACHABLE, SELF, FleetView, HubState
from loopy.ui.formats import age
from loopy.ui.tables import Column, Table, render, with_text
from loopy.ui.views import known_hubs

#: Hub states in the order the hubs screen sorts and counts them.
STATES = (SELF, LINKED, REACHABLE, DOWN)

#: The mark before the name of the hub the UI is on.
HERE = "▸"


def _name(hub: HubState) -> str:
    return f"{HERE if hub.state == SELF else ' '} {hub.name}"


#: The hubs screen's table: the UI's hub first, then by name.  The C{last
#: heard} column's text depends on the hub clock of the view (see
#: L{render_hubs}).
HUBS = Table(
    columns=(
        Column("hub", 16, lambda h: (h.state != SELF, h.name), _name, right=False),
        Column("endpoint", 30, lambda h: h.endpoint, lambda h: h.endpoint, right=False),
        Column("state", 9, lambda h: STATES.index(h.state) if h.state in STATES else len(STATES),
               lambda h: h.state, right=False),
        Column("last heard", 10, lambda h: h.last_heard, lambda h: str(h.last_heard)),
        Column("agents", 6, lambda h: h.agents_linked, lambda h: str(h.agents_linked)),
        Column("peers", 40, lambda h: h.peers, lambda h: " ".join(h.peers) or "-",
               right=False),
    ),
    sort=0,
    descending=False,
)


def hub_search_text(hub: HubState) -> str:
    """
    What the hubs screen's C{/} filter matches: name, endpoint, state and
    the names of its peers.
    """
    return " ".join((hub.name, hub.endpoint, hub.state) + hub.peers)


def heard(hub: HubState, now: float) -> str:
    """
    How long ago the UI's hub last heard from C{hub} (``0.2s``, ``3m``), by
    the hub's clock C{now}; ``-`` if never.
    """
    return age(None if hub.last_heard is None else now - hub.last_heard)


def render_hubs(table: Table, view: Optional[FleetView], filter_text: str = "",
                ) -> tuple[str, list[str], list[HubState]]:
    """
    Render the hubs of C{view} (see L{known_hubs}) as L{render} does, with
    C{last heard} an age at the hub clock of the view (C{view.hub.now}).

    :param table: L{HUBS}, sorted as the user chose.
    :param view: the newest view, or None before the first (no rows).
    """
    if view is None:
        return render(table, (), filter_text, hub_search_text)
    now = view.hub.now
    aged = with_text(table, "last heard", lambda h: heard(h, now))
    return render(aged, known_hubs(view), filter_text, hub_search_text)


def hubs_title(view: Optional[FleetView], shown: int, filter_text: str = "") -> str:
    """
    The hubs screen's title line: ``"on h1 · 3/3 hubs: 1 linked, 1
    reachable, 1 down · filter: h"`` (states with no hub left out).

    :param shown: the hubs listed after the filter.
    """
    if view is None:
        return "no data yet"
    hubs = known_hubs(view)
    counts = Counter(h.state for h in hubs if h.state != SELF)
    states = ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s])
    return (f"on {view.hub.name} · {shown}/{len(hubs)} hubs"
            + (f": {states}" if states else "")
            + (f" · filter: {filter_text}" if filter_text else ""))
