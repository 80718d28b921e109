"""An OpenAI-compatible chat-completions server whose answers each test scripts.

``create_app`` builds the aiohttp application; ``OpenAIEmulator`` runs it on a background
thread for synchronous callers and exposes the script store and request log. The server
holds the scripts because the code under test usually calls it from another process.

Requests that end in no reply are loud: an unmatched request gets HTTP 500 "no scripted
reply for this request" unless a default reply or a responder is set. A responder is a
function from the request body to a reply, for an emulator that answers by rules instead
of scripts (the sandbox's demo model, `sandbox/demo_model.py`).

``POST /tokenize`` (on the root, as llama.cpp's llama-server has it) answers only once a
test turns it on (`OpenAIEmulator.serve_tokenize`); until then it is 404, as on servers
without it. Its tokens are words and punctuation marks (`emulated_tokens`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiohttp import web
from aiohttp.typedefs import Handler

from sandbox.background import BackgroundServer, StartStop
from sandbox.openai_script import (
    Failure,
    Hang,
    Refusal,
    RefusalStore,
    Reply,
    RequestLog,
    ScriptedReply,
    ScriptStore,
    request_text,
)
from sandbox.openai_wire import (
    Answer,
    completion_body,
    embeddings_body,
    error_body,
    models_body,
    new_completion_id,
    stream_chunks,
)

CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
MODELS_PATH = "/v1/models"
TOKENIZE_PATH = "/tokenize"
_TOKEN = re.compile(r"\w+|[^\w\s]")
NO_SCRIPT_MESSAGE = "no scripted reply for this request"
_POLL = 0.05  # seconds between checks for a vanished client during a pause


# The reply to a chat-completions request no script (nor the default) answers; None: none.
Responder: TypeAlias = Callable[[dict[str, Any]], ScriptedReply | None]


@dataclass(frozen=True)
class EmulatorConfig:
    api_key: str | None = None  # None: any Authorization header (or none) is accepted
    models: tuple[str, ...] = ("emulator-chat", "emulator-embedding")
    embedding_dimensions: int = 256  # a request's "dimensions" overrides it
    stream_piece_chars: int = 8  # content and arguments are streamed in pieces this long


@dataclass
class EmulatorState:
    config: EmulatorConfig = field(default_factory=EmulatorConfig)
    scripts: ScriptStore = field(default_factory=ScriptStore)
    log: RequestLog = field(default_factory=RequestLog)
    responder: Responder | None = None
    refusals: RefusalStore = field(default_factory=RefusalStore)
    tokenize: bool = False  # whether POST /tokenize answers (llama-server) or is 404


STATE_KEY = web.AppKey("openai_emulator_state", EmulatorState)
# Set on shutdown so pauses (Hang, Reply.delay) end and the runner's cleanup isn't held up.
CLOSING_KEY = web.AppKey("openai_emulator_closing", asyncio.Event)


def create_app(state: EmulatorState | None = None) -> web.Application:
    app = web.Application(middlewares=[_openai_errors])
    app[STATE_KEY] = state or EmulatorState()
    app[CLOSING_KEY] = asyncio.Event()
    app.router.add_post(CHAT_PATH, _chat_completions)
    app.router.add_post(EMBEDDINGS_PATH, _embeddings)
    app.router.add_get(MODELS_PATH, _models)
    app.router.add_post(TOKENIZE_PATH, _tokenize)
    app.on_response_prepare.append(_add_request_id)
    app.on_shutdown.append(_signal_closing)
    return app


def _error(
    status: int, message: str, param: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(error_body(status, message, param), status=status, headers=headers)


@web.middleware
async def _openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check the API key and give routing errors OpenAI's error shape."""
    api_key = request.app[STATE_KEY].config.api_key
    if api_key is not None and request.headers.get("Authorization") != f"Bearer {api_key}":
        return _error(401, "Incorrect API key provided.")
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, f"Invalid URL ({request.method} {request.path})")
    return response


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("x-request-id", f"req_{uuid.uuid4().hex}")


async def _signal_closing(app: web.Application) -> None:
    app[CLOSING_KEY].set()


async def _read_body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.text())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def _pause(request: web.Request, seconds: float) -> bool:
    """Sleep; False as soon as the client hangs up or the server shuts down."""
    closing = request.app[CLOSING_KEY]
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if request.transport is None or closing.is_set():
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), min(remaining, _POLL))
    return request.transport is not None


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    body = await _read_body(request)
    if body is None:
        return _error(400, "We could not parse the JSON body of your request.")
    state.log.record(CHAT_PATH, body)
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _error(400, "you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error(400, "'messages' must be a non-empty array", param="messages")

    refusal = state.refusals.find(body)
    if refusal is not None:
        return await _answer(request, body, request_text(body), refusal.failure)
    text = request_text(body)
    reply = state.scripts.take(text)
    if reply is None and state.responder is not None:
        reply = state.responder(body)
    if reply is None:
        excerpt = text[-200:].replace("\n", " ")
        # Retrying cannot conjure a script, so tell the client not to bother.
        headers = {"x-should-retry": "false"}
        return _error(500, f"{NO_SCRIPT_MESSAGE} (text ends: {excerpt!r})", headers=headers)
    return await _answer(request, body, text, reply)


async def _answer(
    request: web.Request, body: dict[str, Any], text: str, reply: ScriptedReply
) -> web.StreamResponse:
    if isinstance(reply, Failure):
        headers = {} if reply.retry_after is None else {"Retry-After": f"{reply.retry_after:g}"}
        return _error(reply.status, reply.message, headers=headers)
    if isinstance(reply, Hang):
        # If the client left, nobody reads this; aiohttp drops it harmlessly.
        ended = "ran out" if await _pause(request, reply.seconds) else "was cut short"
        return _error(504, f"emulated hang of {reply.seconds:g}s {ended} without an answer")
    if isinstance(reply, Reply) and reply.delay > 0 and not await _pause(request, reply.delay):
        return _error(504, "scripted delay cut short (client gone or emulator stopping)")

    answer = Answer.resolve(reply, text)
    completion_id, model, created = new_completion_id(), str(body["model"]), int(time.time())
    if body.get("stream") is not True:
        return web.json_response(
            completion_body(answer, completion_id=completion_id, model=model, created=created)
        )

    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    if isinstance(reply, Reply) and not reply.stream_usage:
        include_usage = False
    piece_chars = request.app[STATE_KEY].config.stream_piece_chars
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    try:
        chunks = stream_chunks(
            answer,
            completion_id=completion_id,
            model=model,
            created=created,
            include_usage=include_usage,
            piece_chars=piece_chars,
        )
        piece_delay = reply.piece_delay if isinstance(reply, Reply) else 0.0
        for chunk in chunks:
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            if piece_delay > 0 and not await _pause(request, piece_delay):
                return response  # the client hung up mid-stream
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client stopped reading; nothing left to tell it
    return response


async def _embeddings(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    body = await _read_body(request)
    if body is None:
        return _error(400, "We could not parse the JSON body of your request.")
    state.log.record(EMBEDDINGS_PATH, body)
    raw = body.get("input")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        raw = [raw]  # one string, or one pre-tokenised input
    if not isinstance(raw, list) or not raw:
        return _error(400, "'input' must be a non-empty string or array", param="input")
    inputs = [item if isinstance(item, str) else json.dumps(item) for item in raw]
    dimensions = body.get("dimensions") or state.config.embedding_dimensions
    if not isinstance(dimensions, int) or dimensions < 1:
        return _error(400, "'dimensions' must be a positive integer", param="dimensions")
    return web.json_response(
        embeddings_body(
            inputs,
            model=str(body.get("model", state.config.models[-1])),
            dimensions=dimensions,
            encoding_format=str(body.get("encoding_format", "float")),
        )
    )


def emulated_tokens(text: str) -> list[str]:
    """The emulator's tokenizer: each word and each punctuation mark is a token."""
    return _TOKEN.findall(text)


async def _tokenize(request: web.Request) -> web.StreamResponse:
    """llama-server's ``POST /tokenize``: ``{"content": text}`` -> ``{"tokens": [ids]}``."""
    state = request.app[STATE_KEY]
    body = await _read_body(request)
    state.log.record(TOKENIZE_PATH, body or {})
    if not state.tokenize:
        raise web.HTTPNotFound()
    if body is None or not isinstance(body.get("content"), str):
        return _error(400, "'content' must be a string", param="content")
    tokens = [len(piece) for piece in emulated_tokens(body["content"])]
    return web.json_response({"tokens": tokens})


async def _models(request: web.Request) -> web.StreamResponse:
    return web.json_response(models_body(request.app[STATE_KEY].config.models, int(time.time())))


class OpenAIEmulator(StartStop):
    """The emulator on a background thread, scripted and inspected from synchronous code."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        responder: Responder | None = None,
    ) -> None:
        self.state = EmulatorState(config or EmulatorConfig(), responder=responder)
        self._server = BackgroundServer(create_app(self.state), host, port)
        self._started = False

    @property
    def base_url(self) -> str:
        """What ``OpenAI(base_url=...)`` wants: the server URL ending in "/v1"."""
        return f"{self._server.url}/v1"

    def start(self) -> str:
        self._server.start()
        self._started = True
        return self.base_url

    def stop(self) -> None:
        if self._started:  # BackgroundServer can't stop a thread it never started
            self._server.stop()
            self._started = False

    def script(self, *replies: ScriptedReply, match: str | None = None) -> None:
        """Queue replies for requests whose message text contains ``match`` (None: any)."""
        self.state.scripts.add(replies, match)

    def refuse(self, refusal: Refusal) -> None:
        """Answer requests like ``refusal`` describes from now on (until `reset`), the
        way a real server refuses what it does not take."""
        self.state.refusals.add(refusal)

    def set_default(self, reply: ScriptedReply | None) -> None:
        """The answer to requests no script matches; None makes them HTTP 500 again."""
        self.state.scripts.set_default(reply)

    def pending(self) -> list[tuple[str | None, ScriptedReply]]:
        """One-shot scripts not yet consumed, as (match, reply)."""
        return self.state.scripts.pending()

    def requests(
        self, match: str | None = None, path: str | None = CHAT_PATH
    ) -> list[dict[str, Any]]:
        """Bodies received on ``path`` (None: every path) whose text contains ``match``."""
        return self.state.log.bodies(match, path)

    def wait_for_requests(
        self,
        count: int = 1,
        match: str | None = None,
        timeout: float = 5.0,
        path: str | None = CHAT_PATH,
    ) -> list[dict[str, Any]]:
        """Block until ``count`` matching requests have arrived, e.g. one that is hanging."""
        return self.state.log.wait_for(count, match, path, timeout)

    def serve_tokenize(self, enabled: bool = True) -> None:
        """Answer ``POST /tokenize`` as llama-server does (until `reset`), or 404."""
        self.state.tokenize = enabled

    def reset(self) -> None:
        """Forget all scripts, refusals, the default reply and the request log, and stop
        answering /tokenize."""
        self.state.tokenize = False
        self.state.scripts.clear()
        self.state.refusals.clear()
        self.state.log.clear()
