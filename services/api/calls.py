"""Calls: initiate, end, history (issue 5 builds them)."""

from services.api.blueprint import Blueprint

blp = Blueprint("calls", __name__, url_prefix="/calls", description="Pay-per-minute calls")
