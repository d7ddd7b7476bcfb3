"""
Tests for pyproject.toml: what a fresh install of Loopy contains.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent


class PackagesTests(SynchronousTestCase):
    def test_everyPackageInstalled(self):
        """
        Every package under loopy/ is listed in pyproject.toml's packages,
        so an installed agent can import it (the tests run from the
        checkout, which would hide a missing one).
        """
        with open(ROOT / "pyproject.toml", "rb") as f:
            listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
        found = {".".join(p.parent.relative_to(ROOT).parts)
                 for p in (ROOT / "loopy").rglob("__init__.py")}
        self.assertEqual(found - listed, set())
