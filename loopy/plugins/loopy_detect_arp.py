"""
The ARP detectors, declared as a plugin (see L{loopy.detect.arp}).
"""

from loopy.detect.base import DetectorPlugin

arp = DetectorPlugin("arp", "loopy.detect.arp", "ArpDetector")
