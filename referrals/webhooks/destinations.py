"""Where webhooks may go: a well-formed endpoint, and (in production) no internal address.

An admin token chooses the URL and can replay deliveries at will, so without a rule the
worker is a port scanner for the networks it sits in: the cloud metadata service at
169.254.169.254, the database on localhost, the cluster API on 10.0.0.5:6443.  In
production the worker therefore refuses every destination that is not a globally routable
unicast address, unless the operator's allow-list (``REFERRALS_WEBHOOK_ALLOWED_NETWORKS``)
names its network.  The check runs on the address the name resolves to at send time, and
the sender connects to that very address (referrals/webhooks/sender.py), so a name that
resolves to a public address when checked and to an internal one a moment later (DNS
rebinding) gains nothing.

Pure: no resolving and no sockets here.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# LDH labels (IDNs arrive as their xn-- form), as DNS allows them: a name with a space,
# an underscore or an empty label cannot be an endpoint and never reaches the sender.
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
REFUSED = "refused destination"


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook endpoint anywhere, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError beyond 0..65535 or not a number
    except ValueError:
        return "must be an http(s) URL with a valid host and a port from 1 to 65535"
    if parts.scheme not in ("http", "https"):
        return "must be an http or https URL"
    if parts.username is not None or parts.password is not None:
        # Credentials in a URL would be stored and shown in the clear; the signature
        # authenticates the sender.
        return "must not carry a user name or password"
    if port == 0 or (port is None and _explicit_port(parts)):
        return "must have a port from 1 to 65535"
    if not parts.hostname or not _valid_host(parts.hostname):
        return "must name a valid host"
    return None


def _explicit_port(parts: SplitResult) -> bool:
    """``https://h:/`` has an empty port: urlsplit calls it None, and so would a sender."""
    return parts.netloc.rsplit("]", 1)[-1].endswith(":")


def _valid_host(host: str) -> bool:
    if _literal(host) is not None:
        return True
    name = host.removesuffix(".")
    return len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


@dataclass(frozen=True)
class Destinations:
    """Which resolved addresses the worker may connect to."""

    # Production: only globally routable unicast addresses, and the allow-list.
    restricted: bool = False
    allowed: tuple[Network, ...] = ()

    def permits(self, address: str) -> bool:
        """May the worker connect to this resolved address (as getaddrinfo gives it)?"""
        if not self.restricted:
            return True
        ip = _literal(address)
        if ip is None:
            return False
        inner = _embedded(ip)
        if any(candidate in network for candidate in (ip, *inner) for network in self.allowed):
            return True
        return all(_public(candidate) for candidate in (ip, *inner))

    def input_problem(self, url: str) -> str | None:
        """A destination refused already when the URL is set: an internal address written
        as a literal, or a name every resolver keeps on loopback (RFC 6761 ``localhost``).
        Other names are judged when sent, on what they resolve to then."""
        if not self.restricted:
            return None
        host = (urlsplit(url).hostname or "").removesuffix(".")
        if host == "localhost" or host.endswith(".localhost"):
            host = "127.0.0.1"
        elif _literal(host) is None:
            return None
        if self.permits(host):
            return None
        return (
            f"{REFUSED}: internal addresses are refused in production unless "
            "REFERRALS_WEBHOOK_ALLOWED_NETWORKS names them"
        )


# Development and tests: loopback receivers are fine.
UNRESTRICTED: Final = Destinations()


def _embedded(ip: Address) -> tuple[Address, ...]:
    """IPv4 addresses an IPv6 address reaches: mapped (::ffff:a.b.c.d), 6to4, NAT64."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return ()
    inner: list[Address] = []
    if ip.ipv4_mapped is not None:
        inner.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        inner.append(ip.sixtofour)
    if ip in _NAT64:
        inner.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return tuple(inner)


def _public(ip: Address) -> bool:
    # is_global leaves out private, loopback, link-local, unspecified, shared (100.64/10),
    # documentation and reserved ranges; multicast and site-local it does not.
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return False
    return ip.is_global and not ip.is_link_local and not ip.is_private
