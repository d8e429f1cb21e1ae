"""Payments: the Monnify webhook intake (issue 4 builds it)."""

from services.api.blueprint import Blueprint

blp = Blueprint("payments", __name__, url_prefix="/payments", description="Monnify webhooks")
