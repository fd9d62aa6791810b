"""A local HTTP server for webhook actions: each path sets the response, and every request is kept.

`/<tag>/ok` returns 200, `/<tag>/fail` returns 500 and `/<tag>/slow/<seconds>`
waits, then returns 200. The tag groups one test's requests.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Hit:
    tag: str
    started: float
    ended: float = 0.0


@dataclass
class WebhookServer:
    server: ThreadingHTTPServer
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def count(self, tag: str) -> int:
        with self.lock:
            return sum(1 for hit in self.hits if hit.tag == tag)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_webhook_server() -> WebhookServer:
    holder: dict[str, WebhookServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            parts = self.path.strip("/").split("/")
            hit = Hit(tag=parts[0], started=time.monotonic())
            with holder["server"].lock:
                holder["server"].hits.append(hit)
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            code = 200
            if len(parts) > 1 and parts[1] == "fail":
                code = 500
            elif len(parts) > 2 and parts[1] == "slow":
                time.sleep(float(parts[2]))
            hit.ended = time.monotonic()
            body = b'{"ok": true}' if code == 200 else b'{"error": "scripted failure"}'
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = _answer
        do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder["server"] = WebhookServer(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return holder["server"]
