"""Read an AI SDK UI message stream (protocol v1) with the AI SDK's own client code.

`read_ui_stream` / `aread_ui_stream` run tests/node/read_ui_stream.mjs under Node: it sends
the request through @ai-sdk/react's `Chat` (what `useChat` builds) and the `ai` package's
`DefaultChatTransport`, and reports every chunk the server sent, validated against the
package's chunk schema, and the assistant message the front end reconstructed from them.
See tests/node/README.md for the chunk shapes and what the reader does with them.

The Node dependencies are installed once (`npm ci` in tests/node) when node_modules is
missing or was installed from another package-lock.json; scripts/test does it up front.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = NODE_DIR / "read_ui_stream.mjs"
LOCK = NODE_DIR / "package-lock.json"
# Written after a successful `npm ci`: the sha256 of the package-lock.json it installed.
# scripts/test reads and writes the same stamp.
STAMP = NODE_DIR / "node_modules" / ".package-lock.sha256"

_install_lock = threading.Lock()


class NodeMissingError(RuntimeError):
    """`node` or `npm` is not on PATH."""


class UIStreamError(AssertionError):
    """The stream is not what an AI SDK front end can read: a non-2xx status, no
    `x-vercel-ai-ui-message-stream: v1` header, a chunk that is not JSON or fails the chunk
    schema, a chunk the front end could not apply, or the timeout. `result` holds what was
    read up to then, `errors` first among it."""

    def __init__(self, message: str, result: UIStreamResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class UIStreamResult:
    status: int | None
    """The HTTP status; None if no response came."""
    headers: dict[str, str]
    """The response headers, names in lower case."""
    chunks: list[dict[str, Any]]
    """Every valid chunk the server sent, in order, as parsed (`[DONE]` and comments are
    not chunks). An invalid one is in `errors` instead, source "parse"."""
    message: dict[str, Any] | None
    """The assistant UIMessage the front end shows at the end ({id, role, metadata?,
    parts}); None if it never showed one."""
    errors: list[dict[str, Any]]
    """{"source", "message", ...}: "error-chunk" (an `error` chunk, which useChat turns into
    its error and stops reading at: the only source that is not a failure), "http", "parse"
    (with "event", the 0-based index of the SSE data event, and "value" or "text"), "chat"
    (the front end failed applying a chunk), "read", "timeout"."""
    chat: dict[str, Any] = field(default_factory=dict)
    """useChat's end state: {"status": "ready" | "error", "finishReason", "isError",
    "isAbort", "isDisconnect"}."""

    @property
    def text(self) -> str:
        """The message's text parts, joined."""
        parts = self.message["parts"] if self.message else []
        return "".join(p["text"] for p in parts if p.get("type") == "text")

    def parts(self, type_: str) -> list[dict[str, Any]]:
        """The message's parts of one type ("text", "tool-<name>", "data-<name>", ...)."""
        parts = self.message["parts"] if self.message else []
        return [p for p in parts if p.get("type") == type_]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise NodeMissingError(
            f"`{name}` is not installed: reading UI message streams needs Node.js (>= 18) and "
            "npm. scripts/test installs them (Debian's nodejs and npm packages)."
        )
    return path


def _lock_digest() -> str:
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()


def ensure_node_deps() -> None:
    """`npm ci` in tests/node unless node_modules was installed from this package-lock."""
    _tool("node")
    npm = _tool("npm")
    with _install_lock:
        digest = _lock_digest()
        if STAMP.is_file() and STAMP.read_text().strip() == digest:
            return
        # Another process (a second pytest) may be installing the same directory.
        key = hashlib.sha256(str(NODE_DIR).encode()).hexdigest()[:16]
        lock_path = Path(tempfile.gettempdir()) / f"wattwise-node-deps-{key}.lock"
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if STAMP.is_file() and STAMP.read_text().strip() == digest:
                return
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=NODE_DIR,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"npm ci in {NODE_DIR} failed:\n{done.stdout}{done.stderr}")
            STAMP.write_text(digest + "\n")


def _config(
    url: str,
    *,
    body: Any,
    text: str | None,
    messages: list[dict[str, Any]] | None,
    headers: dict[str, str] | None,
    method: str,
    read_timeout: float,
) -> bytes:
    config: dict[str, Any] = {
        "url": url,
        "method": method,
        "headers": headers or {},
        "timeoutMs": int(read_timeout * 1000),
    }
    if (body is None) == (text is None):
        raise TypeError("give exactly one of body (sent as it is) or text (useChat's request)")
    if body is not None:
        config["body"] = body
    else:
        config["text"] = text
        config["messages"] = messages or []
    return json.dumps(config).encode()


def _describe(error: dict[str, Any]) -> str:
    if error["source"] != "parse":
        first = str(error.get("message")).partition("\n")[0]
        return f"{error['source']}: {first[:300]}"
    seen = error.get("value") if error.get("value") is not None else error.get("text")
    why = error.get("issues") or [{"path": [], "message": error.get("message")}]
    said = ", ".join(f"{'.'.join(map(str, i['path'])) or '-'}: {i['message']}" for i in why)
    return f"parse: event {error.get('event')} {json.dumps(seen)[:300]}: {said[:300]}"


def _result(returncode: int, stdout: bytes, stderr: bytes) -> UIStreamResult:
    if returncode not in (0, 1):
        raise RuntimeError(
            f"read_ui_stream.mjs exited {returncode}:\n{stderr.decode(errors='replace')}"
        )
    data = json.loads(stdout)
    result = UIStreamResult(
        status=data["status"],
        headers=data["headers"],
        chunks=data["chunks"],
        message=data["message"],
        errors=data["errors"],
        chat=data["chat"],
    )
    if returncode == 1:
        failures = [e for e in result.errors if e["source"] != "error-chunk"]
        summary = "; ".join(_describe(e) for e in failures)
        raise UIStreamError(f"the UI message stream is not readable: {summary}", result)
    return result


async def aread_ui_stream(
    url: str,
    *,
    body: Any = None,
    text: str | None = None,
    messages: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    read_timeout: float = 30.0,
    check: bool = True,
) -> UIStreamResult:
    """Send one request to `url` as useChat would and read the UI message stream it answers.

    `body` is sent as it is (JSON); or, instead, `text` makes useChat's own body ({id,
    messages, trigger, messageId}) from `messages` (earlier UIMessages) and a user message.
    Raises UIStreamError if the stream is not readable (see UIStreamResult.errors);
    `check=False` returns the result instead. An `error` chunk is not a failure: it is in
    `errors` with source "error-chunk".
    """
    config = _config(
        url,
        body=body,
        text=text,
        messages=messages,
        headers=headers,
        method=method,
        read_timeout=read_timeout,
    )
    await asyncio.to_thread(ensure_node_deps)
    process = await asyncio.create_subprocess_exec(
        _tool("node"),
        str(SCRIPT),
        cwd=NODE_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # The script has its own deadline; this one is for a script that hangs anyway.
        stdout, stderr = await asyncio.wait_for(process.communicate(config), read_timeout + 30)
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    assert process.returncode is not None
    try:
        return _result(process.returncode, stdout, stderr)
    except UIStreamError as exc:
        if check:
            raise
        return exc.result


def read_ui_stream(
    url: str,
    *,
    body: Any = None,
    text: str | None = None,
    messages: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    read_timeout: float = 30.0,
    check: bool = True,
) -> UIStreamResult:
    """`aread_ui_stream` for a server that is not served by the calling thread's event loop."""
    return asyncio.run(
        aread_ui_stream(
            url,
            body=body,
            text=text,
            messages=messages,
            headers=headers,
            method=method,
            read_timeout=read_timeout,
            check=check,
        )
    )
