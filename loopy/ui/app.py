# -*- test-case-name: tests.test_e2e_ui -*-
"""
The npyscreen terminal UI.  The reactor runs in a background thread with the
L{HubClient}; curses runs on the main thread and redraws from the client's
newest view twice a second.  Everything shown is computed by
L{loopy.ui.views}, L{loopy.ui.alertviews}, L{loopy.ui.hubs} and
L{loopy.ui.history}; this module only places it, on screens built from
L{loopy.ui.widgets} (the history screen is L{loopy.ui.historyform}).
"""

from __future__ import annotations

import threading
import time
from typing import Optional

import npyscreen

from loopy.ui import alertviews, hubs, tables, views
from loopy.ui.client import HubClient
from loopy.ui.helptext import HELP
from loopy.ui.historyform import HistoryForm
from loopy.ui.widgets import AlertList, DetailPager, HelpPager, LoopyForm, RowList

#: Tenths of a second between redraws when no key is pressed.
REFRESH_TENTHS = 5
#: Lines of the agent screen's summary (see L{views.agent_headline}).
HEADLINE_LINES = 8
#: The agent screen's tabs: L{views.TABS} from the agent's report, then its
#: alerts from the fleet's.
AGENT_TABS = tuple(views.TABS) + ("alerts",)


class FleetForm(LoopyForm):
    """
    One line per agent.
    """

    FORM_ID = "MAIN"

    def create(self):
        super().create()
        self.add_handlers({"H": lambda _k: self.parentApp.show_history(None, self.FORM_ID)})
        self.table = views.FLEET
        self.records = []
        self.add_table(top=1)

    def beforeEditing(self):
        if not self.parentApp.agent_id:
            self.parentApp.client_call("set_detail", "")
        self.refresh_data()

    def refresh_data(self):
        view, _at, _state = self.client.snapshot()
        agents = view.agents if view is not None else ()
        header, rows, self.records = views.render_fleet(self.table, view, self.filter_text)
        self.header.value = header
        self.rows.values = rows or ["(no agents match)" if agents else "(no agents yet)"]
        self.info.value = (f"filter: {self.filter_text}   " if self.filter_text else "") + \
            "Enter open agent · H history · a alerts · h hubs · s sort · S reverse · / filter"
        self.status.value = self.link_line()
        self.display()

    def on_enter(self, index):
        if 0 <= index < len(self.records):
            self.parentApp.agent_id = self.records[index].agent_id
            self.parentApp.switchForm(AgentForm.FORM_ID)


class AgentForm(LoopyForm):
    """
    One agent: a summary, then a tab of traffic, TCP connections or DNS.
    """

    FORM_ID = "AGENT"

    def create(self):
        super().create()
        self.add_handlers({
            "1": lambda _k: self.show_tab("traffic"),
            "2": lambda _k: self.show_tab("tcp"),
            "3": lambda _k: self.show_tab("dns"),
            "4": lambda _k: self.show_tab("alerts"),
            "^I": self.on_next_tab,
            "H": lambda _k: self.parentApp.show_history(self.parentApp.agent_id,
                                                        self.FORM_ID),
        })
        self.tab = "traffic"
        self.shown_agent = None
        self.records = []
        self.tables = {name: spec[0] for name, spec in views.TABS.items()}
        self.tables["alerts"] = alertviews.ALERTS
        self.summary = [
            self.add(npyscreen.FixedText, editable=False, rely=1 + i)
            for i in range(HEADLINE_LINES)
        ]
        top = HEADLINE_LINES + 2
        self.tabs = self.add(npyscreen.FixedText, editable=False, rely=top)
        self.header = self.add(npyscreen.FixedText, editable=False, rely=top + 1)
        self.rows = self.add(RowList, rely=top + 2, max_height=self.lines - top - 6,
                             values=["(connecting…)"], scroll_exit=False)
        self.status = self.add(npyscreen.FixedText, editable=False, rely=self.lines - 3)

    def beforeEditing(self):
        if self.parentApp.agent_id != self.shown_agent:
            # A different agent: start from a clean view (back from help keeps it).
            self.shown_agent = self.parentApp.agent_id
            self.filter_text = ""
            self.rows.cursor_line = 0
            self.parentApp.client_call("set_detail", self.shown_agent)
        self.refresh_data()

    @property
    def table(self) -> tables.Table:
        return self.tables[self.tab]

    @table.setter
    def table(self, value: tables.Table) -> None:
        self.tables[self.tab] = value

    def entry(self):
        view, _at, _state = self.client.snapshot()
        if view is None:
            return None
        for entry in view.agents:
            if entry.agent_id == self.parentApp.agent_id:
                return entry
        return None

    def refresh_data(self):
        entry = self.entry()
        view, _at, _state = self.client.snapshot()
        alerts = view.alerts if view is not None else ()
        now = time.time()
        hub_list = views.known_hubs(view) if view is not None else ()
        lines = views.agent_headline(entry, now, self.parentApp.drop_warning, alerts,
                                     hubs=hub_list)
        for widget, line in zip(self.summary, lines + [""] * HEADLINE_LINES):
            widget.value = line
        table = self.table
        if self.tab == "alerts":
            header, rows, self.records = alertviews.render_alerts(
                table, views.agent_alerts(alerts, self.parentApp.agent_id), now,
                self.filter_text)
        else:
            _table, records_of, search = views.TABS[self.tab]
            records = records_of(entry) if entry is not None and entry.report is not None else []
            header, rows, self.records = tables.render(table, records, self.filter_text, search)
        self.tabs.value = "  ".join(
            f"[{i} {name}]" if name == self.tab else f" {i} {name} "
            for i, name in enumerate(AGENT_TABS, start=1)
        ) + "   H history" + (f"   filter: {self.filter_text}" if self.filter_text else "")
        self.header.value = header
        self.rows.values = rows or ["(nothing yet)"]
        self.status.value = self.link_line()
        self.display()

    def show_tab(self, name):
        self.tab = name
        self.filter_text = ""
        self.rows.cursor_line = 0
        self.refresh_data()

    def on_next_tab(self, *_):
        self.show_tab(AGENT_TABS[(AGENT_TABS.index(self.tab) + 1) % len(AGENT_TABS)])

    def on_enter(self, index):
        if self.tab == "alerts" and 0 <= index < len(self.records):
            self.parentApp.show_alert(self.records[index].alert.key, self.FORM_ID)

    def on_escape(self):
        self.shown_agent = None
        self.parentApp.agent_id = ""
        self.parentApp.switchForm(FleetForm.FORM_ID)


class AlertsForm(LoopyForm):
    """
    The fleet's alerts, newest first, with quick filters; Enter opens one.
    """

    FORM_ID = "ALERTS"

    def create(self):
        super().create()
        self.add_handlers({"f": self.on_floor, "o": self.on_active_only,
                           "k": self.on_acknowledge})
        self.table = alertviews.ALERTS
        self.floor = ""
        self.active_only = False
        self.records = []
        self.notice = ""
        self.return_to = FleetForm.FORM_ID
        self.title = self.add(npyscreen.FixedText, editable=False, rely=1)
        self.add_table(top=2, rows_class=AlertList)

    def refresh_data(self):
        view, _at, _state = self.client.snapshot()
        alerts = view.alerts if view is not None else ()
        selected = self.selected()
        header, rows, self.records = alertviews.render_alerts(
            self.table, alerts, time.time(), self.filter_text, self.floor, self.active_only)
        # New alerts arrive at the top: keep the cursor on the alert it was on.
        keys = [e.alert.key for e in self.records]
        if selected is not None and selected.alert.key in keys:
            self.rows.cursor_line = keys.index(selected.alert.key)
        title = alertviews.alerts_title(len(self.records), len(alerts), self.floor,
                                   self.active_only, self.filter_text)
        self.name = f"Loopy · alerts {len(self.records)}/{len(alerts)}"
        self.title.value = title
        self.header.value = header
        self.rows.values = rows or ["(no alerts match)" if alerts else "(no alerts)"]
        self.info.value = (f"{self.notice} · " if self.notice else "") + \
            "Enter details · k acknowledge · f severity · o active only · s S / · Esc back"
        self.status.value = self.link_line()
        self.display()

    def on_floor(self, *_):
        self.floor = alertviews.next_floor(self.floor)
        self.refresh_data()

    def on_active_only(self, *_):
        self.active_only = not self.active_only
        self.refresh_data()

    def on_alerts(self, *_):
        pass

    def selected(self):
        """
        The alert under the cursor, or None.
        """
        index = self.rows.cursor_line
        return self.records[index] if 0 <= index < len(self.records) else None

    def on_acknowledge(self, *_):
        entry = self.selected()
        if entry is not None:
            self.notice = self.parentApp.acknowledge(entry)
            self.refresh_data()

    def on_enter(self, index):
        if 0 <= index < len(self.records):
            self.parentApp.show_alert(self.records[index].alert.key, self.FORM_ID)

    def on_escape(self):
        self.notice = ""
        self.parentApp.switchForm(self.return_to)


class HubsForm(LoopyForm):
    """
    Every hub the mesh knows, with its state; the UI's own is marked.
    """

    FORM_ID = "HUBS"

    def create(self):
        super().create()
        self.table = hubs.HUBS
        self.records = []
        self.return_to = FleetForm.FORM_ID
        self.title = self.add(npyscreen.FixedText, editable=False, rely=1)
        self.add_table(top=2)

    def refresh_data(self):
        view, _at, _state = self.client.snapshot()
        header, rows, self.records = hubs.render_hubs(self.table, view, self.filter_text)
        self.title.value = hubs.hubs_title(view, len(self.records), self.filter_text)
        self.header.value = header
        self.rows.values = rows or ["(no hubs match)" if view is not None else "(no data yet)"]
        self.info.value = "▸ this UI's hub · a alerts · s S sort · / filter · Esc back"
        self.status.value = self.link_line()
        self.display()

    def on_hubs(self, *_):
        pass

    def on_escape(self):
        self.parentApp.switchForm(self.return_to)


class AlertForm(LoopyForm):
    """
    One alert: every field and its evidence, kept current.
    """

    FORM_ID = "ALERT"

    def create(self):
        super().create()
        self.add_handlers({"k": self.on_acknowledge})
        self.key: tuple = ()
        self.shown_key: tuple = ()
        self.return_to = AlertsForm.FORM_ID
        self.notice = ""
        self.pager = self.add(DetailPager, rely=1, max_height=self.lines - 6, autowrap=True)
        self.info = self.add(npyscreen.FixedText, editable=False, rely=self.lines - 4)
        self.status = self.add(npyscreen.FixedText, editable=False, rely=self.lines - 3)

    def beforeEditing(self):
        if self.key != self.shown_key:
            self.shown_key = self.key
            self.notice = ""
            self.pager.start_display_at = 0
            self.pager.cursor_line = 0
        self.refresh_data()

    def entry(self):
        view, _at, _state = self.client.snapshot()
        return alertviews.find_alert(view.alerts if view is not None else (), self.key)

    def refresh_data(self):
        entry = self.entry()
        if entry is None:
            lines = ["(this alert is no longer held by the hub)"]
        else:
            lines = alertviews.alert_detail(entry, time.time())
        self.pager.setValuesWrap(lines)
        self.info.value = (f"{self.notice} · " if self.notice else "") + \
            "k acknowledge · ↑ ↓ scroll · Esc back"
        self.status.value = self.link_line()
        self.display()

    def on_filter(self, *_):
        pass

    def on_acknowledge(self, *_):
        entry = self.entry()
        if entry is not None:
            self.notice = self.parentApp.acknowledge(entry)
            self.refresh_data()

    def on_escape(self):
        self.parentApp.switchForm(self.return_to)


class HelpForm(npyscreen.FormBaseNew):
    def create(self):
        self.return_to = "MAIN"
        self.add(HelpPager, values=HELP.splitlines() + ["", "(Enter, Esc, q or ? to close)"])


class LoopyApp(npyscreen.NPSAppManaged):
    keypress_timeout_default = REFRESH_TENTHS

    def __init__(self, client: HubClient, reactor,
                 drop_warning: float = views.DROP_WARNING_PERCENT,
                 history: Optional[tuple] = None):
        """
        :param history: ``(range, agent_id)`` to open on the history screen
            (L{loopy.ui.cli.history_start}), or None for the fleet screen.
        """
        super().__init__()
        self.client = client
        self.reactor = reactor
        self.drop_warning = drop_warning
        self.agent_id = ""
        self.history = history

    def client_call(self, name, *args):
        self.reactor.callFromThread(getattr(self.client, name), *args)

    def onStart(self):
        self.addForm(FleetForm.FORM_ID, FleetForm, name="Loopy · fleet")
        self.addForm(AgentForm.FORM_ID, AgentForm, name="Loopy · agent")
        self.addForm(AlertsForm.FORM_ID, AlertsForm, name="Loopy · alerts")
        self.addForm(AlertForm.FORM_ID, AlertForm, name="Loopy · alert")
        self.addForm(HubsForm.FORM_ID, HubsForm, name="Loopy · hubs")
        self.addForm(HistoryForm.FORM_ID, HistoryForm, name="Loopy · history")
        self.addForm("HELP", HelpForm, name="Loopy · help")
        if self.history is not None:
            time_range, agent_id = self.history
            if agent_id:
                self.agent_id = agent_id
            self.getForm(HistoryForm.FORM_ID).show(
                agent_id or None, AgentForm.FORM_ID if agent_id else FleetForm.FORM_ID,
                time_range)
            self.setNextForm(HistoryForm.FORM_ID)

    def show_alerts(self, came_from: str) -> None:
        """
        Open the alert screen; its Esc goes back to the fleet or agent
        screen it was opened from.
        """
        if came_from in (FleetForm.FORM_ID, AgentForm.FORM_ID, HistoryForm.FORM_ID):
            self.getForm(AlertsForm.FORM_ID).return_to = came_from
        self.switchForm(AlertsForm.FORM_ID)

    def show_hubs(self, came_from: str) -> None:
        """
        Open the hubs screen; its Esc goes back to the screen it was opened
        from.
        """
        self.getForm(HubsForm.FORM_ID).return_to = came_from
        self.switchForm(HubsForm.FORM_ID)

    def show_history(self, agent_id: Optional[str], came_from: str,
                     time_range=None) -> None:
        """
        Open the history screen of C{agent_id} (None: the fleet's), on
        C{time_range} if given (a L{loopy.ui.timerange.TimeRange}), else on
        the range it showed last; Esc goes back to C{came_from}.
        """
        self.getForm(HistoryForm.FORM_ID).show(agent_id, came_from, time_range)
        self.switchForm(HistoryForm.FORM_ID)

    def show_alert(self, key: tuple, came_from: str) -> None:
        """
        Open the details of alert C{key}; Esc goes back to C{came_from}.
        """
        form = self.getForm(AlertForm.FORM_ID)
        form.key, form.return_to = key, came_from
        self.switchForm(AlertForm.FORM_ID)

    def acknowledge(self, entry) -> str:
        """
        Acknowledge an alert at the hub (from the reactor's thread).

        :param entry: an L{AlertEntry}.
        :returns: a note for the screen.
        """
        alert = entry.alert
        if entry.acknowledged_by is not None:
            return f"{alert.kind} of {alert.agent_id} already acknowledged"
        self.client_call("acknowledge", alert.key)
        return f"acknowledging {alert.kind} of {alert.agent_id} as {self.client.user}"

    def show_help(self, return_to: str) -> None:
        self.getForm("HELP").return_to = return_to
        self.switchForm("HELP")


def run_tui(endpoints, drop_warning: float = views.DROP_WARNING_PERCENT,
            log_file: Optional[str] = None, history: Optional[tuple] = None) -> int:
    """
    Run the terminal UI against a hub until the user quits.

    :param endpoints: the hubs' client endpoint strings, in order of
        preference (L{HubClient} fails over along them); or one string.
    :param drop_warning: percent of packets dropped over an agent's last
        interval at which the UI warns.
    :param log_file: append the UI's log (links, failures) to this file;
        without it nothing is logged (the screen is the UI's).
    :param history: ``(range, agent_id)`` to open on the history screen,
        or None for the fleet screen.
    :returns: the process exit code.
    """
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    if log_file is not None:
        globalLogBeginner.beginLoggingTo(
            [textFileLogObserver(open(log_file, "a", encoding="utf-8"))],
            redirectStandardIO=False)

    client = HubClient(endpoints, reactor)
    thread = threading.Thread(
        target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True
    )
    thread.start()
    reactor.callFromThread(client.start)
    try:
        LoopyApp(client, reactor, drop_warning, history).run()
    except KeyboardInterrupt:
        pass
    finally:
        reactor.callFromThread(reactor.stop)
        thread.join(5)
    return 0
