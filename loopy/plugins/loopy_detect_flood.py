"""
The flood detectors, declared as plugins (docs/detectors/flood.md).
"""

from loopy.detect.base import DetectorPlugin

syn_flood = DetectorPlugin("syn_flood", "loopy.detect.flood", "SynFloodDetector")
icmp_flood = DetectorPlugin("icmp_flood", "loopy.detect.flood", "IcmpFloodDetector")
udp_flood = DetectorPlugin("udp_flood", "loopy.detect.amplification", "UdpFloodDetector")
dns_amplification = DetectorPlugin("dns_amplification", "loopy.detect.amplification",
                                   "DnsAmplificationDetector")
