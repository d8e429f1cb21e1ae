"""A JWT manager that verifies a token once per process, not on every request.

flask-jwt-extended parses each token four times a request (twice without the signature,
twice with it), and pyjwt parses in pure Python: that was about a third of the CPU of
an authenticated read. The claims of a token whose signature checked out are kept, keyed
by the whole token (signature included, so only those exact bytes hit), and given back
while the token has not expired; past `exp` it is decoded again, which answers the usual
"expired". Revocation and disabled users are checked on every request after this, as
before. One cache per app: two apps in a process (the tests) may have different secrets.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from flask_jwt_extended import JWTManager

MAX_TOKENS = 4096  # per process; about a token per active user of this worker


class CachingJWTManager(JWTManager):
    def __init__(self, app: Any = None, add_context_processor: bool = False) -> None:
        self._verified: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        super().__init__(app, add_context_processor)

    def _decode_jwt_from_config(
        self, encoded_token: str, csrf_value: Any = None, allow_expired: bool = False
    ) -> dict:
        if csrf_value or allow_expired:  # not how this API uses tokens: no shortcut
            return super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        with self._lock:
            claims = self._verified.get(encoded_token)
        if claims is None or claims["exp"] <= time.time():
            claims = super()._decode_jwt_from_config(encoded_token)
            if "exp" in claims:  # a token that never expires is never kept
                self._remember(encoded_token, claims)
        return dict(claims)

    def _remember(self, encoded_token: str, claims: dict[str, Any]) -> None:
        with self._lock:
            if len(self._verified) >= MAX_TOKENS:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[encoded_token] = claims
