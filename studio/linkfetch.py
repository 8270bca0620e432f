"""Fetch an image from a link the user pasted, without letting the link reach inside our network.

A pasted link is fetched by the server, so a hostile one could aim it at the machine itself, the
office network or a cloud metadata service (server-side request forgery). The guard:

- allows only http and https, ports 80 and 443, and no user name or password in the link;
- resolves the host name once, refuses it if *any* address it resolves to is not public, and then
  connects to exactly that address while keeping the name for the Host header, TLS SNI and
  certificate checks, so a second DNS answer (rebinding) is never used;
- follows at most five redirects itself, checking every hop the same way;
- caps the bytes read (declared and streamed) and enforces one deadline for the whole fetch,
  closing the socket when it passes, so a server that drips bytes cannot hold it open;
- ignores proxy and .netrc settings from the environment (a proxy would connect on our behalf to
  whatever address it resolves), and sends no cookies or credentials;
- checks that the body starts like an image rather than trusting Content-Type.

Why not requests-hardened alone: its IP filter (1.3) tests ``is_private``/``is_multicast`` and a
list of extra ranges, which on Python 3.11 lets IPv4-compatible forms such as ``[::127.0.0.1]``
through; it calls ``socket.getaddrinfo`` itself, so the resolver cannot be injected to test
rebinding; its loopback switch is global rather than per host; and it has no port, credential,
size or deadline checks. The pinning technique here (pool host set to the checked address, Host
header and ``server_hostname``/``assert_hostname`` set to the name) is the same one it uses.

Trusted hosts (exact ``host`` or ``host:port``) skip the address and port checks only, so a user can
allow an internal image server; the scheme, size and deadline rules still apply.

``open_link`` is the guard on its own, for any link a server hands us: the gateway client fetches
the videos the gateway links to through it too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool

from studio.humane import size_limit
from studio.links import (
    DEFAULT_MAX_BYTES,
    FetchedImage,
    LinkRejected,
    LinkTooSlow,
    LinkUnreachable,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FetchedImage",
    "LinkRejected",
    "LinkTooSlow",
    "LinkUnreachable",
    "fetch_image_link",
    "open_link",
]

DEFAULT_DEADLINE_SECONDS = 20.0
MAX_REDIRECTS = 5
ALLOWED_PORTS = frozenset({80, 443})
USER_AGENT = "WanStudio/0.1 (first-frame fetch)"
_CHUNK_BYTES = 64 * 1024
_SNIFF_BYTES = 64
# Enough digits for any real size (a petabyte has 16).
_MAX_LENGTH_DIGITS = 18

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[tuple[Any, ...]]]

_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
# IPv6 forms that carry an IPv4 address to somewhere else; none is a plausible image host.
_TRANSLATION_NETWORKS = (
    (ipaddress.ip_network("::/96"), "an IPv4-compatible IPv6 address"),
    (ipaddress.ip_network("64:ff9b::/96"), "a NAT64 translation address"),
    (ipaddress.ip_network("64:ff9b:1::/48"), "a NAT64 translation address"),
    (ipaddress.ip_network("2002::/16"), "a 6to4 tunnel address"),
    (ipaddress.ip_network("2001::/32"), "a Teredo tunnel address"),
)

_IMAGE_SIGNATURES: tuple[tuple[int, bytes], ...] = (
    (0, b"\xff\xd8\xff"),
    (0, b"\x89PNG\r\n\x1a\n"),
    (0, b"GIF87a"),
    (0, b"GIF89a"),
    (0, b"BM"),
    (8, b"WEBP"),
    (0, b"II*\x00"),
    (0, b"MM\x00*"),
    (4, b"ftypheic"),
    (4, b"ftypheix"),
    (4, b"ftypmif1"),
    (4, b"ftypavif"),
)


@dataclass(frozen=True)
class _Target:
    """One hop, checked: the URL to request and the address to connect to."""

    url: str
    host: str
    address: str


def non_public_reason(address: IPAddress) -> str | None:
    """Say what kind of non-public address this is, or return None if it is a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return non_public_reason(address.ipv4_mapped)
        if address.is_unspecified:
            return "the unspecified address"
        if address.is_loopback:
            return "this computer (a loopback address)"
        if address.is_site_local:
            # fec0::/10, deprecated but still routed inside some networks like a private range.
            return "a private network address (IPv6 site-local)"
        for network, description in _TRANSLATION_NETWORKS:
            if address in network:
                return description
    if address in _METADATA_ADDRESSES:
        return "a cloud metadata service"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "this computer (a loopback address)"
    if address.is_link_local:
        return "a link-local address"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE:
        return "a carrier-grade NAT address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private network address"
    if not address.is_global:
        return "a reserved address"
    return None


def _parse_trusted_hosts(entries: Iterable[str]) -> set[tuple[str, int | None]]:
    trusted: set[tuple[str, int | None]] = set()
    for entry in entries:
        text = entry.strip().lower()
        if not text:
            continue
        # urlsplit parses "host", "host:port" and "[v6]:port" the way it parses the link itself.
        parts = urlsplit(f"//{text}")
        trusted.add((parts.hostname or text, parts.port))
    return trusted


def _normalise(url: str) -> str:
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
    except (requests.RequestException, ValueError, UnicodeError):
        raise LinkRejected("This is not a valid web address; check the link.") from None
    assert prepared.url is not None
    return prepared.url


# Which setting trusts a host is for administrators; Settings names it in their section.
_TRUST_HINT = (
    "If this is your own image server, an administrator can trust its host "
    "(Settings, “For administrators”)."
)


def _check(
    url: str,
    trusted: set[tuple[str, int | None]],
    resolve: Resolver,
    trust_hint: str = _TRUST_HINT,
) -> _Target:
    scheme = urlsplit(url.strip()).scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"starts with {scheme}:" if scheme else "has no http:// or https:// in front"
        raise LinkRejected(f"Only http:// and https:// links can be fetched; this one {shown}.")
    normalised = _normalise(url.strip())
    parts = urlsplit(normalised)
    if parts.username is not None or parts.password is not None:
        raise LinkRejected(
            "The link contains a user name or password; links are fetched without logging in. "
            "Use a link that works without them."
        )
    host = parts.hostname
    if not host:
        raise LinkRejected("The link has no host name; check it.")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise LinkRejected("The link's port number is not valid; check it.") from None
    is_trusted = (host, port) in trusted or (host, None) in trusted
    if not is_trusted and port not in ALLOWED_PORTS:
        raise LinkRejected(
            f"The link asks for port {port}; only the standard web ports (80 and 443) are "
            f"allowed. {trust_hint}".rstrip()
        )
    addresses = _resolve(host, port, resolve)
    if not is_trusted:
        for address in addresses:
            reason = non_public_reason(address)
            if reason:
                raise LinkRejected(
                    f"The link leads to {reason} at {address}, not the public internet, so it is "
                    f"not fetched. {trust_hint}".rstrip()
                )
    return _Target(url=normalised, host=host, address=str(addresses[0]))


def _resolve(host: str, port: int, resolve: Resolver) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        answers = resolve(host, port)
    except (OSError, UnicodeError):
        raise LinkUnreachable(f"The host {host} could not be found; check the link.") from None
    addresses: list[IPAddress] = []
    for family, *_, socket_address in answers:
        if family in (socket.AF_INET, socket.AF_INET6):
            address = ipaddress.ip_address(str(socket_address[0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise LinkRejected(f"The host {host} could not be found; check the link.")
    return addresses


class _Deadline:
    """One deadline for a whole fetch: when it passes, every socket it tracks is shut down."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._timer.cancel()

    def remaining(self) -> float:
        left = self.ends_at - time.monotonic()
        if left <= 0:
            raise self.too_slow()
        return left

    def too_slow(self) -> LinkTooSlow:
        return LinkTooSlow(
            f"The server took longer than {self.seconds:g} seconds to send the image. Try again "
            "later, or download the image and upload it instead."
        )

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    # shutdown, unlike close, wakes a thread blocked in recv on this socket.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _PinnedAdapter(HTTPAdapter):
    """Connects to one checked address while speaking to the server by its name."""

    def __init__(self, target: _Target, deadline: _Deadline) -> None:
        super().__init__(max_retries=0)
        self._target = target
        self._deadline = deadline

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        if host_params["host"] != self._target.host:
            # Only the URL checked for this hop may be requested through this adapter.
            raise requests.exceptions.InvalidURL("request host differs from the checked host")
        request.headers["Host"] = urlsplit(request.url or "").netloc.rpartition("@")[2]
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = self._target.host
            pool_kwargs["assert_hostname"] = self._target.host
        host_params["host"] = self._target.address
        return host_params, pool_kwargs

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: Any,
        proxies: Any = None,
        cert: Any = None,
    ) -> HTTPConnectionPool:
        pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
        base = pool.ConnectionCls
        if not getattr(base, "_tracked_by_deadline", False):
            deadline = self._deadline

            class DeadlineConnection(base):  # type: ignore[misc, valid-type]
                _tracked_by_deadline = True

                def _new_conn(self) -> socket.socket:
                    sock = super()._new_conn()
                    deadline.track(sock)
                    return sock

            pool.ConnectionCls = DeadlineConnection  # type: ignore[misc]
        return pool


def _open(
    target: _Target,
    deadline: _Deadline,
    session_factory: Callable[[], requests.Session],
    *,
    headers: Mapping[str, str],
    timeouts: tuple[float, float] | None,
) -> tuple[requests.Session, requests.Response]:
    session = session_factory()
    session.trust_env = False
    adapter = _PinnedAdapter(target, deadline)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    remaining = deadline.remaining()
    connect, read = timeouts if timeouts is not None else (remaining, remaining)
    try:
        response = session.get(
            target.url,
            headers=dict(headers),
            allow_redirects=False,
            stream=True,
            timeout=(min(connect, remaining), min(read, remaining)),
        )
    except requests.exceptions.SSLError:
        session.close()
        raise LinkUnreachable(
            f"The secure connection to {target.host} failed (its certificate is not valid for "
            "it). Check the link."
        ) from None
    except requests.RequestException:
        session.close()
        if deadline.expired or _passed(deadline):
            raise deadline.too_slow() from None
        raise LinkUnreachable(
            f"Could not connect to {target.host}. Check the link, or try again later."
        ) from None
    return session, response


def _passed(deadline: _Deadline) -> bool:
    return time.monotonic() >= deadline.ends_at


def _raise_for_status(response: requests.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    if status in (404, 410):
        reason = "there is no image at this address"
        advice = "Check the link."
    elif status in (401, 403):
        reason = "it refuses to share this image (it may be private)"
        advice = "Use a public link, or download the image and upload it."
    elif status == 429:
        reason = "too many requests were made"
        advice = "Wait a moment and try again."
    elif status >= 500:
        reason = "it had an internal error"
        advice = "Try again later."
    else:
        reason = "it refused the request"
        advice = "Check the link."
    raise LinkRejected(f"The server says {reason} (HTTP {status}). {advice}")


def looks_like_image(head: bytes) -> bool:
    """Whether these first bytes start like an image file (by content, not by declared type)."""
    return any(head[offset : offset + len(sig)] == sig for offset, sig in _IMAGE_SIGNATURES)


def _not_an_image(head: bytes) -> LinkRejected:
    start = head.lstrip()[:64].lower()
    if start.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return LinkRejected(
            "The link leads to a web page, not to an image. Open it in your browser, "
            "right-click the image and copy the image address, then paste that."
        )
    # What the server declares (a media type such as text/plain) means nothing to most people.
    return LinkRejected(
        "The link does not lead to an image. Use a link to a JPEG, PNG, BMP, WEBP or GIF file."
    )


def declared_length(value: str | None) -> int | None:
    """Read a Content-Length header with bounded work; None when missing or not plain digits.

    A value of more digits than any real size is read as larger than any limit rather than
    converted (a long digit string costs time to convert, or raises).
    """
    if value is None:
        return None
    text = value.strip()
    if not text or not text.isascii() or not text.isdigit():
        return None
    if len(text) > _MAX_LENGTH_DIGITS:
        return 10**_MAX_LENGTH_DIGITS
    return int(text)


def _read_body(response: requests.Response, *, max_bytes: int, deadline: _Deadline) -> bytes:
    too_large = LinkRejected(
        f"The image at this link is larger than {size_limit(max_bytes)}, the largest file "
        "Wan Studio takes. Use a smaller version of it."
    )
    declared = declared_length(response.headers.get("Content-Length"))
    if declared is not None and declared > max_bytes:
        raise too_large
    body = bytearray()
    sniffed = False
    try:
        for chunk in response.iter_content(_CHUNK_BYTES):
            body += chunk
            if len(body) > max_bytes:
                raise too_large
            if _passed(deadline):
                raise deadline.too_slow()
            if not sniffed and len(body) >= _SNIFF_BYTES:
                if not looks_like_image(bytes(body[:_SNIFF_BYTES])):
                    raise _not_an_image(bytes(body[:_SNIFF_BYTES]))
                sniffed = True
    except requests.RequestException:
        if deadline.expired or _passed(deadline):
            raise deadline.too_slow() from None
        raise LinkRejected(
            "The connection broke before the whole image arrived. Try again."
        ) from None
    # A socket shut down at the deadline can look like a normal end of the body.
    if deadline.expired:
        raise deadline.too_slow()
    if not body:
        raise LinkRejected("The link gave an empty answer instead of an image. Check the link.")
    if not sniffed and not looks_like_image(bytes(body)):
        raise _not_an_image(bytes(body))
    return bytes(body)


@dataclass(frozen=True)
class OpenedLink:
    """The answer at the end of a guarded link, its body not yet read."""

    response: requests.Response
    final_url: str
    _deadline: _Deadline = field(repr=False)

    def deadline_passed(self) -> bool:
        """True once the fetch's deadline has passed (its sockets are then shut down)."""
        return self._deadline.expired or _passed(self._deadline)


@contextlib.contextmanager
def open_link(
    url: str,
    *,
    headers: Mapping[str, str],
    trusted_hosts: Iterable[str] = (),
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    timeouts: tuple[float, float] | None = None,
    session_factory: Callable[[], requests.Session] | None = None,
    resolve: Resolver = socket.getaddrinfo,
    trust_hint: str = _TRUST_HINT,
) -> Iterator[OpenedLink]:
    """Follow a link through the guard described in this module, up to its first non-redirect.

    Parameters
    ----------
    url
        The link.
    headers
        Sent with every hop; nothing else is (no cookies, no credentials).
    trusted_hosts
        Hosts (``name`` or ``name:port``) allowed even though their address is not public or their
        port is not 80/443.
    deadline_seconds
        The time allowed for everything, redirects and reading the body included: when it
        passes, the sockets are shut down and ``OpenedLink.deadline_passed`` turns true.
    timeouts
        Seconds to connect and between bytes, each capped by what is left of the deadline.
    session_factory
        Makes the ``requests.Session`` for each hop (the guard mounts its own adapter on it).
    resolve
        Turns ``(host, port)`` into ``getaddrinfo``-style entries; the system resolver by default.
    trust_hint
        Said after a refused address or port: how to trust a host, or nothing where it cannot be.

    Yields
    ------
    OpenedLink
        The final answer, whatever its status, with its body still to be streamed.

    Raises
    ------
    LinkRejected
        For every refused hop; ``LinkUnreachable`` and ``LinkTooSlow`` for failures that may pass.
    """
    trusted = _parse_trusted_hosts(trusted_hosts)
    make_session = session_factory or requests.Session
    current = url
    with _Deadline(deadline_seconds) as deadline:
        for hop in range(MAX_REDIRECTS + 1):
            try:
                target = _check(current, trusted, resolve, trust_hint)
            except LinkRejected as refusal:
                if hop == 0:
                    raise
                raise type(refusal)(f"The link redirects to another address. {refusal}") from None
            session, response = _open(
                target, deadline, make_session, headers=headers, timeouts=timeouts
            )
            with session, response:
                if response.is_redirect:
                    current = urljoin(target.url, response.headers["Location"])
                    continue
                yield OpenedLink(response=response, final_url=target.url, _deadline=deadline)
                return
    raise LinkRejected(
        f"The link redirects more than {MAX_REDIRECTS} times. Open it in your browser and use "
        "the address the image finally comes from."
    )


_IMAGE_HEADERS = {"User-Agent": USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"}


def fetch_image_link(
    url: str,
    *,
    trusted_hosts: Iterable[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    session_factory: Callable[[], requests.Session] | None = None,
    resolve: Resolver = socket.getaddrinfo,
) -> FetchedImage:
    """Download the image behind a pasted link through the guard described in this module.

    Parameters
    ----------
    url
        The link as the user gave it.
    trusted_hosts
        Hosts (``name`` or ``name:port``) allowed even though their address is not public or their
        port is not 80/443, e.g. an internal image server.
    max_bytes
        The most bytes read; a larger answer is refused.
    deadline_seconds
        The time allowed for the whole fetch, redirects included.
    session_factory
        Makes the ``requests.Session`` to use (the guard mounts its own adapter on it).
    resolve
        Turns ``(host, port)`` into ``getaddrinfo``-style entries; the system resolver by default.

    Returns
    -------
    FetchedImage
        The bytes, the declared Content-Type and the URL they finally came from. The bytes start
        like an image; `studio.images.inspect_image` does the real check.

    Raises
    ------
    LinkRejected
        With a sentence saying why, for every refusal and failure.
    """
    with open_link(
        url,
        headers=_IMAGE_HEADERS,
        trusted_hosts=trusted_hosts,
        deadline_seconds=deadline_seconds,
        session_factory=session_factory,
        resolve=resolve,
    ) as opened:
        _raise_for_status(opened.response)
        data = _read_body(opened.response, max_bytes=max_bytes, deadline=opened._deadline)
        return FetchedImage(
            data=data,
            content_type=opened.response.headers.get("Content-Type"),
            final_url=opened.final_url,
        )
