"""The HTTP edge shared by every domain's API: strict JSON parsing, the error format, the Blueprint.

Every error leaves as ``{"code", "status", "message", "errors": {field: [...]}}`` (docs/api.md, "Errors").
"""

from __future__ import annotations

import json
import math
from typing import Any

import flask_smorest
import marshmallow as ma
from flask import current_app, request
from webargs import core
from webargs.flaskparser import FlaskParser, abort
from werkzeug.exceptions import HTTPException

JSON_MIMETYPE = "application/json"
RAW_JSON_KEY = "safetravel.raw_json"


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259), although Python's parser accepts them.
    raise ValueError(f"{name} is not a valid JSON number")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _reject_huge_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:30]} is out of range")
    return value


LONE_SURROGATE = ("contains a lone UTF-16 surrogate (half of a character, as when an emoji is cut in two); "
                  "send whole characters")


def lone_surrogates(value: Any, path: str = "") -> dict[str, list[str]]:
    """The strings (values or keys) in parsed JSON that hold a lone surrogate (``"\\ud800"``), which
    JSON's syntax allows but no text encoding can store, by their dotted path (``transport.line``,
    ``reports.3.description``): each an error to answer with 422."""
    found: dict[str, list[str]] = {}
    if isinstance(value, str):
        if not _encodable(value):
            found[path or "_body"] = [LONE_SURROGATE]
    elif isinstance(value, dict):
        for key, item in value.items():
            name = key if _encodable(key) else key.encode("utf-8", "backslashreplace").decode()
            child = f"{path}.{name}" if path else name
            if not _encodable(key):
                found[child] = [LONE_SURROGATE]
            found.update(lone_surrogates(item, child))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.update(lone_surrogates(item, f"{path}.{index}" if path else str(index)))
    return found


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_strict_json(raw: bytes) -> Any:
    """Parse a request body: no NaN/Infinity, no duplicate keys, no runaway nesting."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        abort(400, message="The request body is not valid UTF-8.", errors={"json": ["not valid UTF-8"]})
    if not text.strip():
        return core.missing
    try:
        return json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_reject_huge_float,
            object_pairs_hook=_reject_duplicate_keys,
        )
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        abort(400, message=f"The request body is not valid JSON: {reason}.", errors={"json": [reason]})


class StrictParser(FlaskParser):
    """webargs' Flask parser: bodies must be JSON (415 otherwise) and strict JSON; a misspelt query
    parameter is an error, not silently ignored (``catgory=spiking`` would otherwise list all); a
    string with a lone surrogate is a 422 naming it. A view whose body is a list of items each
    answered on its own names that list in ``per_item_body`` and checks each item itself with
    ``lone_surrogates()`` (the offline batch: one bad item does not sink the others)."""

    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": ma.RAISE,
        "querystring": ma.RAISE,
    }

    def load_json(self, req, schema):  # noqa: ANN001 - webargs' signature
        if not req.mimetype or req.mimetype != JSON_MIMETYPE and not req.mimetype.endswith("+json"):
            abort(
                415,
                message=f"Send the body as {JSON_MIMETYPE} (got {req.mimetype or 'no Content-Type'}).",
                errors={"Content-Type": [f"must be {JSON_MIMETYPE}"]},
            )
        # Kept for views that need the body as sent (idempotency fingerprints), parsed once.
        body = req.environ[RAW_JSON_KEY] = parse_strict_json(req.get_data(cache=True))
        view = current_app.view_functions.get(req.endpoint or "")
        per_item = getattr(getattr(view, "view_class", None), "per_item_body", None)
        bad = {path: messages for path, messages in lone_surrogates(body).items()
               if not (per_item and path.startswith(f"{per_item}."))}
        if bad:
            abort(422, errors=bad, message=f"Invalid input: {', '.join(sorted(bad))}: {LONE_SURROGATE}.")
        return body


def raw_json() -> Any:
    """The request body as the client sent it (before schema loading), as parsed by the parser."""
    return request.environ[RAW_JSON_KEY]


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with the strict parser; every domain's api.py uses this one."""

    ARGUMENTS_PARSER = StrictParser()


def _flatten(errors: Any) -> dict[str, Any]:
    """webargs nests errors under their location ("json", "query", ...); clients want fields."""
    if not isinstance(errors, dict):
        return {"_request": errors if isinstance(errors, list) else [str(errors)]}
    flat: dict[str, Any] = {}
    for location, messages in errors.items():
        if location in ("json", "query", "querystring", "headers", "view_args", "path", "form", "files") and isinstance(
            messages, dict
        ):
            for field, field_messages in messages.items():
                # The whole-body validators (marshmallow's "_schema") are reported under "_schema".
                flat[field] = field_messages
        else:
            flat[location] = messages
    return flat


def _describe(errors: dict[str, Any]) -> str:
    fields = ", ".join(sorted(errors))
    return f"Invalid input: {fields}." if fields else "Invalid input."


class Api(flask_smorest.Api):
    """flask-smorest's Api with the documented error body (docs/api.md): field errors flat, a message naming them."""

    def handle_http_exception(self, error: HTTPException):
        headers: dict[str, str] = {}
        payload: dict[str, Any] = {"code": error.code, "status": error.name}
        data = getattr(error, "data", None) or {}
        errors = data.get("errors", data.get("messages"))
        if errors is not None:
            payload["errors"] = _flatten(errors)
        if "message" in data:
            payload["message"] = data["message"]
        elif "errors" in payload and error.code in (400, 422):
            payload["message"] = _describe(payload["errors"])
        elif error.description and error.code != 500:
            payload["message"] = error.description
        else:
            payload["message"] = error.name
        if "reason" in data:  # a stable code an app can show its own words for (docs/api.md)
            payload["reason"] = data["reason"]
        headers.update(data.get("headers") or {})
        if error.code == 401:
            headers.setdefault("WWW-Authenticate", 'Bearer realm="safetravel"')
        if error.code == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            headers.setdefault("Allow", ", ".join(error.valid_methods))
        return payload, error.code, headers
