"""``flowvq serve``: run the local inference server (registered through the ``flowvq.commands``
entry-point group, so `core.cli` never imports the server).

A configuration that must not start (a non-loopback bind without a token, an unknown or missing
device) raises a `FlowVQError` before anything listens, which `core.cli.main` prints as
``flowvq: error: ...`` with exit status 2.
"""

import argparse
import logging
import os
from dataclasses import replace
from pathlib import Path

from core.device import DEVICES
from server.config import LIMITS, ServerConfig, default_data_dir

__all__ = ["add_serve_parser", "run_serve", "config_from_args", "TOKEN_ENV"]

TOKEN_ENV = "FLOWVQ_TOKEN"
_DEFAULTS = ServerConfig()


def add_serve_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``serve`` to the ``flowvq`` subparsers; returns its parser."""
    parser = subparsers.add_parser("serve", help="run the local inference server (HTTP API for the Blender add-on)")
    parser.add_argument("--host", default=_DEFAULTS.host,
                        help="address to listen on (default %(default)s); any non-loopback address needs --token")
    parser.add_argument("--port", type=int, default=_DEFAULTS.port, help="(default %(default)s)")
    parser.add_argument("--device", choices=DEVICES, default=_DEFAULTS.device, help="(default %(default)s)")
    parser.add_argument("--weights", type=Path, metavar="DIR",
                        help="coefficient weights directory (default: the installed default weights)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", default=None,
                        help=f"where jobs are stored (default {default_data_dir()})")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                        help=f"Bearer token every request must send (default: ${TOKEN_ENV})")
    parser.add_argument("--max-job-age-hours", type=float, default=_DEFAULTS.max_job_age_s / 3600,
                        help="finished jobs older than this are deleted (default %(default)g)")
    parser.add_argument("--max-store-gb", type=float, default=_DEFAULTS.max_store_bytes / 1024**3,
                        help="the oldest finished jobs are deleted beyond this total size (default %(default)g)")
    parser.add_argument("--max-queued-jobs", type=int, default=LIMITS.max_queued_jobs,
                        help="jobs queued or running at once before new ones are refused with 429 "
                             "(default %(default)s)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.set_defaults(func=run_serve)
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The `ServerConfig` the command line asks for."""
    return ServerConfig(
        host=args.host, port=args.port, device=args.device, weights_dir=args.weights,
        data_dir=args.data_dir if args.data_dir is not None else default_data_dir(), token=args.token,
        max_job_age_s=args.max_job_age_hours * 3600, max_store_bytes=int(args.max_store_gb * 1024**3),
        limits=replace(LIMITS, max_queued_jobs=args.max_queued_jobs),
    )


def run_serve(args: argparse.Namespace) -> int:
    """Build the app (refusing a bad configuration) and serve it until interrupted; returns 0."""
    import uvicorn

    from server.app import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(config_from_args(args))
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0
