"""The server against hostile clients: other origins, DNS rebinding, floods, odd tokens.

Every check drives the real server over real sockets on 127.0.0.1; the browser checks run
headless Chromium (the Debian package; the Makefile's apt step installs it).
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from emolive.runtime.server import ReadingServer, ServerError, normalize_origin
from tests.helpers import dump_dom

websockets = pytest.importorskip("websockets")

CHROMIUM = "/usr/bin/chromium"


# -- raw clients: full control over headers, reading and writing --------------------------------
def _handshake(port: int, path: str = "/ws", headers: dict | None = None, rcvbuf: int = 0):
    """Open a WebSocket by hand; return (socket, status code, response head + any bytes after)."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    fields = {"Host": f"127.0.0.1:{port}", "Upgrade": "websocket", "Connection": "Upgrade",
              "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
              "Sec-WebSocket-Version": "13", **(headers or {})}  # fmt: skip
    head = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    sock.sendall((head + "\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    status = int(data.split(b" ", 2)[1]) if data else 0
    if status != 101:  # an HTTP answer: read its body too
        try:
            while chunk := sock.recv(4096):
                data += chunk
        except OSError:
            pass
    return sock, status, data


def _frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """A masked client frame (the mask key is zero, so the payload goes as is)."""
    n = len(payload)
    if n < 126:
        size = struct.pack("!B", 0x80 | n)
    elif n < 1 << 16:
        size = struct.pack("!BH", 0x80 | 126, n)
    else:
        size = struct.pack("!BQ", 0x80 | 127, n)
    return bytes([0x80 | opcode]) + size + b"\0\0\0\0" + payload


def _http_get(port: int, path: str, host: str | None = None, origin: str | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", f"127.0.0.1:{port}" if host is None else host)
    if origin:
        conn.putheader("Origin", origin)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    headers = dict(resp.getheaders())
    conn.close()
    return resp.status, body, headers


# -- Host: DNS rebinding ----------------------------------------------------------------------
def test_host_header_must_name_this_server():
    with ReadingServer(port=0) as server:
        server.publish({"type": "expression", "frame": 0})
        port = server.port
        for good in (
            f"127.0.0.1:{port}",
            f"localhost:{port}",
            f"LOCALHOST:{port}",
            f"[::1]:{port}",
        ):
            status, body, _ = _http_get(port, "/readings", host=good)
            assert status == 200 and b'"frame":0' in body, good
        for bad in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}",
                    f"127.0.0.1.evil.example:{port}", "", f"localhost:{port}:1"):  # fmt: skip
            status, body, _ = _http_get(port, "/readings", host=bad)
            assert status == 403, (bad, status)
            assert b'"frame"' not in body and b"Host" in body
        sock, status, data = _handshake(port, headers={"Host": f"evil.example:{port}"})
        sock.close()
        assert status == 403 and b"Host" in data and b'"frame"' not in data
        sock, status, data = _handshake(port, headers={"Host": f"localhost:{port}"})
        sock.close()
        assert status == 101
        assert server.refused >= 7


# -- Origin ------------------------------------------------------------------------------------
def test_origin_must_be_this_server_or_allowed():
    kiosk = "http://kiosk.example:3000"
    with ReadingServer(port=0, allow_origins=[kiosk + "/"]) as server:
        port = server.port
        for origin, want in ((f"http://127.0.0.1:{port}", 101), (kiosk, 101),
                             ("http://KIOSK.example:3000", 101), ("http://evil.example", 403),
                             (f"http://localhost:{port}", 403),  # not the Host this page used
                             (f"https://127.0.0.1:{port}", 403), ("null", 403),
                             ("http://kiosk.example:3001", 403)):  # fmt: skip
            sock, status, data = _handshake(port, headers={"Origin": origin})
            sock.close()
            assert status == want, (origin, status, data[-300:])
            if want == 403:
                assert b"origin" in data.lower() and b"--allow-origin" in data
        status, _, headers = _http_get(port, "/readings", origin=kiosk)
        assert status == 200 and headers.get("Access-Control-Allow-Origin") == kiosk
        status, _, headers = _http_get(port, "/readings", origin="http://evil.example")
        assert status == 403 and "Access-Control-Allow-Origin" not in headers
        # Clients that send no Origin (not browsers) are unaffected.
        from websockets.sync.client import connect

        with connect(f"ws://127.0.0.1:{port}/ws"):
            pass


def test_allowed_origins_are_checked_when_given():
    assert normalize_origin("HTTP://Kiosk.Local:3000/") == "http://kiosk.local:3000"
    assert normalize_origin("null") == "null"
    for bad in ("kiosk.local", "http://kiosk.local/app", "http://", "*", "http://a b"):
        with pytest.raises(ServerError, match="allow_origins: .* is not an origin"):
            ReadingServer(port=0, allow_origins=[bad])


def test_serve_refuses_bad_options_by_name():
    from click.testing import CliRunner

    from emolive.cli.main import main

    for args, option in ((["--allow-origin", "kiosk.local"], "--allow-origin"),
                         (["--allow-origin", "http://kiosk.local/app"], "--allow-origin"),
                         (["--duration", "0"], "--duration"), (["--duration", "-3"], "--duration"),
                         (["--linger", "-1"], "--linger"), (["--port", "70000"], "--port")):  # fmt: skip
        r = CliRunner().invoke(main, ["serve", "--source", "synthetic", *args])
        assert r.exit_code == 2 and f"Invalid value for '{option}'" in r.output, (args, r.output)


# A page that opens the reading server's WebSocket (its port in ?port=) and shows what it got.
_PROBE = b"""<!doctype html><html><head><title>probe</title></head><body>
<div id="out">waiting</div><script>
let got = 0;
const show = (text) => { document.getElementById("out").textContent = text; };
const port = new URLSearchParams(location.search).get("port");
const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
ws.onmessage = (m) => { got += 1; show(`got ${got} ${JSON.parse(m.data).frame}`); };
ws.onclose = (e) => { show(`${got ? "got " + got : "nothing"}, closed ${e.code}`); };
</script></body></html>"""


def _serve_page(page: bytes) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def _probe_text(dom: str) -> str | None:
    return (
        dom.split('<div id="out">', 1)[1].split("</div>", 1)[0] if '<div id="out">' in dom else None
    )


def _dump_dom(url: str, profile: Path) -> str:
    # Final states: the socket closed, or all three published events arrived.
    def done(dom):
        return (text := _probe_text(dom)) is not None and (
            "closed" in text or text.startswith("got 3")
        )

    proc = dump_dom(url, profile, budget_ms=2000, done=done)
    assert _probe_text(proc.stdout) is not None, proc.stderr[-2000:]
    return _probe_text(proc.stdout)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} absent (apt chromium)")
def test_a_page_from_another_origin_cannot_read_the_stream(tmp_path):
    """The same probe page reads the stream only once its origin is allowed."""
    httpd = _serve_page(_PROBE)
    origin = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        results = []
        for allow in ([], [origin]):
            with ReadingServer(port=0, allow_origins=allow) as server:
                for i in range(3):
                    server.publish({"type": "expression", "frame": i})
                dom = _dump_dom(f"{origin}/?port={server.port}", tmp_path / str(len(allow)))
                results.append((dom, server.refused))
    finally:
        httpd.shutdown()
    (refused, n_refused), (allowed, _) = results
    assert refused.startswith("nothing, closed"), refused
    assert n_refused >= 1
    assert allowed == "got 3 2", allowed  # the same page, once its origin is allowed


# -- tokens ------------------------------------------------------------------------------------
def test_odd_tokens_are_refused_not_crashed():
    with ReadingServer(port=0, token="s3cret") as server:
        for query in ("?token=%C3%A9", "?token=%FF%FE", "?token=wrong", "", "?token=s3cre"):
            status, body, _ = _http_get(server.port, "/" + query)
            assert status == 401, (query, status, body)
        sock, status, _ = _handshake(server.port, "/ws?token=%C3%A9")
        sock.close()
        assert status == 401
    with ReadingServer(port=0, token="clé-été") as server:
        assert "%C3%A9" in server.url
        assert b"emo-live" in urllib.request.urlopen(server.url, timeout=5).read()
        for query in ("", "?token=cl", "?token=cl%C3%A9-%C3%A9t", "?token=cle-ete"):
            status, _, _ = _http_get(server.port, "/" + query)
            assert status == 401, query
        sock, status, _ = _handshake(server.port, "/ws?token=cl%C3%A9-%C3%A9t%C3%A9")
        sock.close()
        assert status == 101


# -- memory: floods, non-readers, dead clients ----------------------------------------------------
_SERVER_SCRIPT = """
import sys
from emolive.runtime.server import ReadingServer
server = ReadingServer(port=0).start()
print(server.port, flush=True)
for line in sys.stdin:
    n, size = map(int, line.split())
    for i in range(n):
        server.publish({"type": "expression", "frame": i, "pad": "x" * size})
    print("ok", flush=True)
"""


def _rss_mb(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _flood(port: int, payload: bytes, times: int, out: list) -> None:
    sent = 0
    try:
        sock, status, _ = _handshake(port, rcvbuf=4096)
        sock.settimeout(2)
        for _ in range(times):
            sock.sendall(_frame(payload))
            sent += len(payload)
    except OSError:
        pass
    out.append(sent)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_flooding_and_stalled_clients_leave_memory_bounded():
    proc = subprocess.Popen([sys.executable, "-c", _SERVER_SCRIPT], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        port = int(proc.stdout.readline())

        def publish(n: int, size: int) -> None:
            proc.stdin.write(f"{n} {size}\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "ok"

        from websockets.sync.client import connect

        with connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as reader:
            publish(600, 4000)  # the history fills up: part of the baseline
            while json.loads(reader.recv(timeout=5))["frame"] != 599:
                pass
            before, _ = _rss_mb(proc.pid)

            stalled = [_handshake(port, rcvbuf=4096)[0] for _ in range(20)]  # never read
            sent: list[int] = []
            floods = [threading.Thread(target=_flood, args=(port, b"x" * (1 << 20), 24, sent))
                      for _ in range(10)]  # fmt: skip
            floods += [threading.Thread(target=_flood, args=(port, b"y" * 1000, 2000, sent))
                       for _ in range(10)]  # fmt: skip
            for t in floods:
                t.start()
            publish(3000, 4000)  # 12 MB for each of the 40 clients
            for t in floods:
                t.join(30)
            last = -1
            deadline = time.monotonic() + 10
            while last != 2999 and time.monotonic() < deadline:
                last = json.loads(reader.recv(timeout=5))["frame"]
            time.sleep(0.5)
            after, peak = _rss_mb(proc.pid)
            for sock in stalled:
                sock.close()
    finally:
        proc.kill()
        proc.wait()
    print(f"server RSS {before:.0f} -> {after:.0f} MB (peak {peak:.0f}); {len(sent)} floods")
    assert last == 2999  # a reading client still gets everything, stalled ones or not
    assert after - before < 50, f"RSS {before:.0f} -> {after:.0f} MB (peak {peak:.0f})"
    assert peak - before < 50, f"peak RSS {peak:.0f} MB, {before:.0f} MB before the flood"


def test_client_messages_are_discarded_big_ones_close_the_client():
    from websockets.sync.client import connect

    with ReadingServer(port=0, max_message=4096) as server:
        with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            for _ in range(100):
                ws.send("hello" * 100)
            server.publish({"type": "expression", "frame": 1})
            assert json.loads(ws.recv(timeout=5))["frame"] == 1
            ws.send(b"x" * 5000)
            with pytest.raises(websockets.exceptions.ConnectionClosed) as e:
                ws.recv(timeout=5)
            assert e.value.rcvd is not None and e.value.rcvd.code == 1009
        deadline = time.monotonic() + 5
        while server.clients and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.clients == 0


def test_slow_clients_lose_the_oldest_events_and_dead_ones_are_dropped():
    with ReadingServer(port=0, backlog=50, ping_interval=0.3, ping_timeout=0.3) as server:
        sock, status, _ = _handshake(server.port, rcvbuf=4096)
        assert status == 101
        for i in range(2000):
            server.publish({"type": "expression", "frame": i, "pad": "z" * 2000})
        deadline = time.monotonic() + 5
        while server.dropped == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.dropped > 0  # counted, not buffered
        # It answers no pings: gone within ping_interval + ping_timeout + close_timeout.
        deadline = time.monotonic() + 5
        while server.clients and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.clients == 0
        sock.close()
