"""
Tests for C{twisted/plugins/loopy_plugins.py}: twistd finds both programs,
and declaring them costs no import of Loopy.
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN_FILE = os.path.join(ROOT, "twisted", "plugins", "loopy_plugins.py")

#: Run in a fresh interpreter: import the checkout's plugin file, by path
#: (an installed copy may come first on twisted.plugins' path), then list the
#: loopy modules imported.
IMPORT_ONLY_PLUGINS = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("twisted.plugins.loopy_plugins", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(sorted(m.tapname for m in vars(module).values() if hasattr(m, "tapname")))
print(sorted(name for name in sys.modules if name == "loopy" or name.startswith("loopy.")))
"""


class PluginTests(SynchronousTestCase):
    def test_found(self):
        makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
        self.assertEqual(
            {name: makers[name].module for name in ["loopy-agent", "loopy-hub"]},
            {"loopy-agent": "loopy.agent.tap", "loopy-hub": "loopy.hub.tap"},
        )

    def test_imports_no_loopy(self):
        """
        Importing the plugin file imports no C{loopy} module.
        """
        env = dict(os.environ, PYTHONPATH=ROOT)
        result = subprocess.run(
            [sys.executable, "-c", IMPORT_ONLY_PLUGINS, PLUGIN_FILE],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        self.assertEqual(
            result.stdout.splitlines(), ["['loopy-agent', 'loopy-hub']", "[]"]
        )
