"""Query fields of the listing routes: how many items, and where the page starts."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


def page_limit(default: int, maximum: int) -> fields.Integer:
    """How many items a page holds, 1 to `maximum`; a query string gives it as text."""
    return fields.Integer(
        load_default=default, validate=validate.Range(min=1, max=maximum), strict=False
    )


class PageQuerySchema(Schema):
    """Keyset pagination (shared.pagination): the cursor comes from the previous page's Link."""

    limit = page_limit(default=20, maximum=100)
    cursor = fields.String(validate=validate.Length(max=200))
