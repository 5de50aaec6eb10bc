"""Documenting error responses in the OpenAPI spec, in one line per view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_smorest import Blueprint

from referrals.api.problems import MEDIA_TYPE
from referrals.api.schemas.common import ProblemSchema


def problems(blp: Blueprint, *statuses: int) -> Callable[[Any], Any]:
    def decorator(view: Any) -> Any:
        for status in statuses:
            view = blp.alt_response(status, schema=ProblemSchema, content_type=MEDIA_TYPE)(view)
        return view

    return decorator
