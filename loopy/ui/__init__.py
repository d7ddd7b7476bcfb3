"""
The terminal UI (``loopy-ui``): an npyscreen front end on the main thread,
a hub client in a reactor thread, and view logic in pure functions
(L{loopy.ui.views}) that turn records into rows of text.
"""
