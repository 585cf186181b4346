"""The strategies REST API as a client sees it: status codes, problem+json naming the field,
permissions, events through the outbox, and the same flow on PostgreSQL + Redis + NATS."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from algotrendy.core.auth import Role
from algotrendy.core.events import Envelope
from tests.apphelp import Api, make_settings, running

PREFIX = "/api/v1/strategies"
PROBLEM_JSON = "application/problem+json"


def template(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "SMA cross",
        "parameters": {
            "fast": {"name": "fast", "type": "int", "min_value": 2, "max_value": 50, "default": 10},
            "slow": {"name": "slow", "type": "int", "min_value": 10, "max_value": 200, "default": 30},
        },
        "entry_conditions": ["sma(close, fast) crosses_above sma(close, slow)"],
        "exit_conditions": ["sma(close, fast) crosses_below sma(close, slow)"],
    }
    data.update(changes)
    return data


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = r.json()
    return body


async def test_crud_with_status_codes(any_api: Api) -> None:
    api = any_api
    _user, headers, _ = await api.user()
    seen: list[Envelope] = []

    async def on_event(envelope: Envelope) -> None:
        seen.append(envelope)

    await api.container.bus.subscribe("strategies.>", group="test-strategies", handler=on_event)

    body = {"name": "Cross", "template": template(), "symbols": [{"symbol": "SPY"}], "tags": ["trend"]}
    r = await api.client.post(PREFIX, json=body, headers=headers)
    assert r.status_code == 201, r.text
    created = r.json()
    sid = created["strategy_id"]
    assert created["id"] == sid and created["version"] == 1 and created["owner"] == _user["id"]
    assert created["symbols"] == [{"symbol": "SPY", "venue": None, "interval": "1d"}]

    r = await api.client.get(f"{PREFIX}/{sid}", headers=headers)
    assert r.status_code == 200 and r.json() == {k: v for k, v in created.items() if k != "strategy_id"}

    dup = problem(await api.client.post(PREFIX, json={**body, "name": "cross"}, headers=headers), 409)
    assert dup["code"] == "strategy_name_taken" and dup["errors"][0]["field"] == "name"
    assert "cross" in dup["detail"]

    changed = template(exit_conditions=["close < sma(close, slow)"])
    r = await api.client.put(
        f"{PREFIX}/{sid}", json={"template": changed, "name": "Cross 2"}, headers=headers
    )
    assert r.status_code == 200 and (r.json()["version"], r.json()["name"]) == (2, "Cross 2")
    r = await api.client.get(f"{PREFIX}/{sid}/versions", headers=headers)
    assert r.status_code == 200 and [v["version"] for v in r.json()] == [2, 1]
    r = await api.client.get(f"{PREFIX}/{sid}/versions/1", headers=headers)
    assert r.status_code == 200 and r.json()["template"]["exit_conditions"] == template()["exit_conditions"]
    problem(await api.client.get(f"{PREFIX}/{sid}/versions/3", headers=headers), 404)
    problem(await api.client.get(f"{PREFIX}/{sid}/versions/0", headers=headers), 422)

    r = await api.client.get(PREFIX, headers=headers, params={"tag": "TREND", "name": "cross"})
    assert r.status_code == 200 and [s["id"] for s in r.json()] == [sid]

    r = await api.client.delete(f"{PREFIX}/{sid}", headers=headers)
    assert r.status_code == 204 and r.content == b""
    missing = problem(await api.client.get(f"{PREFIX}/{sid}", headers=headers), 404)
    assert missing["code"] == "strategy_not_found"
    problem(await api.client.delete(f"{PREFIX}/{sid}", headers=headers), 404)
    problem(await api.client.put(f"{PREFIX}/{sid}", json={"name": "x"}, headers=headers), 404)

    async with asyncio.timeout(15):
        while len(seen) < 3:
            await asyncio.sleep(0.05)
    assert [e.event_type for e in seen] == [
        "strategies.strategy.created",
        "strategies.strategy.updated",
        "strategies.strategy.deleted",
    ]
    assert {e.data["strategy_id"] for e in seen} == {sid}
    assert seen[1].data["new_version"] is True and seen[1].data["version"] == 2
    assert sorted(seen[1].data["changed"]) == ["name", "template"]
    assert all(e.source == "strategies" for e in seen)


async def test_templates_that_cannot_run_are_422_naming_the_field(api: Api) -> None:
    _user, headers, _ = await api.user()
    cases = {
        "unknown indicator": (
            template(entry_conditions=["wobble(close) > 3"]),
            "template.entry_conditions[0]",
        ),
        "unparsable condition": (template(exit_conditions=["close >> 3 ("]), "template.exit_conditions[0]"),
        "bad parameter range": (
            template(
                parameters={
                    "fast": {"name": "fast", "type": "int", "min_value": 9, "max_value": 3, "default": 5},
                    "slow": {"name": "slow", "type": "int", "min_value": 10, "max_value": 200, "default": 30},
                }
            ),
            "template.parameters.fast",
        ),
    }
    for case, (bad, field) in cases.items():
        r = await api.client.post(PREFIX, json={"name": case, "template": bad}, headers=headers)
        body = problem(r, 422)
        assert body["code"] == "invalid_template", (case, body)
        assert body["errors"][0]["field"].startswith(field), (case, body)
        assert body["detail"].startswith(field), (case, body)
        r = await api.client.post(f"{PREFIX}/validate", json={"template": bad}, headers=headers)
        assert r.status_code == 200 and r.json()["ok"] is False, (case, r.text)
        assert r.json()["errors"][0]["field"] == body["errors"][0]["field"]
    r = await api.client.post(f"{PREFIX}/validate", json={"template": template()}, headers=headers)
    assert r.status_code == 200 and r.json() == {"ok": True, "errors": []}
    assert (await api.client.get(PREFIX, headers=headers)).json() == []


async def test_shape_errors_and_privileged_fields_are_422(api: Api) -> None:
    _user, headers, _ = await api.user()
    for extra in ({"owner": str(uuid.uuid4())}, {"version": 7}, {"id": str(uuid.uuid4())}):
        body = problem(
            await api.client.post(
                PREFIX, json={"name": "x", "template": template(), **extra}, headers=headers
            ),
            422,
        )
        assert [e["type"] for e in body["errors"]] == ["extra_forbidden"], body
    body = problem(
        await api.client.post(
            PREFIX, json={"name": "x", "template": {**template(), "params": {}}}, headers=headers
        ),
        422,
    )
    assert body["errors"][0]["field"] == "body.template.params"
    body = problem(await api.client.post(PREFIX, json={"name": "x"}, headers=headers), 422)
    assert body["code"] == "template_required" and body["errors"][0]["field"] == "template"
    body = problem(await api.client.post(PREFIX, json={"name": "x", "builtin": "nope"}, headers=headers), 422)
    assert body["errors"][0]["field"] == "builtin"
    body = problem(
        await api.client.post(
            PREFIX,
            json={"name": "x", "builtin": "sma_crossover", "parameters": {"zzz": 3}},
            headers=headers,
        ),
        422,
    )
    assert body["errors"][0]["field"] == "parameters.zzz"
    r = await api.client.post(PREFIX, json={"name": "x", "builtin": "sma_crossover"}, headers=headers)
    assert r.status_code == 201 and r.json()["builtin"] == "sma_crossover"
    sid = r.json()["id"]
    body = problem(await api.client.put(f"{PREFIX}/{sid}", json={"name": None}, headers=headers), 422)
    assert body["errors"][0]["field"] == "body.name"
    assert (await api.client.get(PREFIX, headers=headers)).json()[0]["name"] == "x"


async def test_viewers_cannot_see_or_write_strategies(api: Api) -> None:
    _viewer, headers, _ = await api.user(Role.VIEWER)
    for method, url, body in (
        ("GET", PREFIX, None),
        ("GET", f"{PREFIX}/templates", None),
        ("POST", f"{PREFIX}/validate", {"template": template()}),
        ("POST", PREFIX, {"name": "x", "template": template()}),
        ("GET", f"{PREFIX}/{uuid.uuid4()}", None),
    ):
        r = await api.client.request(method, url, json=body, headers=headers)
        assert problem(r, 403)["code"] == "permission_denied", (method, url)


async def test_other_paths_under_the_prefix_are_left_free(api: Api) -> None:
    """``/api/v1/strategies/<not a uuid>/...`` matches no strategies route (the backtest service
    adds ``/api/v1/strategies/backtest/{id}/results`` under the same prefix)."""
    _user, headers, _ = await api.user()
    for path in (
        "/backtest/abc/results",
        "/not-a-uuid",
        "/not-a-uuid/versions",
        f"/{uuid.uuid4()}/versions/x",
    ):
        r = await api.client.get(PREFIX + path, headers=headers)
        assert problem(r, 404)["code"] == "not_found", (path, r.text)


async def test_builtin_templates_are_listed(api: Api) -> None:
    _user, headers, _ = await api.user()
    r = await api.client.get(f"{PREFIX}/templates", headers=headers)
    assert r.status_code == 200
    slugs = [t["slug"] for t in r.json()]
    assert "sma_crossover" in slugs and "momentum_rotation" in slugs and len(slugs) == 8
    rotation = next(t for t in r.json() if t["slug"] == "momentum_rotation")
    assert rotation["kind"] == "rotation" and rotation["template"]["rotation"] is not None


async def test_limits_per_owner_and_per_strategy_are_409(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, strategies={"max_per_owner": 2, "max_versions": 2})
    async with running(settings) as api:
        _user, headers, _ = await api.user()
        ids = []
        for name in ("one", "two"):
            r = await api.client.post(PREFIX, json={"name": name, "template": template()}, headers=headers)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        full = problem(
            await api.client.post(PREFIX, json={"name": "three", "template": template()}, headers=headers),
            409,
        )
        assert full["code"] == "strategy_limit"
        r = await api.client.put(f"{PREFIX}/{ids[0]}", json={"parameters": {"fast": 5}}, headers=headers)
        assert r.status_code == 200 and r.json()["version"] == 2
        more = problem(
            await api.client.put(f"{PREFIX}/{ids[0]}", json={"parameters": {"fast": 6}}, headers=headers), 409
        )
        assert more["code"] == "version_limit"
        r = await api.client.get(f"{PREFIX}/{ids[0]}", headers=headers)
        assert r.json()["version"] == 2 and r.json()["template"]["parameters"]["fast"]["default"] == 5
        assert (await api.client.delete(f"{PREFIX}/{ids[1]}", headers=headers)).status_code == 204
        r = await api.client.post(PREFIX, json={"name": "three", "template": template()}, headers=headers)
        assert r.status_code == 201
