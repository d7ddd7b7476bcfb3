"""
The novelty detectors, declared as plugins (see L{loopy.detect.novelty}).
"""

from loopy.detect.base import DetectorPlugin

new_listener = DetectorPlugin("new_listener", "loopy.detect.novelty", "NewListenerDetector")
new_outbound = DetectorPlugin("new_outbound", "loopy.detect.novelty", "NewOutboundDetector")
