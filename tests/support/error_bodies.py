"""What every refusal of the gateway looks like: a JSON error body of known fields."""

from __future__ import annotations

from shared.errors import ErrorCode


def assert_error(response, status: int) -> dict:
    """The response is `status` with the gateway's error body (never an HTML page or a
    traceback); returns the body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["statusCode"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    assert body["code"] in set(ErrorCode)
    assert set(body) <= {"statusCode", "error", "code", "message", "details"}
    if "details" in body:
        assert isinstance(body["details"], dict)
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "<html" not in text.lower()
    return body
