"""``crnn serve``: a recognition server for one model, over HTTP and WebSocket (needs aiohttp).

  GET  /health      {"status": "ok"}
  GET  /model       modality, sample rate, vocabulary, frame shift, config, whether it streams
  POST /recognize   a media file (raw body, or multipart field 'file') -> the row 'crnn decode --json' prints
  GET  /stream      WebSocket: 16-bit little-endian mono PCM at the model's rate in; partial and final JSON
                    messages out; an utterance ends after --trailing-silence s of silence or --max-utterance s

Listens on 127.0.0.1 unless --host says otherwise; a non-loopback address needs --token (clients send
'Authorization: Bearer TOKEN'). The protocol in full: docs or 'python -c "import crnn.serve; help(crnn.serve)"'.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from crnn.cli.common import add_plugin_arg, load_plugins, positive_float, positive_int

INSTALL_HINT = "crnn serve needs aiohttp: pip install 'crnn[serve]'"


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0-65535 (0: any free one)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return value


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) can only be reached from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def usage_problem(args: argparse.Namespace) -> str | None:
    """A flag combination the server refuses (exit 2), or None."""
    if args.token is not None and (not args.token or not args.token.isascii() or not args.token.isprintable()
                                   or " " in args.token):
        return "--token must be non-empty printable ASCII without spaces"
    if not is_loopback(args.host) and not args.token:
        return (f"--host {args.host} is not a loopback address: anyone who can reach it could use the server. "
                "Give --token (or CRNN_SERVE_TOKEN) so clients must send 'Authorization: Bearer TOKEN', "
                "or listen on 127.0.0.1")
    return None


def main(args: argparse.Namespace) -> int:
    args.token = args.token if args.token is not None else os.environ.get("CRNN_SERVE_TOKEN") or None
    problem = usage_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        print(f"error: {INSTALL_HINT}", file=sys.stderr)
        return 1
    import torch

    from crnn.cli.decode import load_decoding_model
    from crnn.cli.decode_args import options_from_args
    from crnn.runtime import pick_device
    from crnn.serve.endpointing import EndpointRules
    from crnn.serve.service import ServeOptions

    load_plugins(args.plugin)
    try:
        device = pick_device(args.device)
        if device.type == "cpu":  # the server's threads run calls side by side: one compute thread each
            torch.set_num_threads(args.threads)
        model = load_decoding_model(args.checkpoint, device)
        options = ServeOptions(
            token=args.token, max_upload_bytes=int(args.max_upload_mb * 2**20), max_seconds=args.max_seconds,
            idle_timeout=args.idle_timeout, batch_size=args.batch_size, device=str(device),
            stream_workers=args.stream_workers, decode=options_from_args(args),
            endpointing=EndpointRules(args.trailing_silence, args.max_utterance),
            model_name=os.path.basename(args.checkpoint.rstrip("/\\")))
        from crnn.serve.app import make_app

        app = make_app(model, options)
    except (RuntimeError, OSError, ValueError) as e:  # unusable checkpoint, LM, lexicon ...
        print(f"error: {e}", file=sys.stderr)
        return 1
    import asyncio

    return asyncio.run(_serve(app, args.host, args.port, model, options))


async def _serve(app, host: str, port: int, model, options) -> int:
    """Listen until SIGINT or SIGTERM, then close connections and stop the workers."""
    import asyncio
    import signal

    from aiohttp import web

    from crnn.serve.app import SERVICE

    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as e:
        await runner.cleanup()
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        print(f"error: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
        return 1
    bound = runner.addresses[0][1] if runner.addresses else port
    service = app[SERVICE]
    streams = "yes" if service.stream_problem is None else f"no ({service.stream_problem})"
    shown = f"[{host}]" if ":" in host else host
    print(f"crnn serve: {options.model_name} ({model.modality}) on http://{shown}:{bound}  streaming: {streams}"
          f"{'  token required' if options.token else ''}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    print("crnn serve: stopped", file=sys.stderr, flush=True)
    return 0


def register(subparsers) -> None:
    from crnn.cli.decode_args import add_decode_args

    p = subparsers.add_parser("serve", help="serve a model over HTTP and WebSocket (files and live audio)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", "-c", "--model", dest="checkpoint", required=True, metavar="CK|NAME",
                   help="a model: a checkpoint written by crnn train, an exported .onnx file (files only), or the "
                        "name of a shipped model (crnn models)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s; any other than loopback needs --token)")
    p.add_argument("--port", type=port_number, default=8000, help="TCP port; 0 picks a free one (default: %(default)s)")
    p.add_argument("--token", default=None, metavar="TOKEN",
                   help="require 'Authorization: Bearer TOKEN' on every request but /health "
                        "(default: $CRNN_SERVE_TOKEN, else none)")
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-upload-mb", type=positive_float, metavar="MB", default=50.0,
                     help="largest upload in MiB; larger ones get 413 (default: %(default)s)")
    lim.add_argument("--max-seconds", type=positive_float, metavar="S", default=600.0,
                     help="longest upload, and most audio one stream may carry, in seconds (default: %(default)s)")
    lim.add_argument("--idle-timeout", type=positive_float, metavar="S", default=30.0,
                     help="close a stream after this many seconds without a message (default: %(default)s)")
    run = p.add_argument_group("running")
    run.add_argument("--batch-size", type=positive_int, metavar="N", default=8,
                     help="uploads decoded together, and pieces per forward pass (default: %(default)s)")
    run.add_argument("--stream-workers", type=positive_int, metavar="N", default=2,
                     help="threads running stream chunks (default: %(default)s)")
    run.add_argument("--device", default="auto")
    run.add_argument("--threads", type=positive_int, default=1, metavar="N",
                     help="CPU compute threads of each model call (default: %(default)s; the server runs calls side "
                          "by side, and small calls slow down with more)")
    ep = p.add_argument_group("endpointing (streams)")
    ep.add_argument("--trailing-silence", type=positive_float, metavar="S", default=1.0,
                    help="end an utterance after this many seconds of blank output following speech "
                         "(default: %(default)s)")
    ep.add_argument("--max-utterance", type=positive_float, metavar="S", default=20.0,
                    help="end an utterance after this many seconds wherever it stands (default: %(default)s)")
    add_decode_args(p)
    add_plugin_arg(p)
    p.set_defaults(func=main)
