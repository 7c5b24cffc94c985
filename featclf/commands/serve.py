"""``featclf serve MODEL``: an HTTP prediction service (the ``serve`` extra).

See :mod:`featclf.serve` for the endpoints, limits and error responses.
"""

import sys


def register(subparsers):
    """Add the ``serve`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "serve",
        help="serve a saved model over HTTP (needs featclf[serve])",
        description=(
            "Serve a model file over HTTP with FastAPI and uvicorn: POST "
            "/predict (multipart field 'files'), GET /health, GET /metadata. "
            "Requests over the limits get JSON errors (400, 408, 413, 415, 422, 503, 504)."
        ),
    )
    parser.add_argument("model", help="model file written by featclf (save_model)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument("--max-body-mb", type=float, default=20.0, metavar="MB",
                        help="largest request body in MiB (default: 20)")
    parser.add_argument("--max-pixels", type=int, default=25_000_000, metavar="N",
                        help="largest image, width x height (default: 25000000)")
    parser.add_argument("--max-files", type=int, default=32, metavar="N",
                        help="most images per request (default: 32)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="limit on receiving the body (408), and on waiting + decoding + "
                             "predicting (503 / 504) (default: 30)")
    parser.add_argument("--concurrency", type=int, default=None, metavar="N",
                        help="worker threads for prediction (default: CPU count)")
    parser.add_argument("--max-connections", type=int, default=64, metavar="N",
                        help="concurrent connections before 503 (default: 64)")
    parser.add_argument("--trust", action="append", default=[], metavar="TYPE",
                        help="accept this extra type in the model file (repeatable)")
    parser.add_argument("--log-level", default="info",
                        choices=("critical", "error", "warning", "info", "debug"))
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Run ``featclf serve``; return the exit status."""
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401
        import PIL  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        print(f"featclf serve needs the serve extra ({exc.name} is missing): "
              'pip install "featclf[serve]"', file=sys.stderr)
        return 1
    from ..persistence import ModelFileError
    from ..serve import ServiceLimits, run_server

    try:
        limits = ServiceLimits(
            max_body_bytes=int(args.max_body_mb * 1024 * 1024),
            max_pixels=args.max_pixels, max_files=args.max_files,
            timeout=args.timeout, concurrency=args.concurrency)
        run_server(args.model, host=args.host, port=args.port, limits=limits,
                   trusted=args.trust, max_connections=args.max_connections,
                   log_level=args.log_level)
    except (OSError, ValueError, ModelFileError) as exc:
        print(f"featclf serve: {exc}", file=sys.stderr)
        return 1
    return 0
