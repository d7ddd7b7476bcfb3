"""
The port scan detector, declared as a plugin.
"""

from loopy.detect.base import DetectorPlugin

port_scan = DetectorPlugin("port_scan", "loopy.detect.scan", "PortScanDetector")
