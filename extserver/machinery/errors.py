"""Errors as values: one exception family that renders to a Kubernetes ``Status``.

Messages, reasons and details follow ``k8s.io/apimachinery/pkg/api/errors`` so that
clients (kubectl, client-go) recognise them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class FieldError:
    """One field error, as ``k8s.io/apimachinery/pkg/util/validation/field.Error``."""

    type: str  # FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, ...
    field: str
    bad_value: Any = None
    detail: str = ""

    _TYPE_TEXT = {
        "FieldValueNotFound": "Not found",
        "FieldValueRequired": "Required value",
        "FieldValueDuplicate": "Duplicate value",
        "FieldValueInvalid": "Invalid value",
        "FieldValueNotSupported": "Unsupported value",
        "FieldValueForbidden": "Forbidden",
        "FieldValueTooLong": "Too long",
        "FieldValueTooMany": "Too many",
        "InternalError": "Internal error",
        "FieldValueTypeInvalid": "Invalid value",
    }

    def error_body(self) -> str:
        text = self._TYPE_TEXT.get(self.type, self.type)
        if self.type in ("FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong", "InternalError"):
            s = text
        elif self.type == "FieldValueNotSupported" and self.bad_value is None:
            s = text
        else:
            s = f"{text}: {_go_quote_value(self.bad_value)}"
        if self.detail:
            s += f": {self.detail}"
        return s

    def __str__(self) -> str:
        return f"{self.field}: {self.error_body()}"


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError("FieldValueInvalid", path, value, detail)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", path, "", detail)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", path, "", detail)


def not_supported(path: str, value: Any, valid: list[str]) -> FieldError:
    detail = "supported values: " + ", ".join(f'"{v}"' for v in valid) if valid else ""
    return FieldError("FieldValueNotSupported", path, value, detail)


def too_long(path: str, value: Any, max_len: int) -> FieldError:
    return FieldError("FieldValueTooLong", path, value, f"may not be more than {max_len} bytes")


class GoValue:
    """A bad value whose Go rendering is not its JSON one (``0x0``: a ``uint64`` zero, as
    field errors print it with ``%#v``)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def _go_quote_value(v: Any) -> str:
    """A bad value as Go's field errors print it: strings with %q, other values as JSON."""
    if isinstance(v, GoValue):
        return v.text
    if isinstance(v, str):
        from .validation import go_quote
        return go_quote(v)
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    import orjson
    try:
        return orjson.dumps(v).decode()
    except TypeError:
        return str(v)


@dataclass(slots=True)
class Cause:
    reason: str
    message: str
    field: str = ""

    def to_dict(self) -> dict:
        d = {"reason": self.reason, "message": self.message}
        if self.field:
            d["field"] = self.field
        return d


class StatusError(Exception):
    """Base of every error that is answered with a ``Status``."""

    code: int = 500
    reason: str = "InternalError"

    def __init__(self, message: str, *, code: int | None = None, reason: str | None = None,
                 name: str = "", group: str = "", kind: str = "", causes: list[Cause] | None = None,
                 retry_after: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if reason is not None:
            self.reason = reason
        self.name = name
        self.group = group
        self.kind = kind
        self.causes = causes or []
        self.retry_after = retry_after
        self.headers = headers or {}

    def status(self) -> dict:
        st: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        if details:
            st["details"] = details
        st["code"] = self.code
        return st


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


class NotFound(StatusError):
    code, reason = 404, "NotFound"

    def __init__(self, group: str, resource: str, name: str):
        super().__init__(f'{_qualified(resource, group)} "{name}" not found',
                         name=name, group=group, kind=resource)


class AlreadyExists(StatusError):
    code, reason = 409, "AlreadyExists"

    def __init__(self, group: str, resource: str, name: str):
        super().__init__(f'{_qualified(resource, group)} "{name}" already exists',
                         name=name, group=group, kind=resource)


class Conflict(StatusError):
    code, reason = 409, "Conflict"
    OPTIMISTIC_LOCK = "the object has been modified; please apply your changes to the latest version and try again"

    def __init__(self, group: str, resource: str, name: str, detail: str = OPTIMISTIC_LOCK):
        super().__init__(f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {detail}',
                         name=name, group=group, kind=resource)


class Invalid(StatusError):
    code, reason = 422, "Invalid"

    def __init__(self, group: str, kind: str, name: str, errors: list[FieldError]):
        texts = list(dict.fromkeys(str(e) for e in errors))  # Go's aggregate drops duplicates
        agg = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
        super().__init__(f'{_qualified(kind, group)} "{name}" is invalid: {agg}',
                         name=name, group=group, kind=kind,
                         causes=[Cause(e.type, e.error_body(), e.field) for e in errors])
        self.field_errors = errors


class BadRequest(StatusError):
    code, reason = 400, "BadRequest"


class Unauthorized(StatusError):
    code, reason = 401, "Unauthorized"

    def __init__(self, message: str = "Unauthorized"):
        super().__init__(message)


class Forbidden(StatusError):
    code, reason = 403, "Forbidden"

    def __init__(self, group: str, resource: str, name: str, detail: str):
        q = _qualified(resource, group)
        msg = f'{q} "{name}" is forbidden: {detail}' if name else f"{q} is forbidden: {detail}"
        super().__init__(msg, name=name, group=group, kind=resource)


class MethodNotSupported(StatusError):
    code, reason = 405, "MethodNotAllowed"

    def __init__(self, group: str, resource: str, action: str):
        super().__init__(f'{action} is not supported on resources of kind "{_qualified(resource, group)}"',
                         group=group, kind=resource)


class GenericServerResponse(StatusError):
    """What k8s.io/apiserver answers through ``NewGenericServerResponse(code, "", GroupResource{},
    "", msg, 0, false)`` (go-restful's service errors): a fixed message per code and an empty
    ``details`` object."""

    def status(self) -> dict:
        st = super().status()
        st["details"] = {}
        st["code"] = st.pop("code")  # keep kube's field order: details before code
        return st


class MethodNotAllowed(GenericServerResponse):
    """A verb the resource has no route for (a write to a read-only kind, an update of a
    collection, a create on a named path): go-restful's 405."""

    code, reason = 405, "MethodNotAllowed"

    def __init__(self) -> None:
        super().__init__("the server does not allow this method on the requested resource")


class NotAcceptable(StatusError):
    code, reason = 406, "NotAcceptable"

    def __init__(self, accepted: list[str], why: str = ""):
        super().__init__("only the following media types are accepted: " + ", ".join(accepted)
                         + (f" ({why})" if why else ""))


class UnsupportedMediaType(StatusError):
    code, reason = 415, "UnsupportedMediaType"

    def __init__(self, content_type: str, accepted: list[str]):
        super().__init__('the body of the request was in an unknown format - accepted media types include: '
                         + ", ".join(accepted))


class RequestEntityTooLarge(StatusError):
    code, reason = 413, "RequestEntityTooLarge"

    def __init__(self, limit: int):
        super().__init__(f"Request entity too large: limit is {limit}")


class Gone(StatusError):
    """410 with reason ``Expired`` (too old resource version, expired continue token)."""

    code, reason = 410, "Expired"


class TooManyRequests(StatusError):
    code, reason = 429, "TooManyRequests"

    def __init__(self, message: str = "Too many requests, please try again later.", retry_after: int = 1):
        super().__init__(message, retry_after=retry_after, headers={"Retry-After": str(retry_after)})


class InternalError(StatusError):
    code, reason = 500, "InternalError"

    def __init__(self, detail: str):
        super().__init__(f"Internal error occurred: {detail}", causes=[Cause("UnexpectedServerResponse", detail)])


class ServiceUnavailable(StatusError):
    code, reason = 503, "ServiceUnavailable"


class Timeout(StatusError):
    code, reason = 504, "Timeout"


class ResourceVersionTooLarge(StatusError):
    """A read at a resourceVersion the storage has not reached yet (kube answers 504 Timeout
    after waiting; the etcd3 store answers it immediately as ``Too large resource version``)."""

    code, reason = 504, "Timeout"

    def __init__(self, requested: int, current: int):
        super().__init__(f"Too large resource version: {requested}, current: {current}",
                         causes=[Cause("ResourceVersionTooLarge", "Too large resource version")],
                         retry_after=1)


class PathNotFound(GenericServerResponse):
    """A path no route serves: go-restful's 404, as MethodNotAllowed (no causes)."""

    code, reason = 404, "NotFound"

    def __init__(self) -> None:
        super().__init__("the server could not find the requested resource")


def too_old_resource_version(requested: int, oldest: int) -> Gone:
    return Gone(f"too old resource version: {requested} ({oldest})")


EXPIRED_CONTINUE = ("The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter, or use the continue token "
                    "in this response to retrieve the remainder of the results. Continuing with the "
                    "provided token results in an inconsistent list - objects that were created, modified, "
                    "or deleted between the time the first chunk was returned and now may show up in the list.")
