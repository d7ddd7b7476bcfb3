"""
Tests for L{loopy.ui.cli}: the options of ``loopy-ui``.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from loopy import testing
from loopy.ui import cli


class OptionsTests(testing.OptionsTestMixin, SynchronousTestCase):
    options_class = cli.Options

    def test_defaults(self):
        options = self.parse()
        self.assertEqual(
            {key: options[key] for key in ["endpoint", "json", "timeout", "log", "drop-warning"]},
            {"endpoint": "tcp:host=127.0.0.1:port=7420", "json": 0, "timeout": 10.0,
             "log": None, "drop-warning": 1.0},
        )

    def test_drop_warning(self):
        self.assertEqual(self.parse("--drop-warning", "0.5")["drop-warning"], 0.5)
        error = self.assertUsageError(["--drop-warning", "0"])
        self.assertIn("must be a positive number", str(error))

    def test_log(self):
        path = self.mktemp()
        self.assertEqual(self.parse("--log", path)["log"], path)

    def test_log_unwritable(self):
        """
        A log file that cannot be opened is a usage error, before the
        screen is taken over.
        """
        path = self.mktemp() + "/missing-directory/ui.log"
        self.assertUsageError(["--log", path],
                              f"--log {path}: No such file or directory")
