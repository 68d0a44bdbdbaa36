"""`aigc-keras demo`: a local web server for the demo page (`web/`), the LiteRT.js runtime it runs the
exports with (`web/node_modules/@litertjs`), and the exports themselves (their metadata.json and
model.tflite only). Python's standard library only; it binds to 127.0.0.1 unless told otherwise.

What it serves is only regular files inside the trees it was given: a symbolic link anywhere under the
exports folder is never followed, dot-named folders are not listed, and a request whose `Host` is
not an IP address or `localhost` is refused (so a page on another site cannot read it through DNS
rebinding). One broken export is listed with the reason, for the page to show in one panel; the
others still serve.
"""

from __future__ import annotations

import ipaddress
import json
import math
import mimetypes
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np

from .errors import AigcError
from .export import metadata_problem
from .fileio import entry_kind
from .folders import FOLDER, METADATA_FILE, TFLITE_FILE, marked_kind

WEB = Path(__file__).resolve().parents[1] / "web"  # the page, beside the package in a checkout
RUNTIME = "node_modules/@litertjs"
INSTALL = "npm ci --prefix web"
SERVED = (METADATA_FILE, TFLITE_FILE)  # the files of an export the page reads
TYPES = {".js": "text/javascript", ".wasm": "application/wasm", ".tflite": "application/octet-stream",
         ".json": "application/json", ".html": "text/html; charset=utf-8", ".map": "application/json"}
DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


def page_folder(web: str | Path | None = None) -> Path:
    """The demo page's folder, checked: the page and its installed runtime are there."""
    web = Path(web) if web else WEB
    if not (web / "index.html").is_file():
        raise AigcError(f"the demo page is not in {web}: run `aigc-keras demo` from a checkout of aigc-keras "
                        "(or pass --web DIR)")
    if not (web / RUNTIME / "core" / "wasm").is_dir():
        raise AigcError(f"LiteRT.js is not installed in {web}: run `{INSTALL}` (Node.js 18 or newer), then again")
    return web


def _export_folders(folder: Path) -> list[Path]:
    """Real (not linked), not dot-named, marked export folders directly inside `folder`."""
    if entry_kind(folder) != FOLDER and not folder.is_dir():
        return []
    return [child for child in sorted(folder.iterdir()) if not child.name.startswith(".")
            and entry_kind(child) == FOLDER and marked_kind(child) == "export"]


def exports_index(folder: Path) -> tuple[list[dict], list[dict]]:
    """([{"name", "metadata"}] of the export folders directly inside `folder` that the page can run,
    [{"name", "family", "why"}] of those it cannot (family None when even that is unreadable))."""
    found, broken = [], []
    for child in _export_folders(folder):
        try:
            metadata = json.loads((child / METADATA_FILE).read_text()) \
                if entry_kind(child / METADATA_FILE) == "file" else None
        except (OSError, ValueError):
            metadata = None
        problem = metadata_problem(metadata) if metadata is not None else "it has no readable metadata.json"
        if problem is None and entry_kind(child / TFLITE_FILE) != "file":
            problem = "its model.tflite is missing (or not a regular file): export it again"
        if problem is None:
            found.append({"name": child.name, "metadata": metadata})
        else:
            family = metadata.get("family") if isinstance(metadata, dict) else None
            broken.append({"name": child.name, "family": family if isinstance(family, str) else None,
                           "why": problem})
    return found, broken


def host_allowed(host: str | None) -> bool:
    """Whether a request's Host header names this machine by address (or as localhost)."""
    if not host:
        return False
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class DemoHandler(SimpleHTTPRequestHandler):
    """GET only: the page's files, the runtime's files, and each export's metadata.json and model.tflite.
    Every other path, any path that leaves those folders, a link and anything but a regular file are a
    404; a Host that is not this machine's address is a 403."""

    def __init__(self, *args, web: Path, exports: Path, label: str, **kwargs):
        self.web, self.exports, self.label = web, exports, label
        super().__init__(*args, directory=str(web), **kwargs)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass  # quiet: the terminal shows the URL, not every request

    def do_GET(self):  # noqa: N802 (the base class's name)
        try:
            if not host_allowed(self.headers.get("Host")):
                return self.send_error(HTTPStatus.FORBIDDEN, "this server answers requests for 127.0.0.1 only")
            path = unquote(urlsplit(self.path).path, errors="strict")
            if "\x00" in path or "\\" in path:
                return self.send_error(HTTPStatus.NOT_FOUND, "not served here")
            if path == "/exports/index.json":
                found, broken = exports_index(self.exports)
                body = json.dumps({"folder": self.label, "exports": found, "broken": broken}).encode()
                return self._send(body, "application/json")
            target = self._resolve(path)
            if target is None:
                return self.send_error(HTTPStatus.NOT_FOUND, "not served here")
            self._send(target.read_bytes(), TYPES.get(target.suffix, mimetypes.guess_type(target.name)[0]
                                                      or "application/octet-stream"))
        except DISCONNECTS:
            pass  # the browser went away: nothing to answer
        except (OSError, ValueError):
            self.send_error(HTTPStatus.NOT_FOUND, "not served here")

    def do_HEAD(self):  # noqa: N802
        self.send_error(HTTPStatus.METHOD_NOT_ALLOWED)

    def _resolve(self, path: str) -> Path | None:
        """The regular file that `path` names, or None."""
        parts = [p for p in path.split("/") if p]
        if not parts:
            return self.web / "index.html"
        if parts[0] == "exports":
            if len(parts) != 3 or parts[2] not in SERVED:
                return None
            found, _ = exports_index(self.exports)
            if parts[1] not in {e["name"] for e in found}:
                return None
            return self.exports / parts[1] / parts[2]  # both checked: a real folder, a regular file
        if parts[0] == "vendor":
            root, rest = self.web / RUNTIME, parts[2:] if parts[1:2] == ["@litertjs"] else None
        elif len(parts) == 1 and parts[0].endswith((".js", ".html")):
            root, rest = self.web, parts
        else:
            return None
        if rest is None or any(p in ("..", ".") or p.startswith(".") for p in rest):
            return None
        target = (root / Path(*rest)).resolve()
        return target if root.resolve() in target.parents and entry_kind(target) == "file" else None

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class DemoServer(ThreadingHTTPServer):
    """A threading server that says nothing when a client hangs up early."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        import sys

        if not isinstance(sys.exc_info()[1], DISCONNECTS):
            super().handle_error(request, client_address)


def serve(exports: str | Path, host: str = "127.0.0.1", port: int = 8765, web: str | Path | None = None):
    """A started `DemoServer` for the demo (serving on a thread); `server.server_address` says where.
    Port 0 takes a free one."""
    label = str(exports) if not Path(exports).is_absolute() else Path(exports).name  # no absolute path in the page
    web, exports = page_folder(web), Path(exports).resolve()
    handler = partial(DemoHandler, web=web, exports=exports, label=label)
    try:
        server = DemoServer((host, port), handler)
    except OSError as e:
        raise AigcError(f"cannot serve on {host}:{port}: {e.strerror or 'the system refused it'}") from None
    server.exports_folder = exports
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class PageRandom:
    """The page's seeded generator (`web/rng.js`), in Python: the same uniforms and normals for the
    same seed (Mulberry32, then Box-Muller), so a Python run can take the noise the page drew."""

    def __init__(self, seed: int):
        self.state = seed & 0xFFFFFFFF

    def next_uint32(self) -> int:
        self.state = (self.state + 0x6D2B79F5) & 0xFFFFFFFF
        t = self.state
        t = ((t ^ (t >> 15)) * (t | 1)) & 0xFFFFFFFF
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & 0xFFFFFFFF)) & 0xFFFFFFFF
        return (t ^ (t >> 14)) & 0xFFFFFFFF

    def uniform(self, count: int) -> np.ndarray:
        return np.array([self.next_uint32() / 4294967296 for _ in range(count)], np.float32)

    def normal(self, count: int) -> np.ndarray:
        out = np.empty(count, np.float32)
        for i in range(count):
            u1 = 1 - self.next_uint32() / 4294967296
            u2 = self.next_uint32() / 4294967296
            out[i] = math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
        return out
