"""Path segments the API routes on, each as exact as the ids it names.

A unit id is a slug and a routing rule id a UUID: a segment of any other shape names
nothing and is answered 404 by the router, before a view (and its audit event) sees it.
That also keeps ``/routing-rules/versions`` from being read as a rule id.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.routing import BaseConverter

# The same shape as the SLUG schema validator, in ECMA-262 syntax for the spec.
SLUG_PATTERN = "^[a-z0-9][a-z0-9-]{0,63}$"


class SlugConverter(BaseConverter):
    regex = "[a-z0-9][a-z0-9-]{0,63}"


def _slug_schema(_converter: BaseConverter) -> dict[str, Any]:
    return {"type": "string", "pattern": SLUG_PATTERN, "maxLength": 64}


def init_app(app: Flask, api: Any) -> None:
    """Before any blueprint is registered: routes are compiled with the converters."""
    app.url_map.converters["slug"] = SlugConverter
    api.register_converter(SlugConverter, _slug_schema)
