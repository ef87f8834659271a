def test_export_returns_sample_articles(client, seeded):
    response = client.get("/api/export?limit=3", headers={"X-API-Key": "key_DEF456"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "success"
    assert len(body["data"]) == 3
