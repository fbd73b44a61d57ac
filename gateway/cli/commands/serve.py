"""``doku-gateway serve``: run the gateway (demo mode or a configuration file)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ...config import Settings, load_settings
from ...log import configure_logging
from .._common import Subcommands, log_secrets


def register(commands: Subcommands) -> None:
    serve = commands.add_parser("serve", help="run the gateway")
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--demo",
        action="store_true",
        help="generated keys in --demo-dir, demo resolver, in-memory cache",
    )
    source.add_argument("--config", metavar="FILE", help="TOML configuration file")
    serve.add_argument("--demo-dir", default=".demo", help="where demo keys live (default .demo)")
    serve.add_argument("--host", help="override http.host")
    serve.add_argument("--port", type=int, help="override http.port")
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ...metrics import Metrics
    from ...web.app import create_app
    from ...web.protocol import server_options
    from .._serve import DrainingServer

    env = dict(os.environ)
    if args.demo:
        from ...resolvers.demo import demo_settings, ensure_demo_files

        files = ensure_demo_files(args.demo_dir)
        settings = demo_settings(files, env)
    else:
        settings = load_settings(args.config, env, check_resolvers=True)
    http = settings.http
    if args.host or args.port is not None:
        from dataclasses import replace

        http = replace(
            http, host=args.host or http.host, port=http.port if args.port is None else args.port
        )
        settings = settings.replace(http=http)
    configure_logging(settings.log_level, log_secrets(settings), settings.log_format)
    metrics = Metrics()
    app = create_app(settings, metrics=metrics)
    if settings.demo:
        _print_demo_banner(settings, args.demo_dir)
    config = uvicorn.Config(
        app,
        host=http.host,
        port=http.port,
        log_config=None,
        access_log=http.access_log,
        proxy_headers=http.proxy_headers,
        forwarded_allow_ips=http.forwarded_allow_ips,
        server_header=False,
        timeout_graceful_shutdown=10,
        # Request heads bounded in size, header count and time (http.max_header_bytes, …).
        **server_options(http, metrics),
    )
    DrainingServer(config, app.state.health.drain, http.shutdown_delay).run()
    return 0


def _print_demo_banner(settings: Settings, demo_dir: str) -> None:
    base = f"http://{settings.http.host}:{settings.http.port}"
    print(
        f"doku-gateway demo on {base}\n"
        f"  credentials and keys: {Path(demo_dir).resolve()} (client id "
        f"{settings.credentials.client_id})\n"
        f"  token:   POST {base}{settings.paths.token}\n"
        f"  inquiry: POST {base}{settings.paths.inquiry}\n"
        f"  payment: POST {base}{settings.paths.payment}\n"
        f"  try:     .venv/bin/doku-gateway simulate --url {base} 8889900001234 8889911700001\n"
        f"           .venv/bin/doku-gateway simulate --url {base} pay 8889900001234\n"
        "  demo customerNo prefixes: 117 paid, 118 expired, 119 not found, 116 open amount,\n"
        "  anything else a closed bill of 25000.00",
        flush=True,
    )
