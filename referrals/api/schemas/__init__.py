"""marshmallow schemas: the JSON contract of README: API overview.  Unknown fields are rejected."""
