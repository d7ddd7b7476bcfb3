# -*- test-case-name: tests.test_ui_views -*-
"""
The help screen's text (key C{?} on every screen), one place for every
screen's keys.
"""

HELP = """\
Loopy keys

  fleet screen                 agent screen
  ↑ ↓      move                1 2 3   traffic, tcp, dns tabs
  Enter    open agent          4       the agent's alerts (Enter: details)
  H        fleet history       H       the agent's history
  s        sort by next column Tab     next tab
  S        reverse sort        s / S   sort column / reverse
  /        filter rows         /       filter rows (Enter to apply)
  a        alerts              a       alerts (fleet-wide)
  h        hubs of the mesh    h       hubs of the mesh
  ?        this help           Esc     back to the fleet
  q        quit                ? q     this help, quit

  alerts screen (newest first) alert details
  Enter    details             k       acknowledge
  k        acknowledge         ↑ ↓     scroll
  f        severity: all, warning+, critical
  o        active only (not over, not acknowledged)
  s S /    sort, reverse, filter (agent, kind, severity, state, address, text)
  Esc      back                Esc     back to the alerts

  hubs screen: every hub the mesh knows, ▸ the one this UI is on
  state    self (this UI's hub), linked (peer link up), reachable (heard
           through the mesh only), down (not heard for the peer timeout)
  s S /    sort, reverse, filter (name, endpoint, state, peers)
  Esc      back

  history screen: charts over a range (the highest per-second rate in each
  column; a blank column had no report), totals, top talkers,
  conversations, DNS names and alerts of the range
  1 2 3    last hour, day, week    [ ]      earlier, later (half the range)
  + -      zoom in, out            f        from / to (10m, 2h, 7d, now,
  /        filter the tables                2026-11-21 10:00)
  ↑ ↓ PgUp PgDn  scroll            Esc      back

The bottom line always shows the hub the UI is on, the link state, the mesh
("mesh 3 hubs, 1 down"), how old the data is, and "!! N alerts — press a"
while alerts are active and not acknowledged.  An agent whose hub the mesh
has lost shows "h1 (down)" in the hub column; "/ down" lists those agents.
The fleet's "lost" column counts the reports and alerts an agent's spool
dropped at its bound (they never reached the history).
Counters are cumulative since each agent started; rates cover its last
report interval (1 s by default).
"""
