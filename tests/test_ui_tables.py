"""
Tests for L{loopy.ui.formats} and L{loopy.ui.tables}: numbers and times in,
exact text out; records in, sorted and filtered fixed-width rows out.
"""

from __future__ import annotations

import time

from twisted.trial.unittest import SynchronousTestCase

from loopy.testing import T0
from loopy.ui.formats import age, clock_time, full_time, human, ms, octets, percent
from loopy.ui.tables import Column, Table, next_sort, render, reverse_sort

UTC = time.gmtime


class FormatTests(SynchronousTestCase):
    def test_human(self):
        cases = [
            (0, "0"), (950, "950"), (999.4, "999"), (999.6, "1.00k"), (1000, "1.00k"),
            (1234, "1.23k"), (9994, "9.99k"), (9999.9, "10.0k"), (12345, "12.3k"),
            (99949, "99.9k"), (99999, "100k"), (123456, "123k"), (999499, "999k"),
            (999999, "1.00M"), (34.5e6, "34.5M"), (1e9, "1.00G"), (2.5e12, "2.50T"),
            (1e15, "1.00P"), (5e18, "5000P"), (-1500, "-1.50k"),
        ]
        self.assertEqual([(v, human(v)) for v, _ in cases], cases)

    def test_human_width(self):
        """
        Every number fits in 5 characters (sign aside) below 100P.
        """
        value = 1.0
        while value < 1e17:
            for scale in [0.9994, 0.9995, 0.99951, 0.99996, 1.0]:
                self.assertLessEqual(len(human(value * scale)), 5, value * scale)
            value *= 10

    def test_human_slow_rates(self):
        """
        Rates below 10 that are not whole keep one decimal: 0.5/s is not 0.
        """
        self.assertEqual([human(v) for v in (0.5, 0.04, 3.25, 9.94, 9.96, 3.0)],
                         ["0.5", "0.0", "3.2", "9.9", "10", "3"])

    def test_human_unit(self):
        self.assertEqual(human(76800, "b"), "76.8kb")
        self.assertEqual(human(12, "pps"), "12pps")

    def test_octets(self):
        cases = [
            (0, "0B"), (512, "512B"), (1023, "1023B"), (1023.7, "1.00kB"), (1024, "1.00kB"),
            (1536, "1.50kB"), (10240, "10.0kB"), (1048575, "1.00MB"), (1048576, "1.00MB"),
            (108000, "105kB"), (2**40, "1.00TB"),
        ]
        self.assertEqual([(v, octets(v)) for v, _ in cases], cases)

    def test_ms(self):
        self.assertEqual(
            [ms(v) for v in [None, 0, 1.26, 12.5, 99.94, 100, 1234.5]],
            ["-", "0.0", "1.3", "12.5", "99.9", "100", "1234"],
        )

    def test_age(self):
        self.assertEqual(
            [age(v) for v in [None, -1, 0, 0.44, 9.94, 10, 59.4, 119.4, 120, 7199, 7200, 86400]],
            ["-", "0.0s", "0.0s", "0.4s", "9.9s", "10s", "59s", "119s", "2m", "120m", "2h", "24h"],
        )

    def test_percent(self):
        self.assertEqual([percent(r) for r in [0, 0.00004, 0.0004, 0.0099, 0.032, 0.5, 1]],
                         ["0", "<0.01%", "0.04%", "0.99%", "3.2%", "50%", "100%"])


class TimeTests(SynchronousTestCase):
    def test_clock_time(self):
        """
        The time of day within a day, the date from a day on.
        """
        self.assertEqual(
            [clock_time(T0 - ago, T0, UTC) for ago in [0, 5, 86399, 86400, 2 * 86400]],
            ["22:13:20", "22:13:15", "22:13:21", "2023-11-13", "2023-11-12"])

    def test_local_by_default(self):
        self.assertEqual(clock_time(T0, T0), time.strftime("%H:%M:%S", time.localtime(T0)))

    def test_full_time(self):
        self.assertEqual(full_time(T0, UTC), "2023-11-14 22:13:20")
        self.assertEqual(full_time(None, UTC), "-")


def _table():
    return Table(
        columns=(
            Column("name", 6, lambda r: r["name"], lambda r: r["name"], right=False),
            Column("n", 4, lambda r: r["n"], lambda r: str(r["n"])),
        ),
        sort=1,
    )


ROWS = [
    {"name": "alpha", "n": 3},
    {"name": "beta", "n": None},
    {"name": "gamma-long", "n": 10},
    {"name": "Delta", "n": 7},
]


class RenderTests(SynchronousTestCase):
    def test_sorted_descending(self):
        header, rows, records = render(_table(), ROWS)
        self.assertEqual(header, "name     n▼")
        self.assertEqual(
            rows, ["gamma…   10", "Delta     7", "alpha     3", "beta   None"]
        )
        self.assertEqual([r["name"] for r in records], ["gamma-long", "Delta", "alpha", "beta"])

    def test_reverse(self):
        header, rows, _ = render(reverse_sort(_table()), ROWS)
        self.assertEqual(header, "name     n▲")
        self.assertEqual(rows, ["beta   None", "alpha     3", "Delta     7", "gamma…   10"])

    def test_next_sort(self):
        """
        C{s} moves the sort to the next column, keeping the direction, and
        wraps around; text sorts case-sensitively.
        """
        table = next_sort(_table())
        self.assertEqual((table.sort, table.descending), (0, True))
        header, rows, _ = render(reverse_sort(table), ROWS)
        self.assertEqual(header, "name▲     n")
        self.assertEqual([r.split()[0] for r in rows], ["Delta", "alpha", "beta", "gamma…"])
        self.assertEqual(next_sort(table).sort, 1)

    def test_filter(self):
        """
        The filter keeps rows whose search text contains it, ignoring case.
        """
        _, rows, records = render(_table(), ROWS, "A-L", searchable=lambda r: r["name"])
        self.assertEqual([r["name"] for r in records], ["gamma-long"])
        _, rows, records = render(_table(), ROWS, "ta", searchable=lambda r: r["name"])
        self.assertEqual([r["name"] for r in records], ["Delta", "beta"])
        self.assertEqual(render(_table(), ROWS, "zzz", searchable=lambda r: r["name"])[1], [])

    def test_arrow_kept(self):
        """
        A title as wide as its column is cut to make room for the sort
        arrow, so the arrow always shows.
        """
        table = Table(columns=(Column("rexmit", 6, lambda r: 0, lambda r: "0"),), sort=0)
        self.assertEqual(render(table, [])[0], "rexm…▼")
        self.assertEqual(render(reverse_sort(table), [])[0], "rexm…▲")

    def test_tuple_keys(self):
        """
        Tuple keys (address, port) sort item by item, ports as numbers.
        """
        table = Table(columns=(Column("src", 8, lambda r: r, lambda r: f"{r[0]}:{r[1]}"),),
                      sort=0, descending=False)
        _, rows, _ = render(table, [("b", 80), ("a", 5000), ("a", 40000), ("a", None)])
        self.assertEqual(rows, ["  a:None", "  a:5000", " a:40000", "    b:80"])
