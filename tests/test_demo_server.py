"""`aigc-keras demo`'s server as an attack surface: it serves only regular files inside the trees it was
given, answers only requests addressed to this machine, survives broken exports and clients that hang up,
and serves a burst of concurrent requests. (The page itself is tested in headless Chromium in
test_browser.py.) The exports here are made by hand: the server never parses a .tflite."""

import http.client
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aigc_keras.demo import serve

METADATA = {"family": "gan", "files": {"saved_model": "saved_model", "tflite": "model.tflite"}, "batch": 1,
            "signatures": {"generate": {"inputs": {"z": {"dtype": "float32", "shape": [1, 8]}},
                                        "outputs": {"images": {"dtype": "uint8", "shape": [1, 16, 16, 1]}}}}}


def make_export(folder: Path, metadata=METADATA, blob: bytes = b"TFL3 a model") -> Path:
    folder.mkdir(parents=True)
    (folder / ".aigc-keras").write_text('{"kind": "export", "written_by": "aigc-keras"}')
    (folder / "metadata.json").write_text(json.dumps(metadata))
    (folder / "model.tflite").write_bytes(blob)
    return folder


@pytest.fixture
def web(tmp_path):
    """A page folder as the server checks it: index.html and the runtime's folder."""
    root = tmp_path / "web"
    (root / "node_modules" / "@litertjs" / "core" / "wasm").mkdir(parents=True)
    (root / "node_modules" / "@litertjs" / "core" / "dist").mkdir()
    (root / "node_modules" / "@litertjs" / "core" / "dist" / "index.js").write_text("export {};")
    (root / "index.html").write_text("<!doctype html><title>demo</title>")
    (root / "app.js").write_text("// the page")
    return root


@pytest.fixture
def server(tmp_path, web):
    exports = tmp_path / "exports"
    make_export(exports / "gan")
    started = serve(exports, "127.0.0.1", 0, web)
    started.root = exports
    started.url = f"http://127.0.0.1:{started.server_address[1]}/"
    yield started
    started.shutdown()
    started.server_close()


def get(server, path, host=None):
    """(status, body) of GET path, with the Host header given (default: the server's address)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    connection.putrequest("GET", path, skip_host=True)
    connection.putheader("Host", host or f"127.0.0.1:{server.server_address[1]}")
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


def test_a_listed_export_is_served(server):
    assert get(server, "/exports/gan/model.tflite") == (200, b"TFL3 a model")
    status, body = get(server, "/exports/index.json")
    index = json.loads(body)
    assert status == 200 and [e["name"] for e in index["exports"]] == ["gan"] and index["broken"] == []


def test_links_inside_the_exports_are_never_followed(server, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:the user's secret")
    linked = make_export(server.root / "linked")
    (linked / "model.tflite").unlink()
    (linked / "model.tflite").symlink_to(secret)
    meta_linked = make_export(server.root / "meta_linked")
    (meta_linked / "metadata.json").unlink()
    (meta_linked / "metadata.json").symlink_to(secret)
    (server.root / "folder_link").symlink_to(server.root / "gan")  # a linked export folder
    for path in ("/exports/linked/model.tflite", "/exports/meta_linked/metadata.json",
                 "/exports/folder_link/model.tflite"):
        status, body = get(server, path)
        assert status == 404 and b"secret" not in body, path
    _, body = get(server, "/exports/index.json")
    assert b"secret" not in body
    index = json.loads(body)
    assert [e["name"] for e in index["exports"]] == ["gan"]
    assert {e["name"] for e in index["broken"]} == {"linked", "meta_linked"}
    assert str(tmp_path) not in body.decode()  # the index does not show where the exports are on disk


def test_dot_named_folders_are_not_listed_or_served(server):
    make_export(server.root / ".hidden")
    _, body = get(server, "/exports/index.json")
    assert ".hidden" not in body.decode()
    assert get(server, "/exports/.hidden/model.tflite")[0] == 404


@pytest.mark.parametrize("host", ["evil.example.com", "evil.example.com:8765", "127.0.0.1.nip.io", ""])
def test_a_request_for_another_host_is_refused(server, host):
    status, body = get(server, "/exports/index.json", host=host or " ")
    assert status == 403 and b"gan" not in body


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "192.168.1.20:8765"])
def test_addresses_of_this_machine_are_answered(server, host):
    assert get(server, "/exports/index.json", host=host)[0] == 200


def test_a_broken_export_is_listed_with_its_reason_and_the_others_still_serve(server):
    make_export(server.root / "b", metadata=[])
    make_export(server.root / "c", metadata={"family": "diffusion", "files": {}})
    (make_export(server.root / "d") / "metadata.json").write_text("{not json")
    status, body = get(server, "/exports/index.json")
    index = json.loads(body)
    assert status == 200 and [e["name"] for e in index["exports"]] == ["gan"]
    broken = {e["name"]: e for e in index["broken"]}
    assert broken["b"]["why"] == "its metadata.json is not an export's metadata" and broken["b"]["family"] is None
    assert broken["c"]["family"] == "diffusion" and "model.tflite" in broken["c"]["why"]
    assert broken["d"]["why"] == "it has no readable metadata.json"
    assert get(server, "/exports/gan/model.tflite") == (200, b"TFL3 a model")
    assert get(server, "/exports/b/model.tflite")[0] == 404


def test_nul_bytes_and_odd_paths_get_a_404_not_a_dropped_connection(server):
    for path in ("/%00.js", "/exports/gan%00/model.tflite", "/%ff%fe.js", "/..%2f..%2fetc/passwd",
                 "/vendor/@litertjs/core/%2e%2e/%2e%2e/%2e%2e/index.html", "/exports/gan/model.tflite%00"):
        status, _ = get(server, path)
        assert status == 404, path


def test_clients_that_hang_up_early_and_a_burst_of_requests(server):
    port = server.server_address[1]
    for _ in range(20):  # connect, send half a request or a whole one, and leave
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /exports/gan/model.tflite HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: get(server, ["/exports/index.json", "/exports/gan/model.tflite",
                                                       "/app.js", "/"][i % 4]), range(200)))
    assert all(status == 200 for status, _ in results)
    assert {body for status, body in results[1::4]} == {b"TFL3 a model"}


@pytest.mark.slow
def test_the_demo_command_starts_beside_a_broken_export_and_prints_no_traceback(tmp_path, web):
    exports = tmp_path / "exports"
    make_export(exports / "gan")
    make_export(exports / "b", metadata=[])
    process = subprocess.Popen([sys.executable, "-m", "aigc_keras.cli", "demo", "--exports", str(exports),
                                "--web", str(web), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("serving the demo on http://127.0.0.1:") and "gan (gan)" in line, line
        url = line.split()[4].rstrip("/")
        for _ in range(10):  # hang up early, ask for %00, and a broken export appears while it serves
            with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as s:
                s.sendall(b"GET /exports/gan/model.tflite HTTP/1.1\r\n")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url + "/%00.js")
        make_export(exports / "late", metadata="a string")
        index = json.loads(urllib.request.urlopen(url + "/exports/index.json").read())
        assert [e["name"] for e in index["exports"]] == ["gan"]
        assert {e["name"] for e in index["broken"]} == {"b", "late"}
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert "Traceback" not in err and "Error" not in err, err
    assert "warning: " in err and "b cannot run in the page" in err
