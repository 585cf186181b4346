"""``StrategiesApi`` on ``StrategiesService`` (in-process) and on ``StrategiesClient`` (HTTP)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from algotrendy.core.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from algotrendy.engine.template import StrategyTemplate
from algotrendy.services.strategies.client import StrategiesClient
from algotrendy.services.strategies.interface import (
    StrategiesApi,
    StrategyCreate,
    StrategyStatus,
    StrategyUpdate,
    UniverseEntry,
)
from tests.apphelp import Api

ForToken = Callable[[str], StrategiesApi]

BUILTINS = {
    "sma_crossover",
    "ema_crossover",
    "rsi_mean_reversion",
    "macd_signal",
    "bollinger_breakout",
    "bollinger_reversion",
    "donchian_breakout",
    "momentum_rotation",
}


def sma_cross(**changes: Any) -> StrategyTemplate:
    data: dict[str, Any] = {
        "name": "SMA cross",
        "description": "fast SMA over slow SMA",
        "parameters": {
            "fast": {"name": "fast", "type": "int", "min_value": 2, "max_value": 50, "default": 10},
            "slow": {"name": "slow", "type": "int", "min_value": 10, "max_value": 200, "default": 30},
        },
        "entry_conditions": ["sma(close, fast) crosses_above sma(close, slow)"],
        "exit_conditions": ["sma(close, fast) crosses_below sma(close, slow)"],
    }
    data.update(changes)
    return StrategyTemplate.model_validate(data)


@pytest.fixture(params=["service", "client"])
def strategies_for(request: pytest.FixtureRequest, api: Api, http: httpx.AsyncClient) -> ForToken:
    """``strategies_for(access_token)``: the API as the token's owner, on either side."""
    if request.param == "service":
        service: StrategiesApi = api.app.state.services["strategies"]
        return lambda _token: service
    return lambda token: StrategiesClient(http, token=token)


async def _person(api: Api, strategies_for: ForToken) -> tuple[uuid.UUID, StrategiesApi]:
    user, headers, _ = await api.user()
    return uuid.UUID(user["id"]), strategies_for(headers["Authorization"].removeprefix("Bearer "))


def _create(name: str = "Trend one", **fields: Any) -> StrategyCreate:
    fields.setdefault("template", sma_cross())
    return StrategyCreate(name=name, **fields)


async def test_create_get_list_and_delete(api: Api, strategies_for: ForToken) -> None:
    owner, s = await _person(api, strategies_for)
    created = await s.create(
        owner=owner,
        data=_create(
            description="my first",
            symbols=[
                UniverseEntry(symbol="SPY"),
                UniverseEntry(symbol="BTC/USDT", venue="BINANCE", interval="1h"),
            ],
            tags=["Trend", "daily", "trend"],
        ),
    )
    assert (created.owner, created.name, created.version, created.status) == (
        owner,
        "Trend one",
        1,
        StrategyStatus.ACTIVE,
    )
    assert created.template == sma_cross() and created.builtin is None
    assert created.tags == ["trend", "daily"]
    assert [(e.symbol, e.venue, e.interval) for e in created.symbols] == [
        ("SPY", None, "1d"),
        ("BTC/USDT", "BINANCE", "1h"),
    ]
    assert created.created_at == created.updated_at
    assert await s.get(owner=owner, strategy_id=created.id) == created
    assert await s.list(owner=owner) == [created]

    await s.delete(owner=owner, strategy_id=created.id)
    with pytest.raises(NotFound) as gone:
        await s.get(owner=owner, strategy_id=created.id)
    assert gone.value.code == "strategy_not_found"
    with pytest.raises(NotFound):
        await s.versions(owner=owner, strategy_id=created.id)
    with pytest.raises(NotFound):
        await s.delete(owner=owner, strategy_id=created.id)
    assert await s.list(owner=owner) == []


async def test_create_from_a_builtin_with_parameter_defaults(api: Api, strategies_for: ForToken) -> None:
    owner, s = await _person(api, strategies_for)
    (builtin,) = [t for t in await s.templates() if t.slug == "sma_crossover"]
    name, spec = next((n, p) for n, p in builtin.template.parameters.items() if p.type == "int")
    assert spec.min_value is not None
    value = int(spec.min_value)
    created = await s.create(
        owner=owner,
        data=StrategyCreate(name="From builtin", builtin="sma_crossover", parameters={name: value}),
    )
    assert created.builtin == "sma_crossover"
    assert created.template.parameters[name].default == value
    rest = {n: p for n, p in created.template.parameters.items() if n != name}
    assert rest == {n: p for n, p in builtin.template.parameters.items() if n != name}

    with pytest.raises(Invalid) as unknown:
        await s.create(owner=owner, data=StrategyCreate(name="x", builtin="no_such_thing"))
    assert (unknown.value.field, unknown.value.code) == ("builtin", "unknown_builtin")
    with pytest.raises(Invalid) as nope:
        await s.create(
            owner=owner, data=StrategyCreate(name="x", builtin="sma_crossover", parameters={"nope": 1})
        )
    assert (nope.value.field, nope.value.code) == ("parameters.nope", "unknown_parameter")
    with pytest.raises(Invalid) as out_of_range:
        await s.create(
            owner=owner,
            data=StrategyCreate(
                name="x", builtin="sma_crossover", parameters={name: int(spec.max_value or 0) + 1}
            ),
        )
    assert out_of_range.value.field == f"parameters.{name}"
    with pytest.raises(Invalid) as neither:
        await s.create(owner=owner, data=StrategyCreate(name="x"))
    assert (neither.value.field, neither.value.code) == ("template", "template_required")
    with pytest.raises(Invalid) as both:
        await s.create(owner=owner, data=_create("x", builtin="sma_crossover"))
    assert both.value.field == "template"
    assert [x.name for x in await s.list(owner=owner)] == ["From builtin"]


async def test_templates_are_the_builtins_and_each_validates(api: Api, strategies_for: ForToken) -> None:
    _owner, s = await _person(api, strategies_for)
    templates = await s.templates()
    assert {t.slug for t in templates} == BUILTINS
    assert {t.slug for t in templates if t.kind == "rotation"} == {"momentum_rotation"}
    for t in templates:
        assert (await s.validate(template=t.template)).ok, t.slug


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"entry_conditions": ["frobnicate(close, 3) > 1"]}, "template.entry_conditions[0]"),
        ({"exit_conditions": ["sma(close, fast) crosses_below"]}, "template.exit_conditions[0]"),
        (
            {
                "parameters": {
                    "fast": {"name": "fast", "type": "int", "min_value": 50, "max_value": 2, "default": 10},
                    "slow": {"name": "slow", "type": "int", "min_value": 10, "max_value": 200, "default": 30},
                }
            },
            "template.parameters.fast",
        ),
    ],
    ids=["unknown-indicator", "unparsable-condition", "bad-parameter-range"],
)
async def test_a_template_that_cannot_run_is_refused_naming_the_field(
    api: Api, strategies_for: ForToken, changes: dict[str, Any], field: str
) -> None:
    owner, s = await _person(api, strategies_for)
    bad = sma_cross(**changes)
    with pytest.raises(Invalid) as refused:
        await s.create(owner=owner, data=_create(template=bad))
    assert refused.value.field is not None and refused.value.field.startswith(field), refused.value.field
    assert refused.value.code == "invalid_template"
    report = await s.validate(template=bad)
    assert not report.ok and report.errors[0].field == refused.value.field
    assert await s.list(owner=owner) == []  # nothing was saved
    assert (await s.validate(template=sma_cross())).ok


async def test_names_are_unique_per_owner_in_any_case(api: Api, strategies_for: ForToken) -> None:
    owner, s = await _person(api, strategies_for)
    other, s2 = await _person(api, strategies_for)
    first = await s.create(owner=owner, data=_create("Alpha"))
    with pytest.raises(Conflict) as taken:
        await s.create(owner=owner, data=_create("ALPHA"))
    assert (taken.value.field, taken.value.code) == ("name", "strategy_name_taken")
    assert "ALPHA" in taken.value.detail
    await s2.create(owner=other, data=_create("Alpha"))  # another owner may use it
    second = await s.create(owner=owner, data=_create("Beta"))
    with pytest.raises(Conflict):
        await s.update(owner=owner, strategy_id=second.id, data=StrategyUpdate(name="alpha"))
    renamed = await s.update(owner=owner, strategy_id=first.id, data=StrategyUpdate(name="ALPHA"))
    assert renamed.name == "ALPHA" and renamed.version == 1


async def test_a_changed_template_is_a_new_version_and_old_versions_stay(
    api: Api, strategies_for: ForToken
) -> None:
    owner, s = await _person(api, strategies_for)
    v1 = await s.create(owner=owner, data=_create())
    same = await s.update(owner=owner, strategy_id=v1.id, data=StrategyUpdate(template=sma_cross()))
    assert same == v1  # nothing changed, no new version
    described = await s.update(
        owner=owner, strategy_id=v1.id, data=StrategyUpdate(description="renamed", tags=["x"])
    )
    assert (described.version, described.description, described.tags) == (1, "renamed", ["x"])
    faster = sma_cross(name="SMA cross, faster exit", exit_conditions=["close < sma(close, fast)"])
    v2 = await s.update(owner=owner, strategy_id=v1.id, data=StrategyUpdate(template=faster))
    assert (v2.version, v2.template, v2.description) == (2, faster, "renamed")
    v3 = await s.update(owner=owner, strategy_id=v1.id, data=StrategyUpdate(parameters={"fast": 5}))
    assert v3.version == 3 and v3.template.parameters["fast"].default == 5
    assert v3.template.exit_conditions == faster.exit_conditions

    versions = await s.versions(owner=owner, strategy_id=v1.id)
    assert [v.version for v in versions] == [3, 2, 1]
    assert [v.template for v in versions] == [v3.template, faster, sma_cross()]
    assert [v.version for v in await s.versions(owner=owner, strategy_id=v1.id, limit=1, offset=1)] == [2]
    one = await s.version(owner=owner, strategy_id=v1.id, version=1)
    assert (one.strategy_id, one.version, one.template) == (v1.id, 1, sma_cross())
    with pytest.raises(NotFound) as missing:
        await s.version(owner=owner, strategy_id=v1.id, version=4)
    assert missing.value.code == "strategy_version_not_found"
    with pytest.raises(Invalid) as zero:
        await s.version(owner=owner, strategy_id=v1.id, version=0)
    assert zero.value.field == "version"

    with pytest.raises(Invalid) as bad:
        await s.update(
            owner=owner,
            strategy_id=v1.id,
            data=StrategyUpdate(template=sma_cross(entry_conditions=["close >"])),
        )
    assert bad.value.field == "template.entry_conditions[0]"
    archived = await s.update(
        owner=owner, strategy_id=v1.id, data=StrategyUpdate(status=StrategyStatus.ARCHIVED)
    )
    assert archived.version == 3 and archived.status is StrategyStatus.ARCHIVED


async def test_list_filters_and_pages(api: Api, strategies_for: ForToken) -> None:
    owner, s = await _person(api, strategies_for)
    for name, tags in (
        ("Trend 100%", ["trend"]),
        ("Mean reversion", ["mr", "daily"]),
        ("Trend_2", ["trend", "daily"]),
    ):
        await s.create(owner=owner, data=_create(name, tags=tags))
    names = lambda items: [x.name for x in items]  # noqa: E731
    assert names(await s.list(owner=owner)) == ["Trend_2", "Mean reversion", "Trend 100%"]
    assert names(await s.list(owner=owner, name="TREND")) == ["Trend_2", "Trend 100%"]
    assert names(await s.list(owner=owner, name="%")) == ["Trend 100%"]  # LIKE wildcards are literal
    assert names(await s.list(owner=owner, name="_")) == ["Trend_2"]
    assert names(await s.list(owner=owner, tag="daily")) == ["Trend_2", "Mean reversion"]
    assert names(await s.list(owner=owner, tag="Trend", name="2")) == ["Trend_2"]
    assert names(await s.list(owner=owner, limit=1, offset=1)) == ["Mean reversion"]
    assert await s.list(owner=owner, status=StrategyStatus.ARCHIVED) == []
    with pytest.raises(Invalid) as bad_limit:
        await s.list(owner=owner, limit=0)
    assert bad_limit.value.field == "limit"


async def test_another_owners_strategy_is_not_found_and_unchanged(api: Api, strategies_for: ForToken) -> None:
    owner, s = await _person(api, strategies_for)
    intruder, t = await _person(api, strategies_for)
    mine = await s.create(owner=owner, data=_create())
    for call in (
        t.get(owner=intruder, strategy_id=mine.id),
        t.update(owner=intruder, strategy_id=mine.id, data=StrategyUpdate(name="stolen")),
        t.versions(owner=intruder, strategy_id=mine.id),
        t.version(owner=intruder, strategy_id=mine.id, version=1),
        t.delete(owner=intruder, strategy_id=mine.id),
    ):
        with pytest.raises(NotFound) as hidden:
            await call
        assert hidden.value.code == "strategy_not_found"
    assert await t.list(owner=intruder) == []
    assert await s.get(owner=owner, strategy_id=mine.id) == mine


async def test_client_refuses_other_owners_and_maps_errors(api: Api, http: httpx.AsyncClient) -> None:
    user, headers, _ = await api.user()
    owner = uuid.UUID(user["id"])
    client = StrategiesClient(http, token=headers["Authorization"].removeprefix("Bearer "))
    with pytest.raises(Forbidden) as other:
        await client.list(owner=uuid.uuid4())
    assert other.value.code == "not_token_owner"
    with pytest.raises(Invalid) as bad_limit:
        await client.list(owner=owner, limit=500)
    assert (bad_limit.value.code, bad_limit.value.field) == ("validation_error", "limit")
    with pytest.raises(Unauthorized) as anonymous:
        await StrategiesClient(http).templates()
    assert anonymous.value.code == "missing_token"
