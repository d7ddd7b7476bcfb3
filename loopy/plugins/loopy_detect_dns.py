"""
The DNS abuse detectors, declared as plugins (see L{loopy.detect.dnsabuse}).
"""

from loopy.detect.base import DetectorPlugin

dns_tunnel = DetectorPlugin("dns_tunnel", "loopy.detect.dnsabuse", "DnsTunnelDetector")
dns_nxdomain = DetectorPlugin("dns_nxdomain", "loopy.detect.dnsabuse", "DnsNxdomainDetector")
