"""A local server for kiosk apps: readings over WebSocket, and a small page that shows them.

    GET /             the live page (current reading + timeline)
    GET /readings     the recent events as a JSON array
    WS  /ws           every event as it is produced, one JSON text message each

Bound to 127.0.0.1 by default. Any other address requires a token, which clients pass as
``?token=...`` (the page forwards its own); without it they get 401. Events are published
from any thread with ``publish``; the server keeps a bounded history for late joiners.

Every request, HTTP or WebSocket, must name this server in ``Host`` (its bound address, and
localhost / 127.0.0.1 / [::1] when bound to loopback, with the port), so a DNS-rebound page
gets 403. A browser's ``Origin`` must be this server's own, or one of ``allow_origins``
(pages of another origin get 403, which a browser reports as a failed handshake).

Clients cannot make the server hold memory: their messages are read and discarded (one over
``max_message`` bytes closes the client), a client that misses a keepalive pong, or whose
socket takes no event for ``ping_interval + ping_timeout`` (the ping itself waits behind a
full send buffer, so keepalive alone cannot see that), is dropped within that time, and each
client's queue keeps at most ``backlog`` events (the oldest are dropped for a slow client,
and counted in ``dropped``).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import socket
import threading
from collections import deque
from collections.abc import Iterable
from http import HTTPStatus
from importlib import resources
from urllib.parse import parse_qs, quote, urlsplit

from emolive.runtime.readings import dumps

log = logging.getLogger("emolive.server")


class ServerError(RuntimeError):
    pass


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")


def split_host(value: str) -> tuple[str, int | None] | None:
    """``name[:port]`` or ``[v6][:port]`` -> (lower-case name, port or None); None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
        port = rest[1:] if rest else None
    else:
        name, colon, port = value.partition(":")
        port = port if colon else None
        if not name or not set(name) <= _NAME_CHARS:
            return None
    if port is None:
        return name.rstrip("."), None
    if not (port.isascii() and port.isdigit() and len(port) <= 5):
        return None
    return name.rstrip("."), int(port)


def _netloc(name: str, port: int | None, default: int) -> str:
    name = f"[{name}]" if ":" in name else name
    return name if port in (None, default) else f"{name}:{port}"


def normalize_origin(origin: str) -> str:
    """An origin as browsers send it: ``scheme://host[:port]`` in lower case (default port left
    out), or ``null`` (file:// pages, sandboxed frames). ServerError if ``origin`` is not one."""
    text = origin.strip()
    if text.lower() == "null":
        return "null"
    scheme, sep, rest = text.partition("://")
    rest = rest[:-1] if rest.endswith("/") else rest
    host = split_host(rest) if sep and "/" not in rest and "@" not in rest else None
    if not scheme.isalpha() or host is None:
        raise ServerError(
            f"{origin!r} is not an origin: give scheme://host[:port] without a path "
            f"(e.g. http://localhost:3000), or null for file:// pages"
        )
    scheme = scheme.lower()
    return f"{scheme}://{_netloc(*host, {'http': 80, 'https': 443}.get(scheme, -1))}"


def _page() -> bytes:
    return resources.files("emolive.runtime").joinpath("web/index.html").read_bytes()


def _response(body: bytes, content_type: str, extra: Iterable[tuple[str, str]] = ()):
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *extra,
        ]
    )
    return Response(HTTPStatus.OK.value, "OK", headers, body)


class _Client:
    """One WebSocket client: its bounded queue of events still to send."""

    __slots__ = ("ws", "queue", "ready", "dropped")

    def __init__(self, ws, history: Iterable[str], backlog: int) -> None:
        self.ws = ws
        self.queue: deque[str] = deque(history, maxlen=backlog)  # the history first
        self.ready = asyncio.Event()
        self.ready.set()
        self.dropped = 0


class ReadingServer:
    """Runs an asyncio WebSocket + HTTP server in its own thread.

    ``allow_origins``: browser origins besides the server's own whose pages may read it.
    ``max_message``: largest client message (bytes); anything bigger closes that client.
    ``backlog``: events a client may have waiting (history included); past it the oldest go.
    ``ping_interval``/``ping_timeout``: keepalive, seconds; a client that misses a pong goes.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        history: int = 500,
        *,
        allow_origins: Iterable[str] = (),
        max_message: int = 4096,
        backlog: int = 1000,
        ping_interval: float = 5.0,
        ping_timeout: float = 5.0,
    ) -> None:
        if not is_loopback(host) and not token:
            raise ServerError(
                f"serving on {host} exposes readings to the network: pass a token "
                f"(--token SECRET), or bind to 127.0.0.1"
            )
        try:
            import websockets  # noqa: F401
        except ImportError as e:
            raise ServerError(
                "the server needs the websockets package: pip install websockets"
            ) from e
        self.host, self.port, self.token = host, port, token
        try:
            self.allow_origins = {normalize_origin(o) for o in allow_origins}
        except ServerError as e:
            raise ServerError(f"allow_origins: {e}") from None
        self.max_message, self.backlog = max_message, max(backlog, 1)
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        bound = host.lower().strip("[]")
        self._names = {bound}
        if is_loopback(bound):
            self._names |= {"localhost", "127.0.0.1", "::1"}
        self._any_ip = bound in ("", "0.0.0.0", "::")
        if self._any_ip:  # bound to every address: any IP, or this machine's name
            name = socket.gethostname().lower()
            self._names |= {"localhost", name, f"{name}.local"}
        self.history: deque[str] = deque(maxlen=history)
        self._clients: set[_Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._logged: set[str] = set()
        self.published = 0  # events published
        self.dropped = 0  # events dropped for slow clients (all clients together)
        self.refused = 0  # requests refused (Host, Origin, token)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> ReadingServer:
        self._thread = threading.Thread(target=self._run, name="reading-server", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise ServerError(
                f"cannot serve on {self.host}:{self.port}: {self._error}"
            ) from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> ReadingServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        q = f"?token={quote(self.token, safe='')}" if self.token else ""
        return f"http://{_netloc(self.host.strip('[]'), self.port, -1)}/{q}"

    @property
    def clients(self) -> int:
        """WebSocket clients connected now."""
        return len(self._clients)

    def stats(self) -> dict:
        return {"published": self.published, "dropped": self.dropped, "refused": self.refused}

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # reported by start(), which is waiting on _ready
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        async with serve(
            self._handle, self.host, self.port, process_request=self._http,
            max_size=self.max_message, max_queue=4, write_limit=2**15, open_timeout=5,
            ping_interval=self.ping_interval, ping_timeout=self.ping_timeout, close_timeout=2,
        ) as server:  # fmt: skip
            self._server = server
            if self.port == 0:
                self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await server.wait_closed()

    # -- HTTP and WebSocket ------------------------------------------------------------------------
    def _host_ok(self, value: str) -> bool:
        parsed = split_host(value)
        if parsed is None:
            return False
        name, port = parsed
        if (80 if port is None else port) != self.port:
            return False
        if name in self._names:
            return True
        try:
            return self._any_ip and bool(ipaddress.ip_address(name))
        except ValueError:
            return False

    def _origin_ok(self, origin: str, host: str) -> bool:
        try:
            origin = normalize_origin(origin)
        except ServerError:
            return False
        if origin in self.allow_origins:
            return True
        own = split_host(host)  # checked by _host_ok already
        return own is not None and origin == f"http://{_netloc(*own, 80)}"

    def _authorised(self, path: str) -> bool:
        if not self.token:
            return True
        query = parse_qs(urlsplit(path).query, errors="surrogateescape")
        given = query.get("token", [""])[0].encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, self.token.encode("utf-8", "surrogateescape"))

    def _refuse(self, connection, status: HTTPStatus, reason: str):
        self.refused += 1
        if reason not in self._logged and len(self._logged) < 20:  # no log flood
            self._logged.add(reason)
            log.warning("refused a request: %s", reason)
        return connection.respond(status, reason + "\n")

    def _http(self, connection, request):
        hosts = request.headers.get_all("Host")
        origins = request.headers.get_all("Origin")
        if len(hosts) != 1 or not self._host_ok(hosts[0]):
            return self._refuse(
                connection, HTTPStatus.FORBIDDEN,
                f"Host {', '.join(hosts) or '(none)'} does not name this server "
                f"({_netloc(self.host.strip('[]'), self.port, -1)})",
            )  # fmt: skip
        if len(origins) > 1 or (origins and not self._origin_ok(origins[0], hosts[0])):
            origin = ", ".join(origins)
            return self._refuse(
                connection, HTTPStatus.FORBIDDEN,
                f"origin {origin} may not read this server: open the page it serves, or "
                f"start it with --allow-origin {origin}",
            )  # fmt: skip
        if not self._authorised(request.path):
            return self._refuse(connection, HTTPStatus.UNAUTHORIZED, "token required (?token=...)")
        path = urlsplit(request.path).path
        if path == "/ws":
            return None  # go on with the WebSocket handshake
        if path in ("/", "/index.html"):
            return _response(_page(), "text/html; charset=utf-8")
        if path == "/readings":
            body = ("[" + ",".join(self.history) + "]").encode()
            if origins and normalize_origin(origins[0]) in self.allow_origins:
                cors = [("Access-Control-Allow-Origin", origins[0]), ("Vary", "Origin")]
                return _response(body, "application/json", cors)
            return _response(body, "application/json")
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")

    async def _handle(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        client = _Client(ws, self.history, self.backlog)
        self._clients.add(client)
        sender = asyncio.create_task(self._send(client))
        try:
            async for _ in ws:  # read and discard: nothing a client says is kept
                pass
        except ConnectionClosed:  # includes a message over max_message (close code 1009)
            pass
        finally:
            self._clients.discard(client)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _send(self, client: _Client) -> None:
        from websockets.exceptions import ConnectionClosed

        stall = self.ping_interval + self.ping_timeout
        try:
            while True:
                if not client.queue:
                    client.ready.clear()
                    await client.ready.wait()
                    continue
                # Waits while its buffer is full (wait_for: asyncio.timeout is 3.11+).
                await asyncio.wait_for(client.ws.send(client.queue.popleft()), stall)
        except ConnectionClosed:
            pass
        except asyncio.TimeoutError:  # a reader that takes nothing is gone: free its buffers
            log.info("dropped a client that took no event for %.1f s", stall)
            client.ws.transport.abort()

    # -- publishing -------------------------------------------------------------------------------
    def publish(self, event: dict) -> None:
        """Send an event to every client (callable from any thread)."""
        line = dumps(event)
        self.history.append(line)
        self.published += 1
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._broadcast, line)

    def _broadcast(self, line: str) -> None:
        for client in self._clients:
            if len(client.queue) == client.queue.maxlen:
                client.dropped += 1
                self.dropped += 1
            client.queue.append(line)
            client.ready.set()
