"""Where a webhook may go: http(s) URLs whose every address is public, unless the operator allowed the host.

The same check runs at submit time (a 422 the caller sees) and again, on a fresh resolution, right before each
delivery, which then connects to the address it checked (no second lookup a rebinding DNS could answer)."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from tensorq.core.errors import OutOfRange

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URL_LENGTH = 2000
# C0 controls, space, DEL and C1 controls: urlsplit silently drops tab, CR and LF, so they are refused first.
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f]")


@dataclass(frozen=True)
class Target:
    """A checked callback URL: its parts and the address a delivery connects to."""

    url: str
    scheme: str
    host: str
    port: int
    address: IPAddress


@dataclass(frozen=True)
class AllowList:
    """The operator's exceptions (``webhook_allowed_hosts``): host names, addresses and CIDR blocks."""

    hosts: frozenset[str]
    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Split entries into networks (``10.0.0.0/8``, ``127.0.0.1``, ``::1``) and host names."""
        hosts: set[str] = set()
        networks: list[Network] = []
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        """Whether the operator allowed this host name or this address."""
        return host in self.hosts or any(address in network for network in self.networks)


def internal(address: IPAddress) -> bool:
    """Whether an address is loopback, private, link-local, shared, reserved, multicast or otherwise not public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        not address.is_global
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
    )


def split_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) URL; OutOfRange ``invalid_callback_url`` for anything else
    (control characters and spaces included)."""

    def invalid(why: str) -> OutOfRange:
        return OutOfRange(f"callback_url {why}", code="invalid_callback_url", details={"callback_url": url[:200]})

    if len(url) > MAX_URL_LENGTH:
        raise invalid(f"is longer than {MAX_URL_LENGTH} characters")
    if _CONTROL.search(url):
        raise invalid("may not contain spaces or control characters (CR, LF, tab, ...)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise invalid("is not a URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise invalid("must be an http or https URL")
    if not parts.hostname:
        raise invalid("has no host")
    if parts.username is not None or parts.password is not None:
        raise invalid("may not carry credentials")
    if parts.fragment:
        raise invalid("may not carry a fragment")
    return scheme, parts.hostname.lower().rstrip("."), port or (443 if scheme == "https" else 80)


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal is itself); empty when it does not resolve."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError, ValueError):
        return []
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def check_target(url: str, allowed: AllowList) -> Target:
    """The checked target of ``url``: refused (OutOfRange ``callback_url_forbidden``) when any address it
    resolves to is internal and not allowed, ``callback_url_unresolvable`` when it resolves to nothing."""
    scheme, host, port = split_url(url)
    addresses = resolve(host, port)
    if not addresses:
        raise OutOfRange(
            f"callback_url host '{host}' does not resolve", code="callback_url_unresolvable", details={"host": host}
        )
    refused = [str(a) for a in addresses if internal(a) and not allowed.allows(host, a)]
    if refused:
        raise OutOfRange(
            f"callback_url host '{host}' resolves to an internal address; an operator can allow it with "
            "TENSORQ_WEBHOOK_ALLOWED_HOSTS",
            code="callback_url_forbidden",
            details={"host": host, "addresses": refused},
        )
    return Target(url=url, scheme=scheme, host=host, port=port, address=addresses[0])
