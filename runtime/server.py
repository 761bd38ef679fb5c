"""A local server for kiosk apps: readings over WebSocket, and a small page that shows them.

    GET /             the live page (current reading + timeline)
    GET /readings     the recent events as a JSON array
    WS  /ws           every event as it is produced, one JSON text message each

Bound to 127.0.0.1 by default. Any other address requires a token, which clients pass as
``?token=...`` (the page forwards its own); without it they get 401. Events are published
from any thread with ``publish``; the server keeps a bounded history for late joiners.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import threading
from collections import deque
from http import HTTPStatus
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from emolive.runtime.readings import dumps


class ServerError(RuntimeError):
    pass


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _page() -> bytes:
    return resources.files("emolive.runtime").joinpath("web/index.html").read_bytes()


def _response(body: bytes, content_type: str):
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
    )
    return Response(HTTPStatus.OK.value, "OK", headers, body)


class ReadingServer:
    """Runs an asyncio WebSocket + HTTP server in its own thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        history: int = 500,
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
        self.history: deque[str] = deque(maxlen=history)
        self._clients: set = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.published = 0

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
        q = f"?token={self.token}" if self.token else ""
        return f"http://{self.host}:{self.port}/{q}"

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # reported by start(), which is waiting on _ready
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        async with serve(self._handle, self.host, self.port, process_request=self._http) as server:
            self._server = server
            if self.port == 0:
                self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await server.wait_closed()

    # -- HTTP and WebSocket ------------------------------------------------------------------------
    def _authorised(self, path: str) -> bool:
        if not self.token:
            return True
        given = parse_qs(urlsplit(path).query).get("token", [""])[0]
        return hmac.compare_digest(given, self.token)

    def _http(self, connection, request):
        path = urlsplit(request.path).path
        if not self._authorised(request.path):
            return connection.respond(HTTPStatus.UNAUTHORIZED, "token required\n")
        if path == "/ws":
            return None  # go on with the WebSocket handshake
        if path in ("/", "/index.html"):
            return _response(_page(), "text/html; charset=utf-8")
        if path == "/readings":
            return _response(("[" + ",".join(self.history) + "]").encode(), "application/json")
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")

    async def _handle(self, ws) -> None:
        self._clients.add(ws)
        try:
            for line in list(self.history):
                await ws.send(line)
            await ws.wait_closed()
        finally:
            self._clients.discard(ws)

    # -- publishing -------------------------------------------------------------------------------
    def publish(self, event: dict) -> None:
        """Send an event to every client (callable from any thread)."""
        line = dumps(event)
        self.history.append(line)
        self.published += 1
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._broadcast, line)

    def _broadcast(self, line: str) -> None:
        from websockets.asyncio.server import broadcast

        broadcast(self._clients, line)
