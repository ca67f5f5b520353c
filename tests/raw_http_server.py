"""A local HTTP server whose replies are scripted byte for byte: for the misbehaviours a real endpoint can show.

Each ``POST`` is answered by the next entry of a script (the last one repeats): ``(status, body)``,
with ``trickle`` seconds between the body's bytes when set (a server that sends one byte a second).
It counts the requests it received, so tests can tell whether a call was sent again.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One scripted answer."""

    body: bytes | dict
    status: int = 200
    trickle: float = 0.0  # seconds between body bytes


def chat_completion(content: str | None = "7,6,8,5", choices: bool = True) -> dict:
    """A chat.completions body with this content (None: ``content: null``; ``choices=False``: an empty list)."""
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    return {"id": "chatcmpl-raw", "object": "chat.completion", "created": 0, "model": "raw",
            "choices": [choice] if choices else [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class RawServer:
    """Serve scripted replies on 127.0.0.1 in a background thread (``with RawServer([...]) as s: s.base_url``)."""

    def __init__(self, script: list[Reply]):
        self.script = list(script)
        self.received = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802 - the http.server API
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with server._lock:
                    reply = server.script[min(server.received, len(server.script) - 1)]
                    server.received += 1
                body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                try:
                    if not reply.trickle:
                        self.wfile.write(body)
                        return
                    for i in range(len(body)):
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(reply.trickle)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
