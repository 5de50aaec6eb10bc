"""marshmallow schemas: the JSON contract of DESIGN §7.  Unknown fields are rejected."""
