"""
Plugins for Loopy (L{twisted.plugin}): analysers (L{IAnalyserFactory}).

Drop a module that declares plugin objects into any ``loopy/plugins``
directory on ``sys.path`` and the agent finds it.
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
__all__: list = []
