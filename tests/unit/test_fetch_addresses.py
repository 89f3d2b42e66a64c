"""The fetch stage's address guard: which addresses it refuses, and that it connects to the address it checked."""

from __future__ import annotations

import ipaddress

import pytest

from services.fetch.addresses import (
    AddressGuard,
    BlockedAddress,
    GuardedBackend,
    Resolver,
    literal_address,
    refused_kind,
)
from services.fetch.client import Download, redirect_target
from services.fetch.documents import parse_document
from services.fetch.urls import normalise_url


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link_local"),  # the cloud metadata service
        ("169.254.0.1", "link_local"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "private"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("100.64.0.1", "shared"),
        ("192.0.2.10", "private"),  # documentation
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fe80::1", "link_local"),
        ("fec0::1", "site_local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "link_local"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 around 10.0.0.1
        ("8.8.8.8", None),
        ("93.184.215.14", None),
        ("2606:4700:4700::1111", None),
        ("2002:808:808::", None),  # 6to4 around 8.8.8.8
    ],
)
def test_only_public_unicast_addresses_pass(address: str, kind: str | None) -> None:
    assert refused_kind(ipaddress.ip_address(address)) == kind


def test_literal_hosts_are_refused_before_any_connection() -> None:
    guard = AddressGuard()
    assert literal_address("http://[::1]:8080/feed") == ipaddress.ip_address("::1")
    assert literal_address("https://news.example/") is None
    blocked = guard.refuse_literal("http://169.254.169.254/latest/meta-data/")
    assert isinstance(blocked, BlockedAddress) and str(blocked) == "169.254.169.254 (link_local)"
    assert guard.refuse_literal("http://8.8.8.8/") is None
    assert guard.refuse_literal("http://localhost/") is None  # a name: refused where it is resolved
    assert AddressGuard.for_settings(allow_private=True).refuse_literal("http://127.0.0.1/") is None


class RecordingBackend:
    """Stands in for the real network: records what the guarded backend asked it to connect to."""

    def __init__(self) -> None:
        self.connected: list[str] = []

    async def connect_tcp(self, host: str, port: int, *args: object) -> object:
        self.connected.append(host)
        return object()


def resolver(answers: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    return resolve


async def test_the_backend_connects_to_the_address_it_checked_never_to_the_name() -> None:
    inner = RecordingBackend()
    guard = AddressGuard(resolve=resolver({"news.example": ["93.184.215.14"], "evil.example": ["127.0.0.1"],
                                           "mixed.example": ["93.184.215.14", "10.0.0.7"]}))
    backend = GuardedBackend(guard, inner)  # type: ignore[arg-type]
    await backend.connect_tcp("news.example", 80)
    # The checked address itself: no second lookup that a rebinding DNS server could answer differently.
    assert inner.connected == ["93.184.215.14"]
    with pytest.raises(BlockedAddress, match=r"evil.example -> 127.0.0.1 \(loopback\)"):
        await backend.connect_tcp("evil.example", 80)
    with pytest.raises(BlockedAddress, match=r"mixed.example -> 10.0.0.7 \(private\)"):
        await backend.connect_tcp("mixed.example", 443)
    with pytest.raises(BlockedAddress):
        await backend.connect_unix_socket("/var/run/docker.sock")
    assert inner.connected == ["93.184.215.14"]


def test_redirect_targets_are_absolute_and_keep_their_scheme() -> None:
    def moved(location: str, status: int = 301) -> Download:
        return Download("http://a.example/x", "http://a.example/x", status, {"location": location})

    assert redirect_target(moved("/y#frag")) == "http://a.example/y"
    assert redirect_target(moved("http://b.example/z")) == "http://b.example/z"
    assert redirect_target(moved("https://a.example/x", 308)) == "https://a.example/x"
    assert redirect_target(moved("/y", 200)) is None
    assert redirect_target(moved("")) is None


def test_http_links_stay_http() -> None:
    """A site that only serves http is fetched at its http URL: neither courlan nor the feed reader upgrades it."""
    assert normalise_url("http://news.example/a.html?utm_source=x") == "http://news.example/a.html"
    assert normalise_url("//news.example/b.html", base="http://news.example/feed.xml") == "http://news.example/b.html"
    rss = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
           b"<item><link>http://news.example/c.html</link></item></channel></rss>")
    [link] = parse_document(rss, "https://news.example/feed.xml", limit=10_000).links
    assert link.url == "http://news.example/c.html"
