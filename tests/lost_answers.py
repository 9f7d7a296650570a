"""A proxy between vcp-migrate and a sqld node that loses one answer: the request that first
contains a given text reaches the server, is done there, and its answer never comes back (the
connection is closed instead), as when a network drops between a server and its client. What
then happens to the server (killed, say) is the test's to choose, in ``then``."""

from __future__ import annotations

import http.client
import http.server
import threading
import time
from collections.abc import Callable
from types import TracebackType
from urllib.parse import urlsplit


class LosingProxy:
    """Forwards every request to ``upstream``; loses the answer to the first whose body holds
    ``text``: the connection is closed, or with ``status`` (502, say) a gateway's error page is
    sent in its place, as a reverse proxy in front of the server does when its wait runs out."""

    def __init__(
        self,
        upstream: str,
        text: str,
        then: Callable[[], None] = lambda: None,
        status: int | None = None,
        *,
        stall: float = 0.0,
    ) -> None:
        """With ``stall``, the answer is not lost: it comes back, and the request after it reaches
        the server only ``stall`` seconds later, as from a client paused between the two."""
        self.lost = threading.Event()  # set once the answer has been lost (or, with ``stall``, sent)
        stalled = threading.Event()
        target = urlsplit(upstream)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return None

            def do_GET(self) -> None:
                self._forward(b"")

            def do_POST(self) -> None:
                self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _forward(self, body: bytes) -> None:
                if stall and proxy.lost.is_set() and not stalled.is_set():
                    stalled.set()
                    time.sleep(stall)
                upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                try:
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                except OSError:  # the server is gone: so is the connection to it
                    self.close_connection = True
                    self.connection.close()
                    return
                finally:
                    upstream.close()
                if text.encode() in body and not proxy.lost.is_set() and stall:
                    proxy.lost.set()  # answered below; the next request waits
                elif text.encode() in body and not proxy.lost.is_set():
                    proxy.lost.set()
                    then()
                    if status is not None:
                        page = b"<html><body><h1>Bad Gateway</h1></body></html>"
                        self.send_response(status)
                        self.send_header("Content-Type", "text/html")
                        self.send_header("Content-Length", str(len(page)))
                        self.end_headers()
                        self.wfile.write(page)
                        return
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LosingProxy:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
