# -*- test-case-name: tests.test_ui_history -*-
"""
The history screen: the fleet's or one agent's history over a range, from
L{loopy.ui.history}'s lines, with keys that move the range
(L{loopy.ui.timerange}).  The screen asks the hub again when the range
changes, every L{REFRESH_SECONDS} while the range ends now, and after a
failed question.
"""

from __future__ import annotations

import curses
import time
from typing import Optional

import npyscreen
from twisted.logger import Logger

from loopy.history import HistoryQuery
from loopy.ui.history import history_lines
from loopy.ui.timerange import PRESETS, TimeRange, parse_when
from loopy.ui.widgets import FilterField, LoopyForm

log = Logger()

#: Seconds between questions while the range ends now, or after a failure.
REFRESH_SECONDS = 5.0
#: The range the screen opens on: the last hour.
DEFAULT_RANGE = TimeRange.last(3600.0)


class HistoryLoader:
    """
    The history screen's questions to the hub (L{HubClient.get_history}):
    at most one in flight, and at most one waiting; a newer question takes
    the waiting one's place (counted in C{superseded}).

    C{ask} runs in the reactor's thread (C{callFromThread}); the UI thread
    reads C{latest} (one attribute read of an immutable tuple).

    :ivar latest: ``(key, history, error)`` of the newest answer: the
        caller's key of the question, the L{History} (on a failure, the
        one before, or None), and the failure's message or ``""``.
    :ivar in_flight: the key of the question being asked, or None.
    :ivar asked: questions sent.
    :ivar superseded: questions dropped for a newer one before they were
        sent.
    """

    def __init__(self, client):
        """
        :param client: a L{HubClient} (its C{get_history}).
        """
        self._client = client
        self.latest: tuple = (None, None, "")
        self.in_flight = None
        self._waiting: Optional[tuple] = None
        self.asked = 0
        self.superseded = 0

    def ask(self, key, query: HistoryQuery) -> None:
        """
        Ask for C{query}'s history; C{key} names it in C{latest}.
        """
        if self.in_flight is not None:
            if self._waiting is not None:
                self.superseded += 1
            self._waiting = (key, query)
            return
        self.in_flight = key
        self.asked += 1
        d = self._client.get_history(query)
        d.addCallbacks(lambda history: self._done(key, history, ""),
                       lambda failure: self._done(key, None, failure.getErrorMessage()))

    def _done(self, key, history, error: str) -> None:
        if error:
            log.warn("history question failed: {error}", error=error)
            history = self.latest[1]
        self.latest = (key, history, error)
        self.in_flight = None
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            self.ask(*waiting)


class HistoryPager(npyscreen.Pager):
    """
    The history's lines; arrows, PgUp/PgDn, g and G scroll; Esc goes back;
    q, x, Enter and Tab are the form's (or nothing), not the pager's.
    """

    def set_up_handlers(self):
        super().set_up_handlers()
        for key in (ord("q"), ord("x")):
            self.handlers.pop(key, None)
        for key in (curses.ascii.NL, curses.ascii.CR, curses.KEY_ENTER, curses.ascii.TAB):
            self.handlers[key] = lambda _key: None
        self.handlers[curses.ascii.ESC] = lambda _key: self.parent.on_escape()


class TitleEntry(npyscreen.TitleText):
    """
    A titled field where Enter ends the popup it is in.
    """

    _entry_type = FilterField


def ask_range(since: str, until: str) -> tuple[str, str]:
    """
    Pop up two fields, from and to, in L{parse_when}'s syntax; Enter in the
    first goes to the second, Enter in the second applies.
    """
    popup = npyscreen.Popup(name="History from / to (10m, 2h, 7d, now, 2026-11-21 10:00)",
                            lines=8, columns=70)
    first = popup.add(npyscreen.TitleText, name="from", value=since, begin_entry_at=7)
    second = popup.add(TitleEntry, name="to", value=until, begin_entry_at=7)
    popup.edit()
    return (first.value or "").strip(), (second.value or "").strip()


class HistoryForm(LoopyForm):
    """
    The fleet's history (C{agent_id} None) or one agent's.

    :ivar range: the L{TimeRange} shown.
    :ivar agent_id: the agent, or None for the fleet.
    :ivar return_to: the screen Esc goes back to.
    """

    FORM_ID = "HISTORY"
    KEYS = "1 hour · 2 day · 3 week · [ ] earlier/later · + - zoom · f from/to · / filter · Esc back"

    def create(self):
        super().create()
        self.add_handlers({
            "[": lambda _k: self.move("earlier"),
            "]": lambda _k: self.move("later"),
            "+": lambda _k: self.move("zoom_in"),
            "=": lambda _k: self.move("zoom_in"),
            "-": lambda _k: self.move("zoom_out"),
            "f": self.on_from_to,
        })
        for key, (_name, span) in PRESETS.items():
            self.add_handlers({key: lambda _k, span=span: self.show_range(TimeRange.last(span))})
        self.range = DEFAULT_RANGE
        self.agent_id: Optional[str] = None
        self.return_to = "MAIN"
        self.notice = ""
        self.loader = HistoryLoader(self.client)
        self._asked: tuple = (None, 0.0)
        self.title = self.add(npyscreen.FixedText, editable=False, rely=1)
        self.pager = self.add(HistoryPager, rely=2, max_height=self.lines - 7)
        self.info = self.add(npyscreen.FixedText, editable=False, rely=self.lines - 4)
        self.status = self.add(npyscreen.FixedText, editable=False, rely=self.lines - 3)

    def key(self) -> tuple:
        """
        What the screen shows: the range and the agent.
        """
        return (self.range, self.agent_id)

    def show(self, agent_id: Optional[str], return_to: str,
             time_range: Optional[TimeRange] = None) -> None:
        """
        Show C{agent_id}'s history (None: the fleet's), from the screen
        C{return_to}; a new subject starts at the top, on C{time_range} if
        given.
        """
        if agent_id != self.agent_id:
            self.pager.start_display_at = 0
            self.filter_text = ""
        self.agent_id, self.return_to = agent_id, return_to
        if time_range is not None:
            self.range = time_range

    def show_range(self, time_range: TimeRange) -> None:
        self.range = time_range
        self.notice = ""
        self.refresh_data()

    def move(self, how: str) -> None:
        """
        Move the range by one of L{TimeRange}'s moves (``earlier`` …).
        """
        self.show_range(getattr(self.range, how)(time.time()))

    def on_from_to(self, *_):
        now = time.time()
        since, until = self.range.bounds(now)
        stamp = "%Y-%m-%d %H:%M:%S"
        texts = ask_range(time.strftime(stamp, time.localtime(since)),
                          "now" if self.range.live else time.strftime(stamp, time.localtime(until)))
        try:
            now = time.time()
            self.show_range(TimeRange.between(parse_when(texts[0], now),
                                              parse_when(texts[1], now), now))
        except ValueError as e:
            self.notice = f"!! {e}"
            self.refresh_data()

    def ask_if_due(self, now: float) -> None:
        """
        Ask the hub when the range or agent changed, or every
        L{REFRESH_SECONDS} while the range ends now or the last answer was
        a failure.
        """
        key = self.key()
        asked, at = self._asked
        _latest_key, _history, error = self.loader.latest
        due = key != asked or (now - at >= REFRESH_SECONDS and (self.range.live or error))
        if due:
            self._asked = (key, now)
            query = self.range.query(now, self.agent_id)
            self.parentApp.reactor.callFromThread(self.loader.ask, key, query)

    def beforeEditing(self):
        self.refresh_data()

    def refresh_data(self):
        now = time.time()
        self.ask_if_due(now)
        latest_key, history, error = self.loader.latest
        subject = f"agent {self.agent_id}" if self.agent_id else "fleet"
        state = ""
        if latest_key != self.key() and self.loader.in_flight is not None:
            state = " · asking the hub…"
        if error:
            state += f" · !! {error}" + (" (showing the last answer)" if history else "")
        self.name = f"Loopy · history of the {subject}"
        self.title.value = f"{subject} · {self.range.label(now)}{state}"
        self.pager.values = history_lines(history, self.agent_id, self.filter_text,
                                          width=self.pager.width - 2)
        self.info.value = (f"{self.notice} · " if self.notice else "") + \
            (f"filter: {self.filter_text} · " if self.filter_text else "") + self.KEYS
        self.status.value = self.link_line()
        self.display()

    def on_escape(self):
        self.notice = ""
        self.parentApp.switchForm(self.return_to)
