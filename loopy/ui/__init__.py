"""
The terminal UI (``loopy-ui``): an npyscreen front end on the main thread,
a hub client in a reactor thread, and view logic in pure functions
(L{loopy.ui.views}, L{loopy.ui.alertviews}, L{loopy.ui.hubs},
L{loopy.ui.history} with L{loopy.ui.timerange}, on L{loopy.ui.tables} and
L{loopy.ui.formats}) that turn records into rows of text.
"""
