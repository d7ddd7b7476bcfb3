"""
Frames in, records out.

The fast path (L{loopy.dissect.headers}) decodes the link, network and
transport headers of every frame with C{struct}; L{loopy.dissect.dns} parses
DNS messages (header and question by hand, answers with scapy's DNS layer);
L{loopy.dissect.bpf} compiles tcpdump filter expressions with libpcap.

This is the only package that imports scapy, and scapy objects never leave
it.  Every function here is total: bad bytes give None (and the caller counts
a malformed frame), never an exception.
"""
