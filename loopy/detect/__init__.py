"""
Detectors of suspicious traffic, run on the agent.

One analyser, C{detect} (L{loopy.detect.host.DetectAnalyser}), hosts every
detector plugin (L{loopy.detect.base.IDetector}) and gives each only the
packets it asks for; detectors signal conditions to the agent's
L{loopy.detect.alerts.AlertBook}, which raises, updates and ends alerts.

This package knows packets (L{loopy.dissect.headers.PacketSummary}) and
alerts; it must not know sockets, the hub or the UI.
"""
