"""A loopback TCP proxy the tests put in front of moto to cut SQS (DESIGN.md §4).

Stopping moto would lose every queue; cutting this proxy instead makes the endpoint
unreachable while moto keeps its state. ``cut(shape)`` gives the outage one of the shapes
real networks produce:

- ``"reset"`` (the default): the listening socket closes and every live connection is
  reset (SO_LINGER 0, so the peer gets ECONNRESET at once, not a FIN it might read as a
  short response); a new connection to the port is refused by the kernel (ECONNREFUSED).
- ``"refuse"``: the listening socket closes and every live connection is closed politely
  (a FIN, as a server shutting down sends); new connections are refused.
- ``"blackhole"``: the port still accepts connections, but nothing is forwarded in either
  direction, on live or new connections: requests vanish and no answer ever comes (a
  firewall dropping packets, a peer that hangs). ``restore()`` forwards again on every
  connection; what was sent in between is lost.
- ``"half-open"``: every connection live at the cut, and every connection made during
  the outage, is frozen for good: kept open, nothing forwarded, never closed — what a NAT
  or load-balancer failover leaves behind, or a peer that died without a reset. After
  ``restore()`` new connections work, the frozen ones stay frozen: a client that reuses
  one waits for ever unless it has a timeout of its own.

``restore()`` ends any shape; clients configured with ``.url`` reconnect without being
told anything. The port is picked below the kernel's ephemeral range, so while the
listener is closed no outgoing connection on this machine can be given it as a source
port and make ``restore()`` fail.
"""

from __future__ import annotations

import contextlib
import logging
import random
import select
import socket
import struct
import threading

logger = logging.getLogger(__name__)

_BUFFER = 65536
SHAPES = ("reset", "refuse", "blackhole", "half-open")


def _ephemeral_port_floor() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _bind_outside_ephemeral_range(host: str) -> socket.socket:
    ceiling = _ephemeral_port_floor()
    floor = max(1025, ceiling - 12000)
    for _ in range(200):
        port = random.randint(floor, ceiling - 1)
        try:
            return _listening_socket(host, port)
        except OSError:
            continue
    return _listening_socket(host, 0)  # fall back to any free port


def _reset(sock: socket.socket) -> None:
    """Close *sock* with an RST rather than a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class _Link:
    """One proxied connection: the client's socket and ours to moto."""

    __slots__ = ("client", "upstream", "frozen", "closed")

    def __init__(self, client: socket.socket, upstream: socket.socket, frozen: bool):
        self.client = client
        self.upstream = upstream
        self.frozen = frozen  # half-open: never forwards again, never closes
        self.closed = False


class TcpProxy:
    """Forward ``host:port`` to ``target_host:target_port`` until cut."""

    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.host = host
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stop_accepting = threading.Event()
        self._shape: str | None = None
        self.port: int = 0
        self.connections_accepted = 0

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> TcpProxy:
        self._listener = _bind_outside_ephemeral_range(self.host)
        self.port = self._listener.getsockname()[1]
        self._start_accepting()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._shape is not None

    @property
    def shape(self) -> str | None:
        return self._shape

    def frozen_connections(self) -> int:
        with self._lock:
            return sum(1 for link in self._links if link.frozen and not link.closed)

    def cut(self, shape: str = "reset") -> None:
        """Start an outage of *shape* (see the module docstring)."""
        if shape not in SHAPES:
            raise ValueError(f"unknown outage shape {shape!r}; one of {', '.join(SHAPES)}")
        if self._shape is not None:
            self.restore()
        self._shape = shape
        if shape in ("reset", "refuse"):
            self._stop_listening()
            dropped = self._drop_links(_reset if shape == "reset" else _close)
            logger.info("tcp proxy %s cut: %s (%d live connections)", self.url, shape, dropped)
            return
        if shape == "half-open":
            with self._lock:
                for link in self._links:
                    link.frozen = True
        logger.info("tcp proxy %s cut: %s", self.url, shape)

    def restore(self) -> None:
        """End the outage: accept and forward again (frozen half-open connections stay frozen)."""
        shape, self._shape = self._shape, None
        if self._listener is None:
            self._listener = _listening_socket(self.host, self.port)
            self._start_accepting()
        logger.info("tcp proxy %s restored after %s", self.url, shape)

    def retarget(self, target_host: str, target_port: int) -> None:
        """Forward to another server from now on (an SQS server restarted elsewhere); the
        live connections to the old one are reset."""
        self.target = (target_host, target_port)
        self._drop_links(_reset)

    def close(self) -> None:
        self._shape = "closed"
        self._stop_listening()
        self._drop_links(_reset)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------
    def _drop_links(self, closer) -> int:
        """Close every live connection with `closer` (a reset or a polite close)."""
        with self._lock:
            live = list(self._links)
            self._links.clear()
        for link in live:
            link.closed = True
            closer(link.client)
            closer(link.upstream)
        return len(live)

    def _forwarding(self, link: _Link) -> bool:
        return not link.frozen and self._shape != "blackhole"

    def _start_accepting(self) -> None:
        self._stop_accepting = threading.Event()
        thread = threading.Thread(
            target=self._accept_loop,
            args=(self._listener, self._stop_accepting),
            name=f"tcp-proxy-accept-{self.port}",
            daemon=True,
        )
        self._accept_thread = thread
        thread.start()

    def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self._stop_accepting.set()
        # shutdown() wakes a thread blocked in accept()/select() on Linux.
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        if self._accept_thread is not None and self._accept_thread is not threading.current_thread():
            self._accept_thread.join(timeout=2)

    def _accept_loop(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                readable, _, _ = select.select([listener], [], [], 0.2)
                if not readable:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):
                return  # listener closed by cut()
            if stop.is_set():
                _reset(client)
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # A connection made during a half-open outage is as dead as the old ones.
            link = _Link(client, upstream, frozen=self._shape == "half-open")
            with self._lock:
                self._links.add(link)
                self.connections_accepted += 1
            threading.Thread(target=self._pump, args=(link,), name=f"tcp-proxy-pump-{self.port}", daemon=True).start()

    def _pump(self, link: _Link) -> None:
        client, upstream = link.client, link.upstream
        peers = {client: upstream, upstream: client}
        watched = [client, upstream]
        try:
            while not link.closed:
                readable, _, _ = select.select(watched, [], [], 0.5)
                for sock in readable:
                    data = sock.recv(_BUFFER)
                    if not data:
                        if sock is upstream and not self._forwarding(link):
                            # moto closed its side while nothing is forwarded: the client
                            # must not learn it (no FIN): keep its socket open, answer nothing.
                            watched = [client]
                            continue
                        return
                    if self._forwarding(link):
                        peers[sock].sendall(data)
                    # else: swallowed, as a black hole or a dead peer does
        except (OSError, ValueError):
            return  # reset by cut(), or by a peer
        finally:
            with self._lock:
                ours = link in self._links
                self._links.discard(link)
            if ours and not link.closed:
                link.closed = True
                _close(client)
                _close(upstream)
