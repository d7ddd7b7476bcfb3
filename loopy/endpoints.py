# -*- test-case-name: tests.test_endpoints -*-
"""
Hub addresses as users write them, and as Twisted endpoint strings.

Users may write a hub as ``HOST``, ``HOST:PORT``, ``[IPV6]:PORT`` or a full
client endpoint string (``tcp:HOST:PORT``, ``tcp:host=H:port=P``,
``ssl:…``, ``unix:…``; see L{twisted.internet.endpoints.clientFromString}).
"""

from __future__ import annotations

from typing import Optional

from loopy import DEFAULT_HUB_PORT
from loopy.errors import ConfigError

_ENDPOINT_TYPES = ("tcp:", "ssl:", "tls:", "unix:", "tcp6:")


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def _split(description: str) -> list[str]:
    """
    Split an endpoint string at unescaped colons, removing escapes.
    """
    parts, current, chars = [], [], iter(description)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, ""))
        elif ch == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def hub_endpoint(text: str, default_port: int = DEFAULT_HUB_PORT) -> str:
    """
    The client endpoint string for a hub address.

    :param text: ``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or an endpoint string.
    :raises ConfigError: for an empty address or host, or a port that is not
        1-65535.
    """
    text = text.strip()
    if not text:
        raise ConfigError("empty hub address")
    if text.startswith(_ENDPOINT_TYPES):
        return text
    port: Optional[str] = None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
        elif rest:
            raise ConfigError(f"bad hub address {text!r}: expected [IPV6]:PORT")
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host = text  # a name, IPv4, or a bare IPv6 address
    if not host:
        raise ConfigError(f"bad hub address {text!r}: no host")
    number = default_port if port in (None, "") else _port(port, text)
    return f"tcp:host={_escape(host)}:port={number}"


def _port(port: str, text: str) -> int:
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 < number < 65536:
        raise ConfigError(f"bad port in hub address {text!r}: use 1-65535")
    return number


def tcp_target(description: str) -> Optional[tuple[str, int]]:
    """
    The ``(host, port)`` of a TCP or TLS client endpoint string, or None for
    other kinds (``unix:``).
    """
    parts = _split(description)
    if parts[0] not in ("tcp", "ssl", "tls", "tcp6"):
        return None
    positional = [p for p in parts[1:] if "=" not in p]
    named = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    host = named.get("host", positional[0] if positional else None)
    port = named.get("port", positional[1] if len(positional) > 1 else None)
    if host is None or port is None:
        return None
    try:
        return host, int(port)
    except ValueError:
        return None


def listen_port(description: str) -> Optional[int]:
    """
    The port of a TCP server endpoint string (``tcp:7420:interface=…``).
    """
    parts = _split(description)
    if parts[0] not in ("tcp", "ssl", "tcp6"):
        return None
    positional = [p for p in parts[1:] if "=" not in p]
    named = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    port = named.get("port", positional[0] if positional else None)
    try:
        return int(port)
    except (TypeError, ValueError):
        return None
