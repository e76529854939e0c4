"""Outbound policy: refuse private, loopback, link-local and other non-global destinations.

Checked twice: on the URL of every hop (IP literals never reach a resolver)
and in the resolver (a name that resolves to a private address is refused, and
the connection goes only to the addresses that were checked, so DNS rebinding
cannot slip past). The operator's allow-list opens chosen networks or hosts.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

__all__ = ["GuardedResolver", "OutboundPolicy", "RefusedDestination"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedDestination(Exception):
    """The destination is not allowed by the outbound policy."""


@dataclass(frozen=True)
class OutboundPolicy:
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    def allows_ip(self, ip: IPAddress) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.networks):
            return True
        return ip.is_global and not ip.is_multicast

    def check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise RefusedDestination(f"scheme {parts.scheme!r} is not allowed")
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            raise RefusedDestination("the URL has no host")
        if host in self.hosts:
            return
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if host == "localhost" or host.endswith(".localhost"):
                if not self.allows_ip(ipaddress.ip_address("127.0.0.1")):
                    raise RefusedDestination(f"{host} is a loopback name") from None
            return  # a name: checked again after resolution
        if not self.allows_ip(ip):
            raise RefusedDestination(f"{ip} is a private, loopback or link-local address")


class GuardedResolver(AbstractResolver):
    """Resolve with the default resolver, then drop every address the policy refuses."""

    def __init__(self, policy: OutboundPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        infos = await self._inner.resolve(host, port, family)
        if host.rstrip(".").lower() in self._policy.hosts:
            return infos
        allowed = [info for info in infos if self._policy.allows_ip(ipaddress.ip_address(info["host"]))]
        if not allowed:
            raise RefusedDestination(f"{host} resolves only to private, loopback or link-local addresses")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
