"""Flask extensions, created unbound and initialised by the app factory."""

from __future__ import annotations

from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_smorest import Api

jwt = JWTManager()
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
api = Api()
