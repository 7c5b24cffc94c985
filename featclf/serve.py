"""A small HTTP service for a saved featclf model (FastAPI + uvicorn).

Install the ``serve`` extra (``pip install "featclf[serve]"``) and run
``featclf serve MODEL``. Endpoints:

``POST /predict``
    ``multipart/form-data`` with one or several image files in the field
    ``files`` (``file`` is accepted too), or one raw image body with an
    ``image/*`` or ``application/octet-stream`` content type. Answers a JSON
    list, one record per image, in upload order:
    ``{"filename": ..., "label": ..., "probabilities" or "scores": {...}}``
    (see :mod:`featclf.prediction`). Query parameter ``top_k`` keeps only
    the best classes.
``GET /health``
    ``{"status": "ok", ...}`` once the model is loaded.
``GET /metadata``
    The model file's metadata plus the service's limits.

Bad requests never get a 500. Every error is JSON
``{"error": {"status": int, "type": str, "message": str}}``:

* 400 ``bad_request``: malformed multipart body or headers;
* 413 ``body_too_large``: the body exceeds ``max_body_bytes`` (checked from
  ``Content-Length`` before reading, and while streaming for chunked
  bodies); ``too_many_pixels``: an image's header declares more than
  ``max_pixels`` pixels (checked *before* decoding, so decompression bombs
  never allocate); ``too_many_files``;
* 415 ``unsupported_media_type``: a file (or raw body) that is not a
  decodable image, or a body that is neither multipart nor an image;
* 422 ``missing_files``: no file in the ``files``/``file`` fields (the
  message lists the fields received); ``unprocessable_image``: a decodable
  image the model cannot process; invalid query parameters;
* 408 ``request_timeout``: the body was not received within ``timeout``
  seconds (a slow or stalled client);
* 503 ``busy``: the request waited ``timeout`` seconds for a free worker;
* 504 ``timeout``: decoding and prediction took longer than ``timeout``
  (the worker thread finishes in the background; its answer is dropped).

Concurrency: the model is loaded once, before the server accepts requests,
and shared read-only by a pool of ``concurrency`` worker threads (scikit-
learn's and featclf's ``predict``/``transform`` do not mutate fitted
state, and every step's ``n_jobs`` is set to 1). OpenCV and BLAS are
limited to one thread each so that concurrent requests do not
oversubscribe the CPU. Pillow reads image headers (sizes); OpenCV decodes,
with :func:`featclf.io.decode_image`, exactly as for files.
"""

import asyncio
import concurrent.futures
import io
import json
import logging
import os
import time
import warnings

__all__ = ["create_app", "run_server", "ServiceLimits"]

logger = logging.getLogger("featclf.serve")

_MIB = 1024 * 1024


class ServiceLimits:
    """The limits a service applies to each request.

    Parameters
    ----------
    max_body_bytes : int, default=20 MiB
        Largest request body.
    max_pixels : int, default=25_000_000
        Largest decoded image (width x height), per image.
    max_files : int, default=32
        Most images in one request.
    timeout : float, default=30.0
        Seconds allowed for receiving the body, and again for waiting for a
        worker plus decoding and predicting.
    concurrency : int, optional
        Worker threads; default: the number of CPUs.
    """

    def __init__(self, *, max_body_bytes=20 * _MIB, max_pixels=25_000_000,
                 max_files=32, timeout=30.0, concurrency=None):
        self.max_body_bytes = int(max_body_bytes)
        self.max_pixels = int(max_pixels)
        self.max_files = int(max_files)
        self.timeout = float(timeout)
        self.concurrency = int(concurrency or os.cpu_count() or 1)
        for name in ("max_body_bytes", "max_pixels", "max_files", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout}")

    def as_dict(self):
        """Return the limits as a JSON-friendly dict."""
        return dict(vars(self))


class RequestError(Exception):
    """A client error, answered with ``status`` and a JSON body."""

    def __init__(self, status, kind, message):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


def _error_body(status, kind, message):
    return {"error": {"status": status, "type": kind, "message": message}}


async def _send_json(send, status, body, headers=()):
    data = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                    (b"connection", b"close"), *headers],
    })
    await send({"type": "http.response.body", "body": data})


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """ASGI middleware answering 413 to bodies over ``max_bytes``.

    ``Content-Length`` is checked before the application runs; the bytes
    actually received are counted too (chunked bodies, lying headers). When
    the count passes the limit, reading stops, whatever the application
    was about to answer is dropped and a 413 is sent instead.
    """

    def __init__(self, app, max_bytes):
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size_text):
        return _error_body(
            413, "body_too_large",
            f"request body {size_text} exceeds the limit of {self.max_bytes} bytes",
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                declared = int(declared)
            except ValueError:
                await _send_json(send, 400, _error_body(
                    400, "bad_request", "invalid Content-Length header"))
                return
            if declared > self.max_bytes:
                await _send_json(send, 413, self._too_large(f"of {declared} bytes"))
                return
        received = 0
        exceeded = False
        started = False

        async def limited_receive():
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message):
            nonlocal started
            if exceeded:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _send_json(send, 413, self._too_large(f"of more than {received - 1} bytes"))


def image_size(data, name, max_pixels):
    """Read an encoded image's ``(width, height)`` from its header only.

    Parameters
    ----------
    data : bytes
        The encoded image.
    name : str
        How messages name it.
    max_pixels : int
        The service's limit, quoted in messages.

    Returns
    -------
    size : tuple of (int, int)
        Width and height declared by the header (nothing is decoded).

    Raises
    ------
    RequestError
        415 if no image format is recognised; 413 if Pillow itself refuses
        the size as a decompression bomb.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except Image.DecompressionBombError as exc:
        raise RequestError(413, "too_many_pixels",
                           f"{name}: {exc} The limit is {max_pixels} pixels.") from None
    except Exception as exc:  # Pillow raises several types on garbage
        raise RequestError(
            415, "unsupported_media_type",
            f"{name} is not an image in a supported format ({type(exc).__name__})",
        ) from None


class _Service:
    """Holds the model, the worker pool and the limits of one app."""

    def __init__(self, predictor, limits, model_path):
        self.predictor = predictor
        self.limits = limits
        self.model_path = model_path
        self.started = time.time()
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=limits.concurrency, thread_name_prefix="featclf-predict")

    def check_and_decode(self, uploads):
        """Validate and decode every upload (worker thread)."""
        from .io import decode_image

        images = []
        for filename, data in uploads:
            name = f"file {filename!r}"
            if not data:
                raise RequestError(415, "unsupported_media_type", f"{name} is empty")
            width, height = image_size(data, name, self.limits.max_pixels)
            if width * height > self.limits.max_pixels:
                raise RequestError(
                    413, "too_many_pixels",
                    f"{name} declares {width}x{height} = {width * height} pixels, "
                    f"more than the limit of {self.limits.max_pixels}",
                )
            try:
                images.append(decode_image(data, name))
            except ValueError as exc:
                raise RequestError(415, "unsupported_media_type", str(exc)) from None
        return images

    def predict(self, uploads, top_k, state):
        """Decode and predict (runs in a worker thread)."""
        state["started"] = True
        images = self.check_and_decode(uploads)
        records = self.predictor.predict(images, top_k=top_k)
        for (filename, _), record in zip(uploads, records):
            if "error" in record:
                raise RequestError(422, "unprocessable_image",
                                   f"file {filename!r}: {record['error']}")
        return [{"filename": filename, **record}
                for (filename, _), record in zip(uploads, records)]

    async def run(self, uploads, top_k):
        state = {"started": False}
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.pool, self.predict, uploads, top_k, state)
        try:
            return await asyncio.wait_for(future, self.limits.timeout)
        except (asyncio.TimeoutError, TimeoutError):
            if not state["started"]:
                raise RequestError(
                    503, "busy",
                    f"no worker became free within {self.limits.timeout:g} s; retry later",
                ) from None
            raise RequestError(
                504, "timeout",
                f"decoding and prediction took longer than {self.limits.timeout:g} s",
            ) from None


async def _read_uploads(request, limits):
    """Return ``[(filename, bytes), ...]`` from the request body."""
    from starlette.datastructures import UploadFile

    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media.startswith("image/") or media == "application/octet-stream":
        return [("body", await request.body())]
    if media != "multipart/form-data":
        raise RequestError(
            415, "unsupported_media_type",
            f"Content-Type {media or 'missing'!r}: send multipart/form-data with "
            "image files in the field 'files', or one raw image body",
        )
    if "boundary=" not in content_type:
        raise RequestError(400, "bad_request", "multipart body without a boundary")
    try:
        form = await request.form(max_files=limits.max_files, max_fields=limits.max_files)
    except _BodyTooLarge:
        raise
    except Exception as exc:
        detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
        if "many files" in detail.lower():
            raise RequestError(413, "too_many_files",
                               f"{detail} (limit {limits.max_files})") from None
        raise RequestError(400, "bad_request", f"malformed multipart body: {detail}") from None
    uploads = []
    try:
        for field in ("files", "file"):
            for value in form.getlist(field):
                if not isinstance(value, UploadFile):
                    raise RequestError(
                        422, "missing_files",
                        f"field {field!r} must hold file uploads, got a text value",
                    )
                uploads.append((value.filename or field, await value.read()))
    finally:
        await form.close()
    if not uploads:
        received = sorted(set(form.keys()))
        raise RequestError(
            422, "missing_files",
            "no image file in the multipart fields 'files' (or 'file'); "
            f"fields received: {received}",
        )
    return uploads


def create_app(model, *, limits=None, trusted=None):
    """Build the FastAPI application serving ``model``.

    Parameters
    ----------
    model : str, os.PathLike or ImagePredictor
        A model file (loaded now, once) or a ready predictor.
    limits : ServiceLimits, optional
        Request limits; default :class:`ServiceLimits()`.
    trusted : sequence of str, optional
        Extra types to accept in the model file (see
        :func:`featclf.persistence.load_model`).

    Returns
    -------
    app : ASGI application
        The FastAPI app wrapped in :class:`BodySizeLimit`.
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    from .prediction import ImagePredictor

    limits = limits or ServiceLimits()
    if isinstance(model, ImagePredictor):
        predictor, model_path = model, None
    else:
        model_path = os.fspath(model)
        predictor = ImagePredictor.from_file(model_path, trusted=trusted, n_jobs=1)
    service = _Service(predictor, limits, model_path)

    app = FastAPI(title="featclf model service", version="1",
                  docs_url=None, redoc_url=None)
    app.state.service = service

    def error_response(status, kind, message):
        return JSONResponse(_error_body(status, kind, message), status_code=status)

    @app.exception_handler(RequestError)
    async def request_error(request, exc):
        return error_response(exc.status, exc.kind, exc.message)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code,
                                                                  "bad_request")
        return error_response(exc.status_code, kind, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}"
            for err in exc.errors())
        return error_response(422, "invalid_parameters", problems)

    @app.exception_handler(_BodyTooLarge)
    async def body_too_large(request, exc):
        # BodySizeLimit drops this response and sends its own 413.
        return error_response(413, "body_too_large", "request body too large")

    @app.exception_handler(Exception)
    async def internal_error(request, exc):
        logger.exception("unexpected error")
        return error_response(500, "internal_error",
                              "internal server error (a bug; see the server log)")

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": os.path.basename(model_path or "") or None,
                "uptime_s": round(time.time() - service.started, 1)}

    @app.get("/metadata")
    async def metadata():
        return {**predictor.metadata, "limits": limits.as_dict()}

    @app.post("/predict")
    async def predict(request: Request, top_k: int | None = None):
        if top_k is not None and top_k < 1:
            raise RequestError(422, "invalid_parameters", "top_k must be at least 1")
        try:
            uploads = await asyncio.wait_for(_read_uploads(request, limits),
                                             limits.timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise RequestError(
                408, "request_timeout",
                f"the request body was not received within {limits.timeout:g} s",
            ) from None
        if len(uploads) > limits.max_files:
            raise RequestError(413, "too_many_files",
                               f"{len(uploads)} files; the limit is {limits.max_files}")
        return await service.run(uploads, top_k)

    return BodySizeLimit(app, limits.max_body_bytes)


def limit_native_threads():
    """Give OpenCV and BLAS one thread each (requests are the parallelism)."""
    import cv2
    from threadpoolctl import threadpool_limits

    cv2.setNumThreads(1)
    threadpool_limits(1)


def run_server(model_path, *, host="127.0.0.1", port=8000, limits=None,
               trusted=None, max_connections=64, log_level="info"):
    """Load ``model_path`` and serve it with uvicorn until interrupted.

    Parameters
    ----------
    model_path : str or os.PathLike
        A model file written by :func:`featclf.persistence.save_model`.
    host, port : str, int
        Where to listen; the default listens on the local machine only.
    limits : ServiceLimits, optional
        Request limits.
    trusted : sequence of str, optional
        Extra types to accept in the model file.
    max_connections : int, default=64
        Concurrent connections before uvicorn answers 503.
    log_level : str, default="info"
        uvicorn's log level.
    """
    import uvicorn

    limit_native_threads()
    app = create_app(model_path, limits=limits, trusted=trusted)
    uvicorn.run(app, host=host, port=port, log_level=log_level,
                limit_concurrency=max_connections, timeout_keep_alive=5)
