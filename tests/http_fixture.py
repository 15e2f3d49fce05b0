"""A small local HTTP file server for download tests: 127.0.0.1, a random port, bounded.

Serves ``files`` (name → bytes) with HTTP Range support (206 / 416), and can misbehave on
purpose: ``cut[name] = k`` sends only the first ``k`` body bytes of the next response for
``name`` and drops the connection (once); ``ignore_range`` answers every request with the
whole file (200); ``trickle[name] = (k, seconds)`` sends the first ``k`` body bytes of the
next response for ``name`` at once and then one byte every ``seconds`` (once). Every request is
logged as ``(path, Range header or None)``.
"""
from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d+)-$")


class FileServer:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.ignore_range = False
        self.trickle: dict[str, tuple[int, float]] = {}
        self.log: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a stuck client cannot hold the server thread forever

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                range_header = self.headers.get("Range")
                server.log.append((self.path, range_header))
                data = server.files.get(name)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                match = _RANGE.match(range_header or "")
                if match and not server.ignore_range:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                trickle = server.trickle.pop(name, None)
                if trickle is not None:
                    import time

                    head, pause = trickle
                    try:
                        self.wfile.write(body[:head])
                        self.wfile.flush()
                        for i in range(head, len(body)):
                            time.sleep(pause)
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                    except OSError:   # the client gave up
                        pass
                    self.close_connection = True
                    return
                cut = server.cut.pop(name, None)
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.timeout = 10
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "FileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (the port was just released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
