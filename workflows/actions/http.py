"""http_request: call a user's endpoint, with private-address protection (DESIGN.md §5).

    {"method": "POST", "url": "https://api.example.com/orders?x=1",
     "headers": {"Authorization": "Bearer {{ secrets.API_KEY }}"}, "json": {...},
     "expect_status": [200, 201], "timeout": 10, "follow_redirects": true}

The destination is resolved once; every resolved address must be public (or inside
settings.HTTP_ACTION_ALLOWED_NETWORKS), and the request connects to exactly the address
that was checked, with the name in the Host header and in TLS (SNI and certificate
check): a DNS answer that changes between the check and the connection (rebinding)
cannot redirect the request. Redirects are followed by hand, each Location checked the
same way.

Outcomes: a refused destination or an unusable URL is the workflow's config
(StepConfigError); the endpoint failing (DNS, refused connection, timeout, 5xx) is
external (ExternalHTTPError); a 4xx is the workflow's request (UserError) unless
`expect_status` lists it. Messages name the method, host and path, never the query
string or a header value (either may carry a secret).
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from failures.errors import ConfigurationFault, ExternalHTTPError, RunDeadlineExceeded, StepConfigError, UserError
from workflows.actions.registry import Action, StepContext, check_number, is_number
from workflows.runtime_settings import settings
from workflows.templates import is_template

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# Methods HTTP defines as idempotent (RFC 9110 §9.2.2); POST and PATCH are safe to repeat
# only when the step declares that its receiver honours the Idempotency-Key.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
KEPT_RESPONSE_HEADERS = (
    "content-type",
    "content-length",
    "location",
    "etag",
    "last-modified",
    "retry-after",
    "cache-control",
    "x-request-id",
)
# Set by the action itself; a user value would desynchronise the request or the check.
RESERVED_REQUEST_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
# Dropped when a redirect leaves the origin, so a credential never follows it elsewhere.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# IPv6 forms that carry an IPv4 address (the last 32 bits): the well-known NAT64 prefix
# and its local-use one (RFC 6052, 8215), and SIIT's IPv4-translated form (RFC 2765).
_LAST_32_BITS_IPV4 = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("::ffff:0:0:0/96"),
)
_ERROR_SNIPPET_CHARS = 300

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- address policy (pure) -------------------------------------------------------------
def _embedded_ipv4(ip: IPAddress) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address leads to, and the form that carries it."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv6"
    if any(ip in network for network in _LAST_32_BITS_IPV4):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "IPv6"
    if ip.sixtofour is not None:  # 2002::/16, deprecated (RFC 7526)
        return ip.sixtofour, "6to4"
    if ip.teredo is not None:  # 2001::/32: (server, client)
        return ip.teredo[1], "Teredo"
    return None


def address_refusal(address: str | IPAddress, allowed_networks: Iterable[IPNetwork] = ()) -> str | None:
    """Why the HTTP action must not connect to `address` ("loopback", "private"...), or
    None when it may. An address inside one of `allowed_networks` is always allowed."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    allowed = list(allowed_networks)
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        # ::ffff:10.0.0.1 reaches 10.0.0.1: judge the IPv4 address it carries.
        inner_ip, form = embedded
        inner = address_refusal(inner_ip, allowed)
        if inner:
            return f"{inner} (IPv4 inside {form})"
        if form == "Teredo":
            return "non-public (Teredo)"  # not global, whatever client it names
        return None
    for flag, reason in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_site_local", "site-local"),  # fec0::/10, deprecated (RFC 3879) but still routed on some networks
        ("is_multicast", "multicast"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(ip, flag, False):  # is_site_local exists on IPv6 addresses only
            return reason
    if not ip.is_global:
        # Shared address space (100.64/10) and the like: not private, not public either.
        return "non-public"
    return None


def allowed_networks() -> list[IPNetwork]:
    networks = []
    for cidr in settings.HTTP_ACTION_ALLOWED_NETWORKS:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise ConfigurationFault(f"HTTP_ACTION_ALLOWED_NETWORKS entry {cidr!r} is not a CIDR") from None
    return networks


# --- URL and destination ---------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # ASCII (IDNA) host name or IP literal, without brackets
    port: int
    request_target: str  # path and query, percent-encoded

    @property
    def is_ip_literal(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def display(self) -> str:
        # No query string: it is where tokens are most often put.
        return f"{self.scheme}://{self.netloc}{self.request_target.split('?', 1)[0]}"

    def same_origin(self, other: Target) -> bool:
        return (self.scheme, self.host, self.port) == (other.scheme, other.host, other.port)


def parse_target(url: Any) -> Target:
    """Parse and check a URL; StepConfigError (without the URL's query) when unusable."""
    if not isinstance(url, str) or not url.strip():
        raise StepConfigError("url: must be an http(s) URL")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise StepConfigError(f"url: not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise StepConfigError("url: must be an http(s) URL")
    if not parts.hostname:
        raise StepConfigError("url: must name a host")
    if parts.username is not None or parts.password is not None:
        raise StepConfigError("url: credentials in the URL are not supported; send them in a header")
    host = parts.hostname.rstrip(".")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise StepConfigError("url: the host name is not valid") from None
    scheme = parts.scheme.lower()
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return Target(
        scheme=scheme,
        host=host,
        port=port or (443 if scheme == "https" else 80),
        request_target=f"{path}?{query}" if query else path,
    )


def resolve_addresses(host: str) -> list[str]:
    """The addresses a host name resolves to (an IP literal: itself). One lookup: the
    caller connects only to what this returned."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ExternalHTTPError(f"could not resolve host {host}: {exc.strerror}") from None
    except UnicodeError:
        raise StepConfigError("url: the host name is not valid") from None
    addresses: list[str] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in addresses:
            addresses.append(str(sockaddr[0]))
    if not addresses:
        raise ExternalHTTPError(f"could not resolve host {host}: no address")
    return addresses


def checked_addresses(target: Target) -> list[str]:
    """Resolve `target` and refuse it if any address is refused: a name with one public
    and one private answer is refused, whichever the client would have picked."""
    networks = allowed_networks()
    addresses = resolve_addresses(target.host)
    for address in addresses:
        reason = address_refusal(address, networks)
        if reason:
            what = "is" if target.is_ip_literal else "resolves to"
            # The address itself is left out: it would tell a workflow author how the
            # platform's own DNS answers internal names.
            raise StepConfigError(
                f"destination {target.host} {what} a {reason} address; the HTTP action only calls public "
                "addresses unless the platform allows the network"
            )
    return addresses


# --- the action ------------------------------------------------------------------------
class _BodyTooLarge(Exception):
    def __init__(self, partial: bytes):
        self.partial = partial


@dataclass
class _Budget:
    """One time budget for the whole request (every hop and the body)."""

    end: float
    set_by_deadline: bool

    def left(self) -> float:
        return self.end - time.monotonic()


def _header_errors(headers: Any) -> dict[str, str]:
    if not isinstance(headers, dict):
        return {"headers": "must be an object of header names to values"}
    errors: dict[str, str] = {}
    for name, value in headers.items():
        if not _TOKEN.match(name):
            errors[f"headers.{name}"] = "is not a valid header name"
        elif name.lower() in RESERVED_REQUEST_HEADERS:
            errors[f"headers.{name}"] = "is set by the platform and cannot be given"
        elif not (isinstance(value, str) or is_number(value)):
            errors[f"headers.{name}"] = "must be a string"
        elif isinstance(value, str) and ("\r" in value or "\n" in value):
            errors[f"headers.{name}"] = "must not contain line breaks"
    return errors


def _url_problem(url: object) -> str:
    if not isinstance(url, str):
        return "must be an http(s) URL"
    if is_template(url):
        # Only the literal prefix is known before rendering.
        prefix = url.split("{{", 1)[0]
        if "://" in prefix and prefix.split("://", 1)[0].lower() not in ("http", "https"):
            return "must be an http(s) URL"
        return ""
    try:
        parse_target(url)
    except StepConfigError as exc:
        return exc.message.removeprefix("url: ")
    return ""


class HttpRequestAction(Action):
    name = "http_request"
    allowed_fields = (
        "method",
        "url",
        "headers",
        "json",
        "body",
        "expect_status",
        "timeout",
        "follow_redirects",
        "idempotency_key_honoured",
    )
    required_fields = ("url",)

    def idempotent(self, config: Mapping[str, Any]) -> bool:
        if config.get("idempotency_key_honoured") is True:
            return True
        method = config.get("method", "GET")
        # A templated method is not known before the run: not declared safe.
        return isinstance(method, str) and not is_template(method) and method.upper() in IDEMPOTENT_METHODS

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, str]:
        errors = self.field_problems(config)
        if "url" in config:
            problem = _url_problem(config["url"])
            if problem:
                errors["url"] = problem
        method = config.get("method", "GET")
        if not isinstance(method, str) or (not is_template(method) and method.upper() not in METHODS):
            errors["method"] = f"must be one of {', '.join(METHODS)}"
        if "headers" in config:
            errors.update(_header_errors(config["headers"]))
        if "json" in config and "body" in config:
            errors["body"] = "give either json or body, not both"
        elif "body" in config and not isinstance(config["body"], str):
            errors["body"] = "must be a string (use json for structured data)"
        expect = config.get("expect_status")
        if expect is not None and not (
            isinstance(expect, list)
            and expect
            and all(isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in expect)
        ):
            errors["expect_status"] = "must be a non-empty list of HTTP status codes (100-599)"
        check_number(config, "timeout", errors, minimum=0.001, maximum=settings.HTTP_ACTION_TIMEOUT_S)
        if not isinstance(config.get("follow_redirects", True), bool):
            errors["follow_redirects"] = "must be true or false"
        if not isinstance(config.get("idempotency_key_honoured", False), bool):
            errors["idempotency_key_honoured"] = "must be true or false"
        return errors

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
        target = parse_target(config.get("url"))
        method = str(config.get("method") or "GET").upper()
        if method not in METHODS:
            raise StepConfigError(f"method: must be one of {', '.join(METHODS)}")
        header_errors = _header_errors(config.get("headers") or {})
        if header_errors:
            raise StepConfigError("; ".join(f"{k}: {v}" for k, v in header_errors.items()))
        headers = {"User-Agent": "Conveyor-Workflow/1.0", "Accept": "*/*"}
        headers.update({name: str(value) for name, value in (config.get("headers") or {}).items()})
        body: bytes | None = None
        if "json" in config:
            body = json.dumps(config["json"]).encode()
            if not any(name.lower() == "content-type" for name in headers):
                headers["Content-Type"] = "application/json"
        elif config.get("body") is not None:
            body = str(config["body"]).encode()
        for name in [n for n in headers if n.lower() == "idempotency-key"]:
            del headers[name]
        # Run id + step id: every attempt of this very step sends the same key, and so
        # does a resume of the run (it keys on the run it continues), so the receiver can
        # de-duplicate it.
        headers["Idempotency-Key"] = ctx.idempotency_key
        expect = config.get("expect_status")
        expect_set = frozenset(expect) if expect else None
        budget = self._budget(config.get("timeout"), ctx)

        max_redirects = settings.HTTP_ACTION_MAX_REDIRECTS
        redirects = 0
        while True:
            response = self._send(target, method, headers, body, budget)
            status = response.status
            location = response.headers.get("location")
            follow = config.get("follow_redirects", True) and not (expect_set and status in expect_set)
            if status in REDIRECT_STATUSES and location and follow:
                response.close()  # the body of a redirect is never read
                if redirects >= max_redirects:
                    raise ExternalHTTPError(f"{method} {target.display} redirected more than {max_redirects} times")
                redirects += 1
                current = target
                target = parse_target(urljoin(f"{current.scheme}://{current.netloc}{current.request_target}", location))
                if status == 303 and method != "HEAD" or status in (301, 302) and method == "POST":
                    method, body = "GET", None
                    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                if not target.same_origin(current):
                    headers = {k: v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}
                continue
            return self._finish(target, method, response, expect_set, budget)

    # --- internals ---------------------------------------------------------------------
    @staticmethod
    def _budget(timeout: Any, ctx: StepContext) -> _Budget:
        seconds = float(timeout) if is_number(timeout) and timeout > 0 else float(settings.HTTP_ACTION_TIMEOUT_S)
        seconds = min(seconds, float(settings.HTTP_ACTION_TIMEOUT_S))
        remaining = ctx.remaining()
        if remaining is not None and remaining <= seconds:
            if remaining <= 0:
                raise RunDeadlineExceeded("the run's deadline passed before the HTTP request could start")
            return _Budget(time.monotonic() + remaining, set_by_deadline=True)
        return _Budget(time.monotonic() + seconds, set_by_deadline=False)

    def _timed_out(self, what: str, budget: _Budget) -> Exception:
        if budget.set_by_deadline:
            return RunDeadlineExceeded(f"the run's deadline passed while {what}")
        return ExternalHTTPError(f"timed out {what}")

    def _send(
        self, target: Target, method: str, headers: dict[str, str], body: bytes | None, budget: _Budget
    ) -> urllib3.BaseHTTPResponse:
        addresses = checked_addresses(target)
        request_headers = {**headers, "Host": target.netloc}
        last_error = ""
        for address in addresses:
            left = budget.left()
            if left <= 0:
                raise self._timed_out(f"connecting to {target.display}", budget)
            pool = connection_pool(target, address, left)
            try:
                response = pool.urlopen(
                    method,
                    target.request_target,
                    body=body,
                    headers=request_headers,
                    redirect=False,
                    retries=False,
                    preload_content=False,
                    assert_same_host=False,
                    release_conn=False,
                    timeout=urllib3.Timeout(connect=left, read=left),
                )
            except NewConnectionError as exc:
                # Another checked address of the same name may answer; nothing else is tried.
                last_error = _os_reason(exc) or "connection failed"
                continue
            except ConnectTimeoutError:
                last_error = "connection timed out"
                continue
            except ReadTimeoutError:
                raise self._timed_out(f"waiting for {method} {target.display}", budget) from None
            except SSLError as exc:
                reason = _os_reason(exc) or "handshake error"
                raise ExternalHTTPError(f"TLS with {target.netloc} failed: {reason}") from None
            except (ProtocolError, HTTPError) as exc:
                reason = _os_reason(exc) or type(exc).__name__
                raise ExternalHTTPError(f"{method} {target.display} failed: {reason}") from None
            return response
        if last_error == "connection timed out":
            raise self._timed_out(f"connecting to {target.display}", budget)
        raise ExternalHTTPError(f"could not connect to {target.netloc}: {last_error}")

    def _read(self, response: urllib3.BaseHTTPResponse, target: Target, method: str, budget: _Budget) -> bytes:
        limit = settings.HTTP_ACTION_MAX_RESPONSE_BYTES
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _BodyTooLarge(b"")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.stream(64 * 1024, decode_content=True):
                size += len(chunk)
                chunks.append(chunk)
                if size > limit:
                    raise _BodyTooLarge(b"".join(chunks)[:limit])
                if budget.left() <= 0:
                    raise self._timed_out(f"reading the response of {method} {target.display}", budget)
        except ReadTimeoutError:
            raise self._timed_out(f"reading the response of {method} {target.display}", budget) from None
        except (ProtocolError, HTTPError) as exc:
            reason = _os_reason(exc) or type(exc).__name__
            raise ExternalHTTPError(f"reading the response of {method} {target.display} failed: {reason}") from None
        return b"".join(chunks)

    def _finish(
        self,
        target: Target,
        method: str,
        response: urllib3.BaseHTTPResponse,
        expect: frozenset[int] | None,
        budget: _Budget,
    ) -> dict[str, Any]:
        status = response.status
        accepted = status in expect if expect else 200 <= status < 400
        limit = settings.HTTP_ACTION_MAX_RESPONSE_BYTES
        try:
            raw = b"" if method == "HEAD" else self._read(response, target, method, budget)
        except _BodyTooLarge as too_large:
            if accepted:
                raise UserError(
                    f"{method} {target.display} answered {status} with a body larger than the {limit} bytes allowed"
                ) from None
            raw = too_large.partial
        finally:
            response.close()
        content_type = response.headers.get("content-type", "")
        if not accepted:
            snippet = _text(raw, content_type)[:_ERROR_SNIPPET_CHARS].strip()
            detail = f"{method} {target.display} answered {status}" + (f": {snippet}" if snippet else "")
            if status >= 500:
                raise ExternalHTTPError(detail)
            if status >= 400:
                raise UserError(detail)
            raise UserError(f"{detail} (expected {', '.join(str(s) for s in sorted(expect or ()))})")
        return {
            "status": status,
            "headers": {name: response.headers[name] for name in KEPT_RESPONSE_HEADERS if name in response.headers},
            "body": _decode_body(raw, content_type),
        }


def _charset(content_type: str) -> str:
    match = re.search(r"charset=\"?([\w.:-]+)", content_type, re.IGNORECASE)
    return match.group(1) if match else "utf-8"


def _text(raw: bytes, content_type: str) -> str:
    try:
        return raw.decode(_charset(content_type), errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def _decode_body(raw: bytes, content_type: str) -> Any:
    text = _text(raw, content_type)
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _os_reason(exc: BaseException) -> str:
    """The operating system's words for a network failure (e.g. "Connection refused"),
    found in the exception chain; never urllib3's text, which repeats the URL."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        if isinstance(current, OSError) and not isinstance(current, HTTPError) and str(current):
            return str(current)
        current = current.__cause__ or current.__context__
    return ""


def connection_pool(target: Target, address: str, timeout: float) -> urllib3.HTTPConnectionPool:
    """A one-connection pool to `address`, the IP checked for `target`: the socket goes
    there, never to a name resolved again."""
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address,
            target.port,
            maxsize=1,
            retries=False,
            timeout=timeout,
            cert_reqs="CERT_REQUIRED",
            ca_certs=settings.HTTP_ACTION_CA_BUNDLE or None,
            # The socket goes to the checked IP; SNI and the certificate check use the name.
            server_hostname=None if target.is_ip_literal else target.host,
            assert_hostname=target.host,
        )
    return urllib3.HTTPConnectionPool(address, target.port, maxsize=1, retries=False, timeout=timeout)
