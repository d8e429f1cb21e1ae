def test_signup_then_balance(client, signup):
    headers, _ = signup()
    response = client.get("/wallet/balance", headers=headers)
    assert response.status_code == 200
    assert response.get_json() == {
        "balance": 0,
        "available": 0,
        "held": 0,
        "currency": "NGN",
        "restricted": False,
    }
