"""`aigc-keras demo`: a local web server for the demo page (`web/`), the LiteRT.js runtime it runs the
exports with (`web/node_modules/@litertjs`), and the exports themselves (their metadata.json and
model.tflite only). Python's standard library only; it binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

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
from .folders import marked_kind

WEB = Path(__file__).resolve().parents[1] / "web"  # the page, beside the package in a checkout
RUNTIME = "node_modules/@litertjs"
INSTALL = "npm ci --prefix web"
TYPES = {".js": "text/javascript", ".wasm": "application/wasm", ".tflite": "application/octet-stream",
         ".json": "application/json", ".html": "text/html; charset=utf-8", ".map": "application/json"}


def page_folder(web: str | Path | None = None) -> Path:
    """The demo page's folder, checked: the page and its installed runtime are there."""
    web = Path(web) if web else WEB
    if not (web / "index.html").is_file():
        raise AigcError(f"the demo page is not in {web}: run `aigc-keras demo` from a checkout of aigc-keras "
                        "(or pass --web DIR)")
    if not (web / RUNTIME / "core" / "wasm").is_dir():
        raise AigcError(f"LiteRT.js is not installed in {web}: run `{INSTALL}` (Node.js 18 or newer), then again")
    return web


def exports_index(folder: Path) -> list[dict]:
    """[{"name", "metadata"}] of the export folders directly inside `folder` that have a .tflite."""
    found = []
    for child in sorted(folder.iterdir()) if folder.is_dir() else []:
        meta_file = child / "metadata.json"
        if child.is_dir() and marked_kind(child) == "export" and meta_file.is_file():
            try:
                metadata = json.loads(meta_file.read_text())
            except ValueError:
                continue
            if "tflite" in metadata.get("files", {}):
                found.append({"name": child.name, "metadata": metadata})
    return found


class DemoHandler(SimpleHTTPRequestHandler):
    """GET only: the page's files, the runtime's files, and each export's metadata.json and model.tflite.
    Every other path, and any path that leaves those folders, is a 404."""

    def __init__(self, *args, web: Path, exports: Path, **kwargs):
        self.web, self.exports = web, exports
        super().__init__(*args, directory=str(web), **kwargs)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass  # quiet: the terminal shows the URL, not every request

    def do_GET(self):  # noqa: N802 (the base class's name)
        path = unquote(urlsplit(self.path).path)
        if path == "/exports/index.json":
            body = json.dumps({"folder": str(self.exports), "exports": exports_index(self.exports)}).encode()
            return self._send(body, "application/json")
        target = self._resolve(path)
        if target is None or not target.is_file():
            return self.send_error(HTTPStatus.NOT_FOUND, "not served here")
        self._send(target.read_bytes(), TYPES.get(target.suffix, mimetypes.guess_type(target.name)[0]
                                                  or "application/octet-stream"))

    def do_HEAD(self):  # noqa: N802
        self.send_error(HTTPStatus.METHOD_NOT_ALLOWED)

    def _resolve(self, path: str) -> Path | None:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return self.web / "index.html"
        if parts[0] == "exports" and len(parts) == 3 and parts[2] in ("metadata.json", "model.tflite"):
            names = {e["name"] for e in exports_index(self.exports)}
            return self.exports / parts[1] / parts[2] if parts[1] in names else None
        if parts[0] == "vendor":
            root, rest = self.web / RUNTIME, parts[2:] if parts[1:2] == ["@litertjs"] else None
        elif len(parts) == 1 and parts[0].endswith((".js", ".html")):
            root, rest = self.web, parts
        else:
            return None
        if rest is None or any(p in ("..", ".") or p.startswith(".") for p in rest):
            return None
        target = (root / Path(*rest)).resolve()
        return target if root.resolve() in target.parents else None

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


def serve(exports: str | Path, host: str = "127.0.0.1", port: int = 8765, web: str | Path | None = None):
    """A started `ThreadingHTTPServer` for the demo (serving on a thread); `server.server_address` says
    where. Port 0 takes a free one."""
    web, exports = page_folder(web), Path(exports).resolve()
    handler = partial(DemoHandler, web=web, exports=exports)
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        raise AigcError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None
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
