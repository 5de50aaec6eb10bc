"""Documenting error responses in the OpenAPI spec, in one line per view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_smorest import Blueprint

from referrals.api.problems import MEDIA_TYPE
from referrals.api.schemas.common import ProblemSchema
from referrals.domain.codes import Status
from referrals.services.outbox import EVENT_TYPES


def problems(blp: Blueprint, *statuses: int) -> Callable[[Any], Any]:
    def decorator(view: Any) -> Any:
        for status in statuses:
            view = blp.alt_response(status, schema=ProblemSchema, content_type=MEDIA_TYPE)(view)
        return view

    return decorator


def webhooks() -> dict[str, Any]:
    """The OpenAPI 3.1 ``webhooks`` entry: what a unit's endpoint receives, and how to
    check it came from us (Standard Webhooks)."""
    header = {"in": "header", "required": True, "schema": {"type": "string"}}
    return {
        "referralEvent": {
            "post": {
                "summary": "A referral on your unit changed (Standard Webhooks)",
                "description": (
                    "Sent by `referrals worker` to the unit's `webhook_url`, at least once. "
                    "Verify `webhook-signature` (`v1,` + base64 HMAC-SHA256 of "
                    "`{webhook-id}.{webhook-timestamp}.{body}`, keyed with the base64-decoded "
                    "part of your `whsec_` secret after the prefix), reject timestamps older "
                    "than a few minutes, and deduplicate on `webhook-id`. The body holds ids "
                    "and codes only: fetch the referral through the API, as yourself (a "
                    "receiving unit gets the decision view until it accepts: two-phase "
                    "disclosure). `referral.consent_withdrawn` tells the receiving unit that "
                    "the sender recorded a withdrawal of the consent the referral rests on "
                    "(`POST /referrals/{id}/withdraw-consent`); an open referral is then "
                    "`cancelled`."
                ),
                "parameters": [
                    {**header, "name": "webhook-id", "description": "Same on every retry."},
                    {**header, "name": "webhook-timestamp", "description": "Unix seconds."},
                    {**header, "name": "webhook-signature", "description": "`v1,<base64>`."},
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["type", "timestamp", "data"],
                                "additionalProperties": False,
                                "properties": {
                                    "type": {"type": "string", "enum": list(EVENT_TYPES)},
                                    "timestamp": {"type": "string", "format": "date-time"},
                                    "data": {
                                        "type": "object",
                                        "required": ["referral_id", "status"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "referral_id": {"type": "string", "format": "uuid"},
                                            "status": {
                                                "type": "string",
                                                "enum": [s.value for s in Status],
                                            },
                                        },
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "2XX": {"description": "Received; anything else is retried with backoff."}
                },
            }
        }
    }
