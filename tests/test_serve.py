"""``featclf serve``: the HTTP service, tested over a real socket on 127.0.0.1."""

import concurrent.futures
import http.client
import json
import socket
import struct
import threading
import time
import uuid
import zlib

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the service needs the serve extra")
pytest.importorskip("uvicorn", reason="the service needs the serve extra")
pytest.importorskip("multipart", reason="the service needs the serve extra")
pytest.importorskip("PIL", reason="the service needs the serve extra")

from featclf.datasets import load_digits_images
from featclf.io import decode_image
from featclf.persistence import load_model, save_model
from featclf.pipelines import make_named_pipeline
from featclf.prediction import ImagePredictor
from featclf.serve import ServiceLimits, create_app

LIMITS = dict(max_body_bytes=256 * 1024, max_pixels=200_000, max_files=4, timeout=20,
              concurrency=2)

#: 64 colour features: a quick fit, still a real featclf pipeline
SMALL = {"color": {"bins": 4, "grid": (1, 1)}}


def _digit_pngs(n, offset=100):
    images, _, _ = load_digits_images()
    pngs = []
    for image in images[offset:offset + n]:
        ok, data = cv2.imencode(".png", cv2.resize(image, (32, 32)))
        pngs.append(data.tobytes())
    return pngs


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    images, labels, names = load_digits_images()
    rgb = np.repeat(np.stack([cv2.resize(i, (32, 32)) for i in images[:100]])[..., None],
                    3, axis=-1)
    pipeline = make_named_pipeline("color-logreg", feature_params=SMALL).fit(rgb, labels[:100])
    path = tmp_path_factory.mktemp("serve") / "digits.featclf"
    save_model(path, pipeline, class_names=names)
    return path


class Server:
    """uvicorn serving ``app`` in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", timeout_keep_alive=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def request(self, method, path, body=None, headers=None):
        """Return ``(status, parsed JSON body)``."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            conn.close()

    def post_files(self, files, path="/predict"):
        """POST ``[(field, filename, bytes), ...]`` as multipart/form-data."""
        body, content_type = multipart(files)
        return self.request("POST", path, body, {"Content-Type": content_type})

    def raw(self, data):
        """Send raw bytes, return the status line and body of the answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as conn:
            conn.sendall(data)
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)


def multipart(files):
    boundary = uuid.uuid4().hex
    parts = []
    for field, filename, data in files:
        parts.append(
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            .encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), \
        f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="module")
def server(model_file):
    with Server(create_app(model_file, limits=ServiceLimits(**LIMITS))) as running:
        yield running


def _expected_labels(model_file, pngs):
    pipeline, metadata = load_model(model_file)
    labels = pipeline.predict([decode_image(p) for p in pngs])
    return [metadata["class_names"][int(label)] for label in labels]


def _assert_error(status, body, expected_status, expected_type):
    assert status == expected_status, body
    assert body["error"]["status"] == expected_status
    assert body["error"]["type"] == expected_type
    assert body["error"]["message"]


def test_health_and_metadata(server, model_file):
    status, body = server.request("GET", "/health")
    assert status == 200 and body["status"] == "ok"
    status, body = server.request("GET", "/metadata")
    assert status == 200
    assert body["class_names"] == [str(d) for d in range(10)]
    assert body["limits"]["max_pixels"] == LIMITS["max_pixels"]


def test_predict_several_files_in_upload_order(server, model_file):
    pngs = _digit_pngs(3)
    status, body = server.post_files([("files", f"d{i}.png", p) for i, p in enumerate(pngs)])
    assert status == 200, body
    assert [r["filename"] for r in body] == ["d0.png", "d1.png", "d2.png"]
    assert [r["label"] for r in body] == _expected_labels(model_file, pngs)
    assert all(sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-5) for r in body)


def test_field_file_raw_body_and_top_k(server, model_file):
    png = _digit_pngs(1)[0]
    status, body = server.post_files([("file", "one.png", png)], "/predict?top_k=2")
    assert status == 200 and len(body[0]["probabilities"]) == 2
    status, raw = server.request("POST", "/predict", png, {"Content-Type": "image/png"})
    assert status == 200 and raw[0]["label"] == body[0]["label"]


@pytest.mark.parametrize("files, message", [
    ([("image", "a.png", b"x")], "fields received: ['image']"),
    ([], "fields received: []"),
])
def test_wrong_field_names_are_422(server, files, message):
    status, body = server.post_files(files)
    _assert_error(status, body, 422, "missing_files")
    assert message in body["error"]["message"]


def test_non_images_are_415(server):
    status, body = server.post_files([("files", "notes.txt", b"hello, not an image")])
    _assert_error(status, body, 415, "unsupported_media_type")
    assert "notes.txt" in body["error"]["message"]
    png = _digit_pngs(1)[0]
    status, body = server.post_files([("files", "cut.png", png[: len(png) // 2])])
    _assert_error(status, body, 415, "unsupported_media_type")
    status, body = server.request("POST", "/predict", b"a=b",
                                  {"Content-Type": "application/x-www-form-urlencoded"})
    _assert_error(status, body, 415, "unsupported_media_type")


def test_malformed_requests_are_4xx(server):
    status, body = server.request("POST", "/predict", b"garbage",
                                  {"Content-Type": "multipart/form-data; boundary=xyz"})
    _assert_error(status, body, 400, "bad_request")
    status, body = server.request("POST", "/predict?top_k=zero", b"",
                                  {"Content-Type": "image/png"})
    _assert_error(status, body, 422, "invalid_parameters")
    status, body = server.request("GET", "/nowhere")
    _assert_error(status, body, 404, "not_found")
    status, body = server.post_files([("files", f"{i}.png", p) for i, p in
                                      enumerate(_digit_pngs(5))])
    _assert_error(status, body, 413, "too_many_files")


def test_oversized_body_declared_in_content_length_is_413_before_reading(server):
    status, body = server.raw(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        b"Content-Length: 50000000\r\nConnection: close\r\n\r\n")
    _assert_error(status, body, 413, "body_too_large")
    assert "50000000" in body["error"]["message"]


def test_oversized_chunked_body_is_413_while_streaming(server):
    file_part, content_type = multipart([("files", "big.bin",
                                          b"\0" * (LIMITS["max_body_bytes"] + 5000))])
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(file_part[i:i + 32768]), file_part[i:i + 32768])
                      for i in range(0, len(file_part), 32768))
    status, body = server.raw(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: " + content_type.encode()
        + b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\n\r\n")
    _assert_error(status, body, 413, "body_too_large")


def _png_declaring(width, height):
    """A small, valid-looking gray PNG whose header declares width x height."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = zlib.compress(b"\0" * (width + 1) * 4, 9)  # 4 rows of zeros
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                              8, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def test_decompression_bomb_is_refused_from_its_header(server):
    bomb = _png_declaring(30000, 30000)
    assert len(bomb) < 1000
    start = time.monotonic()
    status, body = server.post_files([("files", "bomb.png", bomb)])
    _assert_error(status, body, 413, "too_many_pixels")
    assert "900000000 pixels" in body["error"]["message"]
    assert time.monotonic() - start < 5  # nothing was decoded
    # over the service's limit but a genuine image: refused the same way
    ok, big = cv2.imencode(".png", np.zeros((500, 500), np.uint8))
    status, body = server.post_files([("files", "big.png", big.tobytes())])
    _assert_error(status, body, 413, "too_many_pixels")
    assert "500x500" in body["error"]["message"]
    status, body = server.post_files([("files", "bomb.png", _png_declaring(1000, 1000))])
    _assert_error(status, body, 413, "too_many_pixels")
    assert "1000x1000" in body["error"]["message"]


def test_concurrent_requests_get_the_same_answers_as_in_process(server, model_file):
    pngs = _digit_pngs(24)
    expected = _expected_labels(model_file, pngs)

    def one(index):
        status, body = server.post_files([("files", f"{index}.png", pngs[index])])
        assert status == 200, body
        return body[0]["label"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(len(pngs)))) == expected


class _SlowPredictor(ImagePredictor):
    def predict(self, images, *, top_k=None):
        time.sleep(1.0)
        return super().predict(images, top_k=top_k)


def test_timeouts_give_504_busy_workers_503_stalled_uploads_408(model_file):
    pipeline, metadata = load_model(model_file)
    limits = ServiceLimits(**{**LIMITS, "timeout": 0.3, "concurrency": 1})
    with Server(create_app(_SlowPredictor(pipeline, metadata), limits=limits)) as slow:
        png = _digit_pngs(1)[0]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            first = pool.submit(slow.post_files, [("files", "a.png", png)])
            time.sleep(0.1)
            second = pool.submit(slow.post_files, [("files", "b.png", png)])
            _assert_error(*first.result(), 504, "timeout")
            _assert_error(*second.result(), 503, "busy")
        stalled = slow.raw(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png"
                           b"\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
                           + png[:100])  # the client stops sending
        _assert_error(*stalled, 408, "request_timeout")
        time.sleep(1.2)  # the abandoned prediction finishes; the service still answers
        status, body = slow.request("GET", "/health")
        assert status == 200


def test_featclf_serve_command_serves_until_stopped(model_file):
    import os
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.Popen(
        [sys.executable, "-m", "featclf", "serve", str(model_file), "--port", str(port),
         "--log-level", "warning"],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/health")
                assert json.loads(conn.getresponse().read())["status"] == "ok"
                break
            except OSError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "featclf serve did not start"
                time.sleep(0.2)
        body, content_type = multipart([("files", "a.png", _digit_pngs(1)[0])])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/predict", body, {"Content-Type": content_type})
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())[0]["label"]
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert process.returncode in (0, -15)
