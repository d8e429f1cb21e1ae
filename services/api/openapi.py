"""The committed OpenAPI document (docs/openapi.json), for client generators: written by
`make openapi` (`python -m services.api.openapi`) from what the app serves at
/openapi.json, and kept equal to it by a test.

Rendered canonically (sorted keys, two-space indent, amounts exact) so a diff of the
file shows only what changed in the contract.
"""

from __future__ import annotations

import sys
from pathlib import Path

import simplejson
from flask import Flask

from services.api.app import create_app
from shared.exact_json import loads_exact

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def render(app: Flask) -> str:
    served = app.test_client().get(app.config["OPENAPI_URL_PREFIX"] + "openapi.json")
    document = loads_exact(served.get_data())
    return simplejson.dumps(document, indent=2, sort_keys=True, use_decimal=True) + "\n"


def _app() -> Flask:
    """The app as `make run` builds it, without touching a database: the document
    depends on no server."""
    return create_app(check_database=False)


def main(argv: list[str] | None = None) -> int:
    target = Path(argv[0]) if argv else COMMITTED
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(_app()))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
