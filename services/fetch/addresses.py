"""Which addresses the fetch stage may connect to: public ones only, checked where the connection is made.

Feeds and the links they list come from the internet, so a feed (or a page's redirect) could point the crawler at
the machine it runs on, the private network behind it or a cloud metadata service (169.254.169.254). By default
every connection goes through `GuardedBackend`: it resolves the host name itself, refuses the connection when any
address the name resolves to is not a public unicast one, and connects to the address it checked — never to the
name — so a DNS answer that changes between the check and the connect (DNS rebinding) cannot slip a private
address in: there is no second lookup. Redirect hops open their connections through the same backend, so a
redirect to a private address is refused the same way. NEWSFLOW_FETCH_ALLOW_PRIVATE=true (the local stack, tests
against a local site) lifts the check.

No proxy is used (environment proxies are ignored): through a proxy the crawler would never see the addresses it
connects to, and the check would be the proxy's to make.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses to try, in order (a test's resolver stands in for DNS).
Resolver = Callable[[str, int], Awaitable[list[str]]]
# An address -> why it is refused ("loopback", "private", ...), or None when it may be connected to.
AddressPolicy = Callable[[IPAddress], str | None]

# NAT64 (RFC 6052): the IPv4 address a translator would connect to sits in the low 32 bits.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# RFC 6598 shared address space (carrier-grade NAT): not the internet, though Python 3.11 calls it neither
# private nor global.
SHARED = ipaddress.ip_network("100.64.0.0/10")


class BlockedAddress(Exception):
    """A connection the guard refused: the host resolves to an address that is not public."""

    def __init__(self, host: str, address: str, kind: str) -> None:
        self.host = host
        self.address = address
        self.kind = kind
        where = address if host == address else f"{host} -> {address}"
        super().__init__(f"{where} ({kind})")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo client, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refused_kind(address: IPAddress) -> str | None:
    """Why `address` is no place for a crawler to connect to (None: a public unicast address)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None and (kind := refused_kind(inner)) is not None:
            return kind
        if address.is_site_local:
            return "site_local"
    checks: tuple[tuple[str, bool], ...] = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        # 169.254.0.0/16 holds the cloud metadata services (169.254.169.254), fe80::/10 the neighbours.
        ("link_local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("shared", isinstance(address, ipaddress.IPv4Address) and address in SHARED),
        ("not_global", not address.is_global),
    )
    return next((kind for kind, applies in checks if applies), None)


def allow_every_address(address: IPAddress) -> str | None:
    """The policy with the guard lifted (NEWSFLOW_FETCH_ALLOW_PRIVATE)."""
    return None


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to for a TCP connection, in the resolver's order, each once."""
    answers = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in answers))


def literal_address(url: str) -> IPAddress | None:
    """The IP address a URL names as its host (`http://10.0.0.1/`), or None for a host name."""
    try:
        host = urlsplit(url).hostname
        return ipaddress.ip_address(host) if host else None
    except ValueError:
        return None


@dataclass(frozen=True)
class AddressGuard:
    """What the fetch stage may connect to: the policy, and how host names become addresses."""

    policy: AddressPolicy = refused_kind
    resolve: Resolver = resolve_host

    @classmethod
    def for_settings(cls, allow_private: bool) -> AddressGuard:
        """The guard NEWSFLOW_FETCH_ALLOW_PRIVATE asks for."""
        return cls(policy=allow_every_address if allow_private else refused_kind)

    def refuse_literal(self, url: str) -> BlockedAddress | None:
        """A URL whose host is an address the policy refuses: known before any connection is tried."""
        address = literal_address(url)
        kind = self.policy(address) if address is not None else None
        return BlockedAddress(str(address), str(address), kind) if address is not None and kind else None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the guard in front of every TCP connection (see the module docstring)."""

    def __init__(self, guard: AddressGuard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.guard = guard
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                candidates = await self.guard.resolve(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host}: no answer within {timeout}s") from exc
        except OSError as exc:  # socket.gaierror: no such name, resolver down
            raise httpcore.ConnectError(f"resolving {host}: {exc}") from exc
        if not candidates:
            raise httpcore.ConnectError(f"resolving {host}: no address")
        addresses = [ipaddress.ip_address(candidate) for candidate in candidates]
        # Any refused address refuses the name: a name that mixes public and private answers is a rebinding
        # attempt or a misconfiguration, and neither should be crawled.
        for address in addresses:
            if (kind := self.guard.policy(address)) is not None:
                raise BlockedAddress(host, str(address), kind)
        failure: Exception | None = None
        for address in addresses:
            try:
                # The checked address itself, not the name: nothing resolves it again. TLS still verifies the
                # certificate against the URL's host name (httpcore's start_tls takes it from the request).
                return await self.inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress(path, path, "unix_socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a `GuardedBackend` (its connection pool rebuilt with the backend in it)."""

    def __init__(self, guard: AddressGuard, *, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        context = ssl_context or httpx.create_ssl_context()
        super().__init__(verify=context, limits=limits, trust_env=False)
        # httpx builds its pool without a way to pass a network backend; this is the same pool with one.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(guard),
        )


def guarded_client(guard: AddressGuard, **options: typing.Any) -> httpx.AsyncClient:
    """An httpx client whose every connection (redirect hops included) goes through `guard`; no proxies."""
    limits = options.pop("limits", httpx.Limits())
    return httpx.AsyncClient(transport=GuardedTransport(guard, limits=limits), trust_env=False, **options)
