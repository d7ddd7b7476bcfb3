"""
The built-in analysers, declared as plugins.
"""

from loopy.analysis.base import AnalyserPlugin

ip = AnalyserPlugin("ip", "loopy.analysis.ip", "IpAnalyser")
tcp = AnalyserPlugin("tcp", "loopy.analysis.tcp", "TcpAnalyser")
dns = AnalyserPlugin("dns", "loopy.analysis.dns", "DnsAnalyser")
detect = AnalyserPlugin("detect", "loopy.detect.host", "DetectAnalyser")
