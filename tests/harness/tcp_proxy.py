"""A loopback TCP proxy the tests put in front of moto to cut SQS (DESIGN.md §4).

Stopping moto would lose every queue; cutting this proxy instead makes the endpoint
unreachable while moto keeps its state:

- ``cut()`` closes the listening socket and resets every live connection (SO_LINGER 0,
  so the peer gets ECONNRESET at once, not a FIN it might read as a short response);
  a new connection to the port is refused by the kernel (ECONNREFUSED), immediately.
- ``restore()`` listens again on the same port, so clients configured with ``.url``
  reconnect without being told anything.

The port is picked below the kernel's ephemeral range, so while the proxy is cut no
outgoing connection on this machine can be given it as a source port and make
``restore()`` fail.
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


class TcpProxy:
    """Forward ``host:port`` to ``target_host:target_port`` until cut."""

    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.host = host
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stop_accepting = threading.Event()
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
        return self._listener is None

    def cut(self) -> None:
        """Stop listening and reset every live connection; new connections are refused."""
        self._stop_listening()
        with self._lock:
            live = list(self._connections)
            self._connections.clear()
        for sock in live:
            _reset(sock)
        logger.info("tcp proxy %s cut (%d live connections reset)", self.url, len(live))

    def restore(self) -> None:
        """Accept connections again on the same port."""
        if self._listener is not None:
            return
        self._listener = _listening_socket(self.host, self.port)
        self._start_accepting()
        logger.info("tcp proxy %s restored", self.url)

    def close(self) -> None:
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------
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
            with self._lock:
                self._connections.update((client, upstream))
                self.connections_accepted += 1
            threading.Thread(
                target=self._pump, args=(client, upstream), name=f"tcp-proxy-pump-{self.port}", daemon=True
            ).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        try:
            while True:
                readable, _, _ = select.select(list(peers), [], [], 1.0)
                for sock in readable:
                    data = sock.recv(_BUFFER)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return  # reset by cut(), or by a peer
        finally:
            with self._lock:
                cut_already = client not in self._connections
                self._connections.discard(client)
                self._connections.discard(upstream)
            if not cut_already:
                for sock in (client, upstream):
                    with contextlib.suppress(OSError):
                        sock.close()
