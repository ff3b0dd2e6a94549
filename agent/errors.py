"""Domain errors and the one error shape every client sees: {"error": {"code", "message"}}.

WattwiseError                  status, code, message (+ optional fields)
 ├── BadRequest          400   a body that is not JSON (or nests too deep), or ended early
 ├── Unauthorized        401   missing, malformed, expired or forged credentials
 ├── Forbidden           403   authenticated, visible, but not allowed to do this
 ├── NotFound            404   absent, or not visible to the caller (the same answer)
 ├── Conflict            409   would break a uniqueness rule
 ├── PayloadTooLarge     413   body or batch beyond the limits
 ├── InvalidRequest      422   a field failed validation (fields say which and why), or
 │                             holds text that is not text (U+0000, a lone surrogate)
 └── Unavailable         503   a dependency is down or not ready
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str


class WattwiseError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(
        self, message: str, *, code: str | None = None, fields: tuple[FieldError, ...] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        if code is not None:
            self.code = code  # type: ignore[misc]  # per-instance refinement of the class code

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            error["fields"] = [{"field": f.field, "reason": f.reason} for f in self.fields]
        return {"error": error}


class BadRequest(WattwiseError):
    status = 400
    code = "bad_request"


class Unauthorized(WattwiseError):
    status = 401
    code = "unauthorized"


class Forbidden(WattwiseError):
    status = 403
    code = "forbidden"


class NotFound(WattwiseError):
    status = 404
    code = "not_found"


class Conflict(WattwiseError):
    status = 409
    code = "conflict"


class PayloadTooLarge(WattwiseError):
    status = 413
    code = "payload_too_large"


class InvalidRequest(WattwiseError):
    status = 422
    code = "invalid_request"


class Unavailable(WattwiseError):
    status = 503
    code = "unavailable"
