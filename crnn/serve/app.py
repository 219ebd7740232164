"""The aiohttp application: routes, authentication, JSON errors, the WebSocket stream protocol.

    app = make_app(crnn.load_model("runs/dtmf_uni/best.pt"), ServeOptions(token="s3cret"))
    web.run_app(app, host="127.0.0.1", port=8000)        # or aiohttp.test_utils.TestServer(app) in tests

Every error is a JSON body ``{"error": "<reason>"}`` with its status: 400 (malformed request), 401 (token
missing or wrong), 404/405, 413 (upload or duration over a limit), 415 (a type the model does not read),
422 (a file of a known type that cannot be decoded), 500 (the server's own failure). See ``crnn.serve``
for the protocol.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from crnn.inference.outputs import json_line
from crnn.serve.service import ServeOptions, Service
from crnn.serve.session import StreamLimitError, StreamProtocolError
from crnn.serve.uploads import UploadError, receive_upload

log = logging.getLogger("crnn.serve")
SERVICE = web.AppKey("service", Service)
OPEN_PATHS = frozenset({"/health"})  # answered without the token
MAX_WS_MESSAGE = 4 * 2**20  # bytes of one WebSocket message (a few seconds of PCM at any rate)
CLOSE_POLICY, CLOSE_ERROR = 1008, 1011  # WebSocket close codes: refused by the server's rules; its own failure


def dumps(value: Any) -> str:
    """JSON text, non-finite numbers as null."""
    return json_line(value)


def json_error(status: int, reason: str, **headers: str) -> web.Response:
    return web.json_response({"error": reason}, status=status, dumps=dumps, headers=headers or None)


def make_app(model, options: ServeOptions = ServeOptions()) -> web.Application:
    """The recognition server for ``model`` (a CRNN or OnnxModel with its tokenizer).

    Routes: ``GET /health``, ``GET /model``, ``POST /recognize``, ``GET /stream`` (WebSocket).
    """
    service = Service(model, options)
    app = web.Application(middlewares=[_errors, _auth(options.token)],
                          client_max_size=options.max_upload_bytes + (1 << 16))
    app[SERVICE] = service

    async def start(app: web.Application) -> None:
        await service.start()

    async def stop(app: web.Application) -> None:
        await service.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_get("/health", health)
    app.router.add_get("/model", model_info)
    app.router.add_post("/recognize", recognize)
    app.router.add_get("/stream", stream)
    return app


# -- middlewares ----------------------------------------------------------------------------------------
@web.middleware
async def _errors(request: web.Request, handler):
    """aiohttp's own errors (404, 405, 413 ...) and unexpected exceptions as JSON bodies."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return json_error(e.status, e.text if e.text and not e.text.startswith(f"{e.status}:") else e.reason)
    except UploadError as e:
        return json_error(e.status, e.reason)
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - logged with its traceback; the client gets a 500 without it
        log.exception("error while answering %s %s", request.method, request.path)
        return json_error(500, "internal server error (logged on the server)")


def _auth(token: str | None):
    expected = f"Bearer {token}".encode() if token else None

    @web.middleware
    async def auth(request: web.Request, handler):
        if expected is not None and request.path not in OPEN_PATHS:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                reason = "a token is needed: send 'Authorization: Bearer <token>'" if not given else "wrong token"
                return json_error(401, reason, **{"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return auth


# -- HTTP -----------------------------------------------------------------------------------------------
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def model_info(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE].info(), dumps=dumps)


async def recognize(request: web.Request) -> web.Response:
    """One media file in (raw body or multipart ``file``), the row ``crnn decode --json`` prints out."""
    service = request.app[SERVICE]
    opts = service.options
    async with receive_upload(request, service.model.modality, opts.max_upload_bytes) as upload:
        seconds = await asyncio.get_running_loop().run_in_executor(None, service.duration, upload.path, upload.name)
        if seconds is not None and seconds > opts.max_seconds:
            raise UploadError(413, f"{upload.name}: {seconds:.1f} s long, over the {opts.max_seconds:g} s limit "
                                   "(--max-seconds)")
        result = await service.recognize(upload.path)
    if result.error:
        return json_error(422, result.error.replace(upload.path, upload.name))
    row = result.to_json(opts.decode.nbest)
    row["path"] = upload.name
    return web.json_response(row, dumps=dumps)


# -- WebSocket --------------------------------------------------------------------------------------------
async def stream(request: web.Request) -> web.WebSocketResponse:
    """Live recognition: binary PCM messages in; ``partial`` / ``final`` / ``error`` JSON text messages out."""
    service = request.app[SERVICE]
    ws = web.WebSocketResponse(max_msg_size=MAX_WS_MESSAGE)
    await ws.prepare(request)
    if service.stream_problem:
        await _close(ws, CLOSE_POLICY, f"this model cannot stream: {service.stream_problem}")
        return ws
    session = service.new_session()
    idle = service.options.idle_timeout
    try:
        while True:
            try:
                msg = await ws.receive(timeout=idle)
            except asyncio.TimeoutError:
                await _close(ws, CLOSE_POLICY, f"no message for {idle:g} s (the server's --idle-timeout): closing")
                break
            if msg.type == WSMsgType.BINARY:
                await _send(ws, await service.in_stream_pool(session.feed, msg.data))
            elif msg.type == WSMsgType.TEXT:
                message = _parse(msg.data)
                if message.get("type") == "end":
                    await _send(ws, await service.in_stream_pool(session.finish))
                    await ws.close(code=1000)
                    break
                session.configure(message)
            else:  # the client closed (or the connection broke): nobody to send a final to
                break
    except (StreamProtocolError, StreamLimitError) as e:
        await _close(ws, CLOSE_POLICY, str(e))
    except ConnectionResetError:  # the client went away while results were being sent
        pass
    except Exception:  # noqa: BLE001
        log.exception("error in a stream")
        await _close(ws, CLOSE_ERROR, "internal server error (logged on the server)")
    return ws


def _parse(text: str) -> dict:
    try:
        message = json.loads(text)
    except ValueError:
        raise StreamProtocolError("text messages must be JSON objects: {\"type\": \"end\"} or "
                                  "{\"sample_rate\": N, ...}") from None
    if not isinstance(message, dict):
        raise StreamProtocolError(f"text messages must be JSON objects, got {type(message).__name__}")
    return message


async def _send(ws: web.WebSocketResponse, messages: list[dict]) -> None:
    for m in messages:
        await ws.send_str(dumps(m))


async def _close(ws: web.WebSocketResponse, code: int, reason: str) -> None:
    """Say why in an ``error`` message, then close with ``code`` (the reason, cut to fit, as the close message)."""
    if ws.closed:
        return
    try:
        await ws.send_str(dumps({"type": "error", "error": reason}))
        await ws.close(code=code, message=reason.encode()[:120])
    except ConnectionResetError:
        pass
