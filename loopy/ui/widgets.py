# -*- test-case-name: tests.test_e2e_ui -*-
"""
The npyscreen pieces the UI's screens are built from: the list of table
rows, the filter popup, the pagers, and L{LoopyForm}, the base of every
screen (the shared keys and the link line).  The screens are in
L{loopy.ui.app}.
"""

from __future__ import annotations

import curses
import time
from typing import Optional

import npyscreen

from loopy.ui import tables, views
from loopy.ui.client import CONNECTED, HubClient


class RowList(npyscreen.MultiLine):
    """
    A scrolling list of table rows.  Enter and Esc go to the form; keys the
    list does not use (s, /, ?, q, digits, Tab) fall through to the form.

    C{never_cache}: the form repaints from C{while_waiting} with
    C{Form.display()}, which erases the pad; MultiLine's display cache would
    then skip reprinting unchanged rows and leave the list blank.

    :cvar released: more keys of MultiLine's to leave to the form.
    """

    released: tuple[int, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.never_cache = True

    def set_up_handlers(self):
        super().set_up_handlers()
        self.allow_filtering = False
        for key in (ord("l"), ord("L"), ord("n"), ord("N"), ord("p"), ord("x"),
                    curses.ascii.SP, curses.ascii.TAB) + self.released:
            self.handlers.pop(key, None)
        self.handlers.update({
            curses.ascii.NL: self._enter,
            curses.ascii.CR: self._enter,
            curses.KEY_ENTER: self._enter,
            curses.ascii.ESC: self._escape,
        })

    def _enter(self, _key):
        self.parent.on_enter(self.cursor_line)

    def _escape(self, _key):
        self.parent.on_escape()


class AlertList(RowList):
    """
    The alert screen's rows: C{k} acknowledges (the form's), not "up".
    """

    released = (ord("k"),)


class FilterField(npyscreen.Textfield):
    """
    A text field where Enter ends the popup it is in.
    """

    def set_up_handlers(self):
        super().set_up_handlers()
        for key in (curses.ascii.NL, curses.ascii.CR, curses.KEY_ENTER):
            self.handlers[key] = self._done

    def _done(self, _key):
        self.editing = False
        self.parent.editing = False


def ask_filter(current: str) -> str:
    """
    Pop up a one-line field for a filter; Enter applies it.
    """
    popup = npyscreen.Popup(name="Filter rows (Enter to apply, empty for all)", lines=6)
    field = popup.add(FilterField, value=current, begin_entry_at=0)
    popup.edit()
    return (field.value or "").strip()


class LoopyForm(npyscreen.FormBaseNew):
    """
    Shared keys and the link line of every screen.

    :ivar table: the L{tables.Table} that C{s} and C{S} sort, or None.
    """

    table: Optional[tables.Table] = None

    def create(self):
        self.add_handlers({
            "q": self.on_quit,
            "?": self.on_help,
            "s": self.on_sort,
            "S": self.on_reverse,
            "/": self.on_filter,
            "a": self.on_alerts,
            "h": self.on_hubs,
            "^C": self.on_quit,
        })
        self.filter_text = ""

    @property
    def client(self) -> HubClient:
        return self.parentApp.client

    def add_table(self, top: int, rows_class: type = RowList) -> None:
        """
        Place a table screen's widgets: the header at line C{top}, the rows
        below it, then an info line and the link line at the bottom.
        """
        self.header = self.add(npyscreen.FixedText, editable=False, rely=top)
        self.rows = self.add(rows_class, rely=top + 1, max_height=self.lines - top - 5,
                             values=["(connecting…)"], scroll_exit=False)
        self.info = self.add(npyscreen.FixedText, editable=False, rely=self.lines - 4)
        self.status = self.add(npyscreen.FixedText, editable=False, rely=self.lines - 3)

    def link_line(self) -> str:
        view, at, state = self.client.snapshot()
        updated = None if at is None else time.time() - at
        dialing = "" if state == CONNECTED else self.client.endpoint_in_use
        return views.status_line(state, view, updated, self.parentApp.drop_warning, dialing)

    def on_quit(self, *_):
        self.parentApp.setNextForm(None)
        self.parentApp.switchFormNow()

    def on_help(self, *_):
        self.parentApp.show_help(self.FORM_ID)

    def on_filter(self, *_):
        self.filter_text = ask_filter(self.filter_text)
        self.refresh_data()

    def on_alerts(self, *_):
        self.parentApp.show_alerts(self.FORM_ID)

    def on_hubs(self, *_):
        self.parentApp.show_hubs(self.FORM_ID)

    def on_sort(self, *_):
        if self.table is not None:
            self.table = tables.next_sort(self.table)
            self.refresh_data()

    def on_reverse(self, *_):
        if self.table is not None:
            self.table = tables.reverse_sort(self.table)
            self.refresh_data()

    def on_enter(self, index):
        pass

    def on_escape(self):
        pass

    def while_waiting(self):
        self.refresh_data()


class DetailPager(npyscreen.Pager):
    """
    An alert's details; Esc goes back, C{k} is the form's (acknowledge),
    Enter and Tab do nothing (the pager would leave the form).
    """

    def set_up_handlers(self):
        super().set_up_handlers()
        self.handlers.pop(ord("k"), None)
        for key in (curses.ascii.NL, curses.ascii.CR, curses.KEY_ENTER, curses.ascii.TAB):
            self.handlers[key] = lambda _key: None
        self.handlers[curses.ascii.ESC] = lambda _key: self.parent.on_escape()


class HelpPager(npyscreen.Pager):
    """
    The help text; Enter, Esc, q or ? close it, arrows scroll.
    """

    def set_up_handlers(self):
        super().set_up_handlers()
        for key in (curses.ascii.NL, curses.ascii.CR, curses.KEY_ENTER,
                    curses.ascii.ESC, ord("q"), ord("?")):
            self.handlers[key] = self._close

    def _close(self, _key):
        self.parent.parentApp.switchForm(self.parent.return_to)
