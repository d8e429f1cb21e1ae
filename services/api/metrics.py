"""GET /metrics (Prometheus text format) and the request metrics every answer counts.

Under gunicorn each worker process writes its samples to PROMETHEUS_MULTIPROC_DIR and a
scrape of any worker adds up all of them (deploy/gunicorn.conf.py sets the directory up).
Requests are labelled by their route template (`/calls/<call_id>`), never the raw path,
so an id in a URL can't grow the number of series. /metrics is not in the OpenAPI
document and carries no login: keep it off the public ingress (README, Operations).
"""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS, registry

UNMATCHED = "<unmatched>"  # 404s and 405s: one series, whatever path was asked for

blp = Blueprint("metrics", __name__)


@blp.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _count(response: Response) -> Response:
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
    HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
    started = g.pop("metrics_started", None)
    if started is not None:
        HTTP_LATENCY.labels(route, request.method).observe(time.perf_counter() - started)
    return response


def init_metrics(app: Flask) -> None:
    app.register_blueprint(blp)
    # First of all before-request functions, so a request another one answers early
    # (a 415, a 429) is timed too.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)
    app.after_request(_count)
