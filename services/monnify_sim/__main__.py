"""Run the simulator: `python -m services.monnify_sim`. One process, one thread per
request, because its state lives in memory. Configuration: services/monnify_sim/config.py.
"""

from __future__ import annotations

import sys

from werkzeug.serving import make_server

from services.monnify_sim.app import create_app
from services.monnify_sim.config import load_sim_config
from shared.logs import configure_logging, get_logger
from shared.settings import ConfigError, load_settings


def main() -> int:
    try:
        settings = load_settings()
        config = load_sim_config(settings)
    except ConfigError as exc:
        print(f"monnify-sim: {exc}", file=sys.stderr)
        return 2
    configure_logging(json=settings.log_json, level=settings.log_level)
    app = create_app(config)
    server = make_server(config.host, config.port, app, threaded=True)
    get_logger("monnify_sim").info(
        "sim.listening", url=f"http://{config.host}:{config.port}", webhook_url=config.webhook_url
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.extensions["monnify_sim"].dispatcher.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
