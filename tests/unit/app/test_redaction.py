"""The log redactor: what must never reach a log line."""

from __future__ import annotations

from algotrendy.app.logging import redact


def _run(**event: object) -> dict:
    return redact(None, "info", dict(event))  # type: ignore[arg-type]


def test_secret_keys_are_dropped_whatever_their_value() -> None:
    out = _run(
        event="x",
        password="hunter2hunter2",
        refresh_token="abc",
        Authorization="Bearer x",
        nested={"api_secret": "s", "ok": 1},
    )
    assert out["password"] == out["refresh_token"] == out["Authorization"] == "[redacted]"
    assert out["nested"] == {"api_secret": "[redacted]", "ok": 1}


def test_tokens_and_emails_inside_text_are_scrubbed() -> None:
    jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    out = _run(
        event=f"GET /verify?token=AbCdEf123456&x=1 by alice@example.com with {jwt}",
        detail="Authorization: Bearer abc.def.ghi",
        hash="$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
    )
    assert "AbCdEf123456" not in out["event"] and "token=[redacted]" in out["event"]
    assert "alice@example.com" not in out["event"] and "a***@example.com" in out["event"]
    assert jwt not in out["event"] and "[jwt]" in out["event"]
    assert "abc.def.ghi" not in out["detail"]
    assert out["hash"] == "[password-hash]"
