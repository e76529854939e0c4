"""The outbound policy as a pure function of (address or URL, allow-list)."""

from __future__ import annotations

import ipaddress

import pytest
from yarl import URL

from services.http_worker.policy import GuardedResolver, OutboundPolicy, RefusedDestination
from shared.settings import Settings

NOTHING_ALLOWED = OutboundPolicy()


def policy(*allow: str) -> OutboundPolicy:
    s = Settings(outbound_allow=allow)
    return OutboundPolicy(s.outbound_networks, s.outbound_hosts)


ADDRESSES = {
    "a public IPv4 address is allowed": ("8.8.8.8", True),
    "a public IPv6 address is allowed": ("2606:4700::1111", True),
    "loopback is refused": ("127.0.0.1", False),
    "all of 127/8 is loopback": ("127.0.0.2", False),
    "a 10/8 address is refused": ("10.1.2.3", False),
    "a 172.16/12 address is refused": ("172.16.0.1", False),
    "a 192.168/16 address is refused": ("192.168.1.1", False),
    "carrier-grade NAT 100.64/10 is refused": ("100.64.0.1", False),
    "link-local (cloud metadata) is refused": ("169.254.169.254", False),
    "the unspecified address is refused": ("0.0.0.0", False),
    "broadcast is refused": ("255.255.255.255", False),
    "multicast is refused": ("224.0.0.1", False),
    "IPv6 loopback is refused": ("::1", False),
    "IPv6 unique-local is refused": ("fd00::1", False),
    "IPv6 link-local is refused": ("fe80::1", False),
    "IPv4-mapped IPv6 loopback is refused": ("::ffff:127.0.0.1", False),
    "IPv4-mapped IPv6 private is refused": ("::ffff:10.0.0.1", False),
    "IPv4-mapped IPv6 public is allowed": ("::ffff:8.8.8.8", True),
    "6to4 embedding loopback is refused": ("2002:7f00:1::", False),
    "NAT64 embedding a private address is refused": ("64:ff9b::a00:1", False),
    "NAT64 embedding a public address is allowed": ("64:ff9b::808:808", True),
    "deprecated IPv4-compatible IPv6 is refused": ("::127.0.0.1", False),
}


@pytest.mark.parametrize(("address", "allowed"), list(ADDRESSES.values()), ids=list(ADDRESSES))
def test_address_without_an_allow_list(address: str, allowed: bool) -> None:
    assert NOTHING_ALLOWED.allows_ip(ipaddress.ip_address(address)) is allowed


ALLOW_LIST = {
    "an allowed network opens its addresses": (("10.0.0.0/8",), "10.9.9.9", True),
    "an allowed network opens nothing else": (("10.0.0.0/8",), "192.168.0.1", False),
    "an allowed IPv4 network also covers its IPv4-mapped form": (("127.0.0.0/8",), "::ffff:127.0.0.1", True),
    "an allowed single address opens exactly it": (("127.0.0.1",), "127.0.0.2", False),
    "an allowed IPv6 network opens its addresses": (("::1/128",), "::1", True),
}


@pytest.mark.parametrize(("allow", "address", "allowed"), list(ALLOW_LIST.values()), ids=list(ALLOW_LIST))
def test_address_with_an_allow_list(allow: tuple[str, ...], address: str, allowed: bool) -> None:
    assert policy(*allow).allows_ip(ipaddress.ip_address(address)) is allowed


URLS = {
    "a public name passes the URL check (its addresses are checked when resolved)": ((), "https://example.com/", None),
    "a private IP literal is refused": ((), "http://192.168.0.10/", "192.168.0.10 is a private, loopback or link-local address"),
    "a bracketed IPv6 loopback literal is refused": ((), "http://[::1]:8080/", "::1 is a private, loopback or link-local address"),
    "an IPv6 literal with a zone is refused": ((), "http://[fe80::1%25eth0]/", "fe80::1%eth0 is a private, loopback or link-local address"),
    "localhost is refused by name": ((), "http://localhost/", "localhost is a loopback name"),
    "a subdomain of localhost is refused by name": ((), "http://api.localhost/", "api.localhost is a loopback name"),
    "localhost with a trailing dot is refused": ((), "http://localhost./", "localhost is a loopback name"),
    "a trailing-dot IP literal is refused": ((), "http://127.0.0.1./", "127.0.0.1 is a private, loopback or link-local address"),
    "a decimal IPv4 spelling is refused": ((), "http://2130706433/", "2130706433 is not a canonical IPv4 address"),
    "a hex IPv4 spelling is refused": ((), "http://0x7f.0.0.1/", "0x7f.0.0.1 is not a canonical IPv4 address"),
    "a short IPv4 spelling is refused": ((), "http://127.1/", "127.1 is not a canonical IPv4 address"),
    "an allow-listed host name passes": (("svc.internal",), "http://SVC.internal./x", None),
    "localhost passes when loopback is allowed": (("127.0.0.0/8",), "http://localhost:8080/", None),
}


@pytest.mark.parametrize(("allow", "url", "refusal"), list(URLS.values()), ids=list(URLS))
def test_url_check(allow: tuple[str, ...], url: str, refusal: str | None) -> None:
    if refusal is None:
        policy(*allow).check_url(URL(url))
    else:
        with pytest.raises(RefusedDestination) as raised:
            policy(*allow).check_url(URL(url))
        assert str(raised.value) == refusal


async def test_the_guarded_resolver_refuses_a_name_that_resolves_only_to_loopback() -> None:
    resolver = GuardedResolver(NOTHING_ALLOWED)
    try:
        with pytest.raises(RefusedDestination, match="localhost resolves only to private"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


async def test_the_guarded_resolver_returns_allowed_addresses_of_a_name() -> None:
    resolver = GuardedResolver(policy("127.0.0.0/8"))
    try:
        infos = await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()
    assert infos and {info["host"] for info in infos} <= {"127.0.0.1"}
