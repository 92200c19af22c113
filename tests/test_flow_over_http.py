"""The documented flow, over real HTTP against a live server."""
import httpx


def test_documented_flow_end_to_end(live_server, api):
    auth = (api.account.auth_id, api.token)
    base = f"{live_server.url}/v1/Account/{api.account.auth_id}"
    with httpx.Client(auth=auth, timeout=10) as http:
        bot = http.post(f"{base}/Voicebot/", json={"name": "Front desk", "prompt": "Be brief."})
        assert bot.status_code == 201
        bot_id = bot.json()["id"]
        function = http.post(f"{base}/Function/", json={
            "name": "book", "description": "Book a table", "handler_url": "https://example.com/book",
            "userParameters": [{"name": "time", "type": "string", "required": True}],
        })
        assert function.status_code == 201
        document = http.post(f"{base}/Knowledgebase/", files={"file": ("menu.md", b"# Menu\n\nSoup of the day.")})
        assert document.status_code == 201
        assert document.json()["status"] in ("processing", "ready")

        patched = http.patch(f"{base}/Voicebot/{bot_id}", json={
            "function_ids": [function.json()["id"]], "knowledgebase_ids": [document.json()["id"]]})
        assert patched.status_code == 204 and patched.content == b""

        fetched = http.get(f"{base}/Voicebot/{bot_id}/").json()
        assert fetched["function_ids"] == [function.json()["id"]]
        assert fetched["knowledgebase_ids"] == [document.json()["id"]]

        listed = http.get(f"{base}/Voicebot", params={"limit": 10}).json()
        assert [b["id"] for b in listed["voicebots"]] == [bot_id]
        assert listed["meta"]["total_count"] == 1

        assert http.delete(f"{base}/Voicebot/{bot_id}/").status_code == 204
        assert http.get(f"{base}/Voicebot/{bot_id}/").status_code == 404
        assert http.get(f"{base}/Voicebot/", auth=(api.account.auth_id, "wrong")).status_code == 401
