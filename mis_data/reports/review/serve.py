"""``mis-data review RUN --serve``: the gallery on 127.0.0.1, saving decisions as they are made.

The server binds the loopback interface only and makes no outgoing connection. It answers:

* ``GET /review/...`` and ``GET /images/...``: the gallery folder and the run's images (the
  gallery links full-size images as ``../images/...``); nothing else of the run folder is served;
* ``GET /api/decisions``: the run's decision log as a JSON array;
* ``POST /api/decisions``: one decision (or a list), validated as ``ReviewDecision`` and
  appended to ``RUN/decisions.jsonl`` under the run folder's lock, taken for that write alone.
  Holding it while serving would block every build, split or apply-decisions for as long as a
  gallery stays open (days, in a forgotten tab); taken per write, a decision sent while another
  command writes the folder is refused with 409 naming that command, and the page keeps it
  for download.

A POST must be ``application/json`` from the page's own origin, so another web site open in
the same browser cannot write decisions (it could only send a form, which is refused). Every
request must name this server in its ``Host`` header (``127.0.0.1:PORT`` or ``localhost:PORT``):
a page that rebinds its own domain name to 127.0.0.1 sends its own name there, so it can read
neither the gallery nor the log (403). A body needs a plain ``Content-Length`` of at most 1 MiB
(missing: 411, not a number or negative: 400, larger: 413). A malformed request gets its status
line and the connection closes; nothing is printed, since the command owns the terminal.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import ValidationError

from mis_data.core.decision_log import DECISIONS, append_decisions, read_decisions
from mis_data.core.lock import FolderInUse, FolderLock
from mis_data.core.records import ReviewDecision

MAX_BODY = 1 << 20
SERVED = ("review", "images")
LENGTH = re.compile(r"[0-9]{1,15}")
log = logging.getLogger("mis_data")


class ReviewServer(ThreadingHTTPServer):
    """The review server on 127.0.0.1; ``port`` 0 picks a free one. One lock serializes decision writes."""

    daemon_threads = True

    def __init__(self, run_path: Path, port: int = 0) -> None:
        self.run_path = run_path.resolve()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), ReviewHandler)

    @property
    def url(self) -> str:
        """The gallery's address, for the command to print."""
        return f"http://127.0.0.1:{self.server_address[1]}/review/index.html"

    @property
    def origin(self) -> str:
        """The only origin whose pages may post decisions."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def hosts(self) -> frozenset[str]:
        """What a browser puts in ``Host`` for this server (the name typed, with the port)."""
        port = self.server_address[1]
        return frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A request that broke off (a client gone, a read timed out) costs its connection
        only; the stdlib would print a traceback over the command's output."""
        log.debug("review server: request from %s ended early", client_address, exc_info=True)


class ReviewHandler(BaseHTTPRequestHandler):
    """One request: the gallery's files, the decision log, or a decision to append."""

    server: ReviewServer
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that stops sending mid-request does not hold a thread forever

    def log_message(self, *args: Any) -> None:  # quiet: the command prints its own line
        """Print nothing per request: the command owns the terminal."""
        return

    def send(self, status: int, body: bytes, content_type: str) -> None:
        """Answer with ``body``; an error status closes the connection, since its request body may be
        unread."""
        if status >= 400:
            self.close_connection = True  # an unread body must not be parsed as a request
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, data: Any) -> None:
        """Answer with ``data`` as JSON (errors are ``{"error": ...}``)."""
        self.send(status, json.dumps(data).encode("utf-8"), "application/json")

    def file_for(self, url_path: str) -> Path | None:
        """The file a GET names, if it lies inside a served folder of the run."""
        parts = [part for part in unquote(url_path).split("/") if part]
        if not parts or parts[0] not in SERVED:
            return None
        root = (self.server.run_path / parts[0]).resolve()
        path = (self.server.run_path / "/".join(parts)).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path

    def host_allowed(self) -> bool:
        """False (answered 403) unless ``Host`` names this server: DNS rebinding's defence."""
        host = (self.headers.get("Host") or "").strip().lower()
        if host in self.server.hosts:
            return True
        self.send_json(403, {"error": f"this server answers to {self.server.origin} only"})
        return False

    def body_length(self) -> int | None:
        """The request's ``Content-Length`` if it is one plain number within the cap; else the
        error is answered and None returned."""
        values = {value.strip() for value in self.headers.get_all("Content-Length") or []}
        if not values:
            self.send_json(411, {"error": "a Content-Length is needed"})
            return None
        value = values.pop()
        if values or not LENGTH.fullmatch(value):
            self.send_json(400, {"error": "Content-Length must be one number of bytes"})
            return None
        if int(value) > MAX_BODY:
            self.send_json(413, {"error": f"too large (at most {MAX_BODY} bytes)"})
            return None
        return int(value)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        """Serve the gallery (``/`` redirects to it), the run's images or the decision log; anything
        else is 404, and a foreign ``Host`` 403."""
        if not self.host_allowed():
            return
        path = urlsplit(self.path).path
        if path in ("/", "/review", "/review/"):
            self.send_response(302)
            self.send_header("Location", "/review/index.html")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == "/api/decisions":
            decisions, _ = read_decisions(self.server.run_path / DECISIONS)
            self.send_json(200, [d.model_dump(mode="json", exclude_none=True) for d in decisions])
            return
        found = self.file_for(path)
        if found is None:
            self.send_json(404, {"error": "not found"})
            return
        kind = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        self.send(200, found.read_bytes(), kind)

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        """Validate one decision or a list and append them to the run's log under its lock (409 when busy)."""
        if not self.host_allowed():
            return
        if urlsplit(self.path).path != "/api/decisions":
            self.send_json(404, {"error": "not found"})
            return
        origin = self.headers.get("Origin")
        if origin not in (None, *(f"http://{host}" for host in self.server.hosts)):
            self.send_json(403, {"error": f"decisions are accepted from {self.server.origin} only"})
            return
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            self.send_json(415, {"error": "send decisions as application/json"})
            return
        length = self.body_length()
        if length is None:
            return
        data = self.rfile.read(length)
        if len(data) < length:
            self.send_json(400, {"error": "the body is shorter than its Content-Length"})
            return
        try:
            body = json.loads(data or b"null")
            items = body if isinstance(body, list) else [body]
            decisions = [ReviewDecision.model_validate(item) for item in items]
        except json.JSONDecodeError as error:
            self.send_json(400, {"error": f"not JSON: {error.msg}"})
            return
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "decision"
            self.send_json(400, {"error": f"{where}: {first['msg']}"})
            return
        except (ValueError, RecursionError):  # not UTF-8, or nested past the parser's depth
            self.send_json(400, {"error": "not JSON text"})
            return
        try:
            with self.server.lock, FolderLock(self.server.run_path, "review --serve"):
                note = append_decisions(self.server.run_path / DECISIONS, decisions)
        except FolderInUse as error:
            self.send_json(409, {"error": str(error)})
            return
        self.send_json(200, {"saved": len(decisions), **({"note": note} if note else {})})


def serve(run_path: Path, port: int = 0) -> ReviewServer:
    """A server for the run's gallery, bound and ready; call ``serve_forever`` to answer."""
    return ReviewServer(Path(run_path), port)
