"""Outbound policy: refuse private, loopback, link-local and other non-global destinations.

Checked in two places, because neither alone is enough (ecosystem.md §5):

* on the URL of **every hop** (:meth:`OutboundPolicy.check_url`): aiohttp
  never passes an IP-literal host to the resolver, so ``http://10.0.0.1/`` or a
  redirect to ``http://127.0.0.2/`` is only caught here;
* in the **resolver** (:class:`GuardedResolver`): a name that resolves to a
  refused address is refused, and the connection goes only to the addresses
  that were checked, so DNS rebinding cannot slip between check and connect.

An address is allowed when it is globally routable, or inside a network the
operator allows (``SWITCHBOARD_OUTBOUND_ALLOW``). IPv6 forms that embed an IPv4
address (IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64
``64:ff9b::/96``) are judged by the embedded IPv4 address. Legacy numeric IPv4
spellings (``2130706433``, ``127.1``, ``0x7f.0.0.1``) are refused outright:
resolvers map them onto addresses a string check would not recognise.

Allowed host *names* in the allow-list skip both checks (exact, case-insensitive
match; a trailing dot is ignored). Ports are not restricted: Studio lets a flow
call any port.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

__all__ = ["GuardedResolver", "OutboundPolicy", "RefusedDestination"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedDestination(Exception):
    """The destination is not allowed by the outbound policy."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _is_legacy_numeric_ipv4(host: str) -> bool:
    """``2130706433``, ``127.1``, ``0x7f.0.0.1``: accepted by ``inet_aton``, not canonical dotted quads."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return True
    return False


@dataclass(frozen=True)
class OutboundPolicy:
    """Which destinations outbound HTTP may reach. Pure: no I/O."""

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    def allows_ip(self, ip: IPAddress) -> bool:
        if any(ip in net for net in self.networks):
            return True
        if isinstance(ip, ipaddress.IPv6Address):
            embedded = _embedded_ipv4(ip)
            if embedded is not None:
                return self.allows_ip(embedded)
        return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)

    def allows_host_name(self, host: str) -> bool:
        """An allow-listed name: neither the URL check nor the resolver filters it."""
        return host.rstrip(".").lower() in self.hosts

    def check_url(self, url: URL) -> None:
        """Raise :class:`RefusedDestination` unless this hop may be requested.

        Only the host is judged here; a host *name* is judged again, by its
        addresses, in :class:`GuardedResolver`.
        """
        host = unquote(url.raw_host or "").rstrip(".").lower()  # IDNA-encoded name, or IP with its zone
        if not host:
            raise RefusedDestination("the URL has no host")
        if self.allows_host_name(host):
            return
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if _is_legacy_numeric_ipv4(host):
                raise RefusedDestination(f"{host} is not a canonical IPv4 address") from None
            if host == "localhost" or host.endswith(".localhost"):
                # RFC 6761: always loopback, whatever a resolver might say.
                if not self.allows_ip(ipaddress.ip_address("127.0.0.1")):
                    raise RefusedDestination(f"{host} is a loopback name") from None
            return
        if not self.allows_ip(ip):
            raise RefusedDestination(f"{ip} is a private, loopback or link-local address")


class GuardedResolver(AbstractResolver):
    """Resolve with an inner resolver, then drop every address the policy refuses.

    aiohttp connects only to the addresses returned here, so what was checked
    is what is connected to. If nothing is left, :class:`RefusedDestination`
    propagates out of the request.
    """

    def __init__(self, policy: OutboundPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        infos = await self._inner.resolve(host, port, family)
        if self._policy.allows_host_name(host):
            return infos
        allowed = [info for info in infos if self._policy.allows_ip(ipaddress.ip_address(info["host"]))]
        if not allowed:
            name = host.rstrip(".")
            raise RefusedDestination(f"{name} resolves only to private, loopback or link-local addresses")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
