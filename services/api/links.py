"""The `Link: <...>; rel="next"` header that carries the next page's cursor, so list
bodies stay plain JSON arrays as in the original API."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import request


def next_link(cursor: str | None) -> dict[str, str]:
    if cursor is None:
        return {}
    query = {key: value for key, value in request.args.items() if key != "cursor"}
    query["cursor"] = cursor
    return {"Link": f'<{request.base_url}?{urlencode(query)}>; rel="next"'}
