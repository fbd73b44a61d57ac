"""``doku-gateway uat``: run DOKU's UAT scenarios against a deployed gateway, as DOKU would.

The scenarios live in :mod:`gateway.doku.uat`; this module gathers the target from ``--demo-dir``,
``--config`` or flags, and prints the report (text, or ``--json`` for CI).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._common import Subcommands, fail, load, print_json

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from ...doku.uat import Exchange, SampleVAs, UatReport, UatTarget

_OUTCOMES = ("payable", "open", "paid", "expired", "unknown")
_SHOWN = 160  # characters of a body shown for a passing scenario (a failing one shows all)


class _Usage(Exception):
    """A missing or unreadable input, told to the person in one line (exit status 2)."""


def register(commands: Subcommands) -> None:
    uat = commands.add_parser(
        "uat",
        help="act as DOKU's UAT against a deployed gateway: pass/fail per scenario",
        description="Act as DOKU against a deployed gateway and run the UAT scenarios: token; "
        "an inquiry per outcome; open and limit amounts; replays; a bad signature, an expired "
        "token, a stale timestamp; pretty and non-ASCII bodies; a payment notification and its "
        "repeat. Exit status 1 when any scenario fails.",
    )
    source = uat.add_mutually_exclusive_group()
    source.add_argument(
        "--demo-dir",
        metavar="DIR",
        help="demo mode: credentials and keys from DIR (written by 'serve --demo'), the demo "
        "resolver's sample VAs; needs nothing else",
    )
    source.add_argument(
        "--config",
        metavar="FILE",
        help="the gateway's TOML config: client id, client secret, paths, merchant key",
    )
    uat.add_argument(
        "--url",
        help="the base URL DOKU calls: your registered Inquiry URL without paths.inquiry "
        "(default: http://127.0.0.1:$PORT in demo mode, else http.host:http.port of --config)",
    )
    given = uat.add_argument_group("credentials (override --config)")
    given.add_argument("--client-id", help="the client id (X-CLIENT-KEY, X-PARTNER-ID)")
    given.add_argument(
        "--client-secret",
        help="env:NAME or file:PATH (a literal works but shows in 'ps'); default: env "
        "DOKU_GATEWAY_DOKU_CLIENT_SECRET",
    )
    given.add_argument(
        "--doku-private-key",
        metavar="FILE",
        help="the DOKU-side test private key whose public key the gateway trusts "
        "(doku.public_key); without it tokens are minted with the merchant key",
    )
    given.add_argument(
        "--merchant-private-key",
        metavar="FILE",
        help="the merchant key (merchant.private_key): mints an expired token for that "
        "scenario, and tokens when there is no DOKU-side key",
    )
    for name in ("token", "inquiry", "payment"):
        given.add_argument(f"--{name}-path", help=f"paths.{name} (default as in the config)")
    vas = uat.add_argument_group("sample VAs, one per outcome your resolver knows")
    for outcome in _OUTCOMES:
        vas.add_argument(f"--va-{outcome}", metavar="VA", help=f"a VA answered {outcome}")
    vas.add_argument(
        "--partner-service-id", help="the BIN/prefix starting each VA (default: first 5 digits)"
    )
    vas.add_argument("--channel", default="VIRTUAL_ACCOUNT_BTN", help="additionalInfo.channel")
    uat.add_argument(
        "--no-payment",
        action="store_true",
        help="skip the payment notification (production: it would record a payment)",
    )
    uat.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    uat.add_argument("--json", action="store_true", help="print the report as JSON (for CI)")
    uat.set_defaults(func=_uat)


def _uat(args: argparse.Namespace) -> int:
    from ...doku.uat import GatewayUnreachable, run_uat

    try:
        target = _target(args)
    except _Usage as exc:
        return fail(str(exc), 2)
    try:
        report = asyncio.run(run_uat(target))
    except GatewayUnreachable as exc:
        return fail(str(exc))
    if args.json:
        print_json(report.to_dict())
    else:
        print(render(report))
    return 0 if report.passed else 1


def _target(args: argparse.Namespace) -> UatTarget:
    """The target from the chosen source, then the explicit flags over it."""
    from ...config import PathSettings, resolve_reference
    from ...doku.uat import SampleVAs, UatTarget, demo_samples

    env = dict(os.environ)
    samples = SampleVAs()
    url = args.url
    if args.demo_dir:
        root = Path(args.demo_dir)
        try:
            credentials = json.loads((root / "credentials.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _Usage(f"cannot read demo credentials in {root}: {exc}") from None
        target = UatTarget(
            url="",
            client_id=credentials["client_id"],
            client_secret=credentials["client_secret"],
            samples=demo_samples(),
            doku_private_key=_key(str(root / "doku_private.pem")),
            merchant_private_key=_key(str(root / "merchant_private.pem")),
            paths=PathSettings(**credentials.get("paths", {})),
        )
        url = url or f"http://127.0.0.1:{env.get('PORT', '8080')}"
    elif args.config:
        settings = load(args.config)
        credentials = settings.credentials
        target = UatTarget(
            url="",
            client_id=credentials.client_id,
            client_secret=credentials.client_secret,
            samples=samples,
            merchant_private_key=credentials.merchant_private_key,
            paths=settings.paths,
            gateway_path_prefix=settings.http.path_prefix,
            token_issuer=settings.security.token_issuer,
            timestamp_skew=settings.security.timestamp_skew,
        )
        host = settings.http.host
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        url = url or f"http://{host}:{settings.http.port}"
    else:
        if not args.client_id:
            raise _Usage("give --demo-dir DIR, --config FILE, or --client-id and the rest")
        target = UatTarget(url="", client_id=args.client_id, client_secret="", samples=samples)
    if not url:
        raise _Usage("give --url, the base URL DOKU calls")
    if not url.startswith(("http://", "https://")):
        raise _Usage(f"--url must be an http(s) URL, not {url!r}")
    changes: dict[str, Any] = {"url": url.rstrip("/"), "channel": args.channel}
    if args.client_id:
        changes["client_id"] = args.client_id
    secret = args.client_secret
    if secret is None and not target.client_secret:
        secret = env.get("DOKU_GATEWAY_DOKU_CLIENT_SECRET")
        if not secret:
            raise _Usage("give --client-secret env:NAME or set DOKU_GATEWAY_DOKU_CLIENT_SECRET")
    if secret is not None:
        # A secret read from a file often ends with a newline, which would break every HMAC.
        changes["client_secret"] = resolve_reference(secret, "--client-secret", env).strip()
    if args.doku_private_key:
        changes["doku_private_key"] = _key(args.doku_private_key)
    if args.merchant_private_key:
        changes["merchant_private_key"] = _key(args.merchant_private_key)
    paths = {n: getattr(args, f"{n}_path") for n in ("token", "inquiry", "payment")}
    if any(paths.values()):
        current = target.paths
        changes["paths"] = PathSettings(**{n: v or getattr(current, n) for n, v in paths.items()})
    changes["samples"] = _samples(args, target.samples)
    changes["payments"] = not args.no_payment
    changes["timeout"] = args.timeout
    target = replace(target, **changes)
    if target.doku_private_key is None and target.merchant_private_key is None:
        raise _Usage("give --doku-private-key FILE (or --merchant-private-key FILE)")
    if target.samples.payable is None:
        raise _Usage("give --va-payable VA (and --va-open, --va-paid, --va-expired, --va-unknown)")
    return target


def _samples(args: argparse.Namespace, base: SampleVAs) -> SampleVAs:
    given = {o: getattr(args, f"va_{o}") for o in _OUTCOMES if getattr(args, f"va_{o}")}
    if args.partner_service_id:
        given["partner_service_id"] = args.partner_service_id
    return replace(base, **given)


def _key(path: str) -> rsa.RSAPrivateKey:
    from ...snap.keys import load_private_key

    try:
        return load_private_key(Path(path).read_bytes())
    except OSError as exc:
        raise _Usage(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise _Usage(f"{path}: {exc}") from None


def render(report: UatReport) -> str:
    """The report for a person: one block per scenario, then the tally and the likely causes."""
    offset = report.clock_offset
    clock = "unknown" if offset is None else f"{offset:+.0f} s from this machine"
    lines = [f"doku-gateway uat: {report.url} as DOKU (client id {report.client_id})"]
    lines.append(f"gateway clock: {clock}")
    width = max(len(result.id) for result in report.results)
    for result in report.results:
        lines.append("")
        mark = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}[result.status]
        lines.append(f"{mark}  {result.id.ljust(width)}  {result.title}: {result.expected}")
        for exchange in result.exchanges:
            lines.extend(_exchange_lines(exchange, result.status == "fail"))
        lines.extend(f"      problem: {problem}" for problem in result.problems)
        lines.extend(f"      note: {note}" for note in result.notes)
        if result.cause:
            lines.append(f"      likely cause: {result.cause}")
    counts = report.counts()
    lines.append("")
    lines.append(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    if report.causes:
        lines.append("likely causes:")
        lines.extend(f"  - {cause}" for cause in report.causes)
    return "\n".join(lines)


def _exchange_lines(exchange: Exchange, full: bool) -> list[str]:
    """``>`` what was sent, ``<`` what came back: headers and whole bodies when ``full`` (a
    failing scenario), else the path and clipped bodies."""
    limit = None if full else _SHOWN
    sent = f"      > {exchange.method} {exchange.path}"
    if full:
        sent += "  " + "; ".join(f"{k}: {v}" for k, v in exchange.request_headers.items())
    lines = [sent, f"        {_clip(_compact(exchange.request_body), limit)}"]
    if exchange.status is None:
        lines.append(f"      < no answer: {exchange.error}")
        return lines
    body = exchange.response_body
    shown = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    lines.append(f"      < HTTP {exchange.status} in {exchange.elapsed_ms:.0f} ms")
    if full and exchange.response_headers:
        lines[-1] += "  " + "; ".join(f"{k}: {v}" for k, v in exchange.response_headers.items())
    lines.append(f"        {_clip(shown, limit)}")
    return lines


def _compact(body: str) -> str:
    """A JSON body on one line (a pretty one is marked as such)."""
    try:
        document = json.loads(body)
    except ValueError:
        return body
    compact = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    if compact == body:
        return body
    return f"[sent laid out, {len(body.encode())} bytes] {compact}"


def _clip(text: str, limit: int | None) -> str:
    return text if limit is None or len(text) <= limit else text[:limit] + "…"
