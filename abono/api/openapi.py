"""How the routes that read their own bodies are described in the OpenAPI schema.

The provider webhooks and the console's forms parse the raw body themselves (a signature is
computed over exactly what arrived), so FastAPI cannot infer a request body for them. Each
passes one of these as ``openapi_extra``: the schema then documents every public route, and
the fuzz tests (docs/fuzzing.md) generate bodies for them from it. The schema is served in the
sandbox only (``create_app``).
"""

from __future__ import annotations

from typing import Any

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


def _fields(names: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"type": "string"} for name in names},
        "required": list(required),
        "additionalProperties": {"type": "string"},
    }


def _header(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": description,
    }


def _query(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": description,
    }


TWILIO_SIGNATURE = _header("X-Twilio-Signature", "Twilio's signature of the URL and the form.")


def twilio_form(*fields: str, query: tuple[str, ...] = ()) -> dict[str, Any]:
    """A Twilio webhook: a form Twilio signs with the account's auth token."""
    return {
        "parameters": [TWILIO_SIGNATURE]
        + [_query(name, "Set by our own TwiML.") for name in query],
        "requestBody": {"required": True, "content": {FORM: {"schema": _fields(fields)}}},
    }


def form(*fields: str) -> dict[str, Any]:
    """A form an HTML page of ours posts."""
    return {"requestBody": {"required": True, "content": {FORM: {"schema": _fields(fields)}}}}


SENDGRID_INBOUND: dict[str, Any] = {
    "parameters": [
        _query("token", "The inbound token (or HTTP basic auth's password)."),
        _header("Authorization", "Basic auth whose password is the inbound token."),
    ],
    "requestBody": {
        "required": True,
        "content": {
            MULTIPART: {
                "schema": _fields(
                    ("from", "to", "subject", "text", "html", "envelope", "headers", "charsets")
                    + ("SPF", "dkim", "sender_ip", "attachments")
                )
            }
        },
    },
}

SENDGRID_EVENTS: dict[str, Any] = {
    "parameters": [
        _header("X-Twilio-Email-Event-Webhook-Signature", "ECDSA signature of the body."),
        _header("X-Twilio-Email-Event-Webhook-Timestamp", "Signed with the body."),
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": {"type": "object"}},
            }
        },
    },
}

STRIPE_EVENT: dict[str, Any] = {
    "parameters": [_header("Stripe-Signature", "t=<timestamp>,v1=<HMAC of the body>.")],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "type": {"type": "string"},
                        "data": {"type": "object"},
                    },
                }
            }
        },
    },
}
