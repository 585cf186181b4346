"""Property-based API tests: schemathesis over the app's whole OpenAPI document, every check on.

Each operation gets examples, fuzzed cases (positive and negative) and coverage cases, and every
response must pass all of schemathesis' built-in checks: no 5xx, status codes, content types,
headers and bodies as documented, valid input accepted, invalid input rejected, auth enforced.
The run is authenticated twice: as a fresh trader and as an administrator (so the admin routes
get past 403 and are exercised for real).

How it runs:

- One test per operation and role (``schema.parametrize()`` on the document the app serves, read
  at import from an app built in a throw-away directory). Requests go in-process through
  schemathesis' own ASGI client to ``APP``, which forwards to the app the module fixture builds
  on its own data directory; schemathesis starts that app's lifespan on its event-loop thread on
  the first request, and the fixture shuts it down at the end.
- Accounts: a trader (registered) and an admin, made before the app starts by a short-lived app on
  the same data directory, the way ``algotrendy users create --admin`` makes the first admin.
  They log in by email, since fuzzing ``PUT /profile`` renames them.
- Auth: a provider on the schema marks cases as authenticated (schemathesis leaves it off the
  cases that test missing or bad credentials, and never retries a 401: ``retry_on=[]``); the test
  sends the role's real bearer token in its place.
- Operations that end the session they are called with (logout, change-password, revoke a
  session, change a role, deactivate) get a fresh login for every case instead of being excluded;
  all other cases share one session per role, and the fixture checks at the end that those shared
  sessions are still alive, so no case was answered 401 for a reason it was not testing.
- Bounded and reproducible: ``MAX_EXAMPLES`` per operation for fuzzing, Hypothesis deadline off,
  fixed ``SEED`` (schemathesis derives each operation's seed from it), no example database;
  generous rate limits from ``tests.apphelp.make_settings``. About 40 s for both roles.
- ``CONFIG["operations"]`` narrows one check on named operations only: 422 for schema-valid
  content checked against state (by design). The bugs schemathesis found are pinned by the
  regression tests at the end of this module.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from pydantic import EmailStr, TypeAdapter, ValidationError
from schemathesis.python import asgi as st_asgi

from algotrendy.app.asgi import create_app
from algotrendy.core.auth import Role
from algotrendy.services.users.interface import UserCreate
from tests.apphelp import Api, make_settings, remember, running

SEED = 20_240_611
MAX_EXAMPLES = 20

# Where the API answers 422 by design for schema-valid input: the content is checked against
# state the schema cannot express (an unknown, expired or spent one-time token; a wrong 2FA code;
# a time zone that is not in the IANA database). ARCHITECTURE.md: Invalid = 422, "well-formed
# request whose content is wrong". Every other expected status of the check stays as it is.
CONTENT_CHECKED = [
    "GET /api/v1/users/verify-email",
    "POST /api/v1/users/verify-email",
    "POST /api/v1/users/reset-password/confirm",
    "POST /api/v1/users/2fa/verify",
    "POST /api/v1/users/2fa/disable",
    "POST /api/v1/users/2fa/recovery-codes",
    "PUT /api/v1/users/settings",
    # market data: indicator specs, chart-style parameters, CSV rows, exchange names and data
    # columns are checked for meaning, not only for shape
    "GET /api/v1/market-data/{symbol}",
    "POST /api/v1/market-data/batch",
    "POST /api/v1/market-data/transform",
    "POST /api/v1/market-data/import",
    "POST /api/v1/market-data/orderbook/{symbol}/snapshot",
    "POST /api/v1/market-data/realtime/subscribe",
    "GET /api/v1/market-data/quality/{symbol}",
    "GET /api/v1/market-data/blockchain/{chain_id}/{token_address}",
    "GET /api/v1/market-data/wallets/{chain_id}/{wallet_address}",
    # strategies: templates are checked for meaning (indicators, conditions, parameter ranges),
    # and names are unique per owner (409)
    "POST /api/v1/strategies",
    "PUT /api/v1/strategies/{strategy_id}",
    # backtests: templates, parameter values and spaces, date ranges and the bars they select are
    # checked for meaning (no data, too short for the warm-up, too many combinations: 422)
    "POST /api/v1/backtest",
    "POST /api/v1/backtest/optimize",
    "POST /api/v1/backtest/walk-forward",
    "POST /api/v1/backtest/monte-carlo",
    "POST /api/v1/backtest/compare",
    "POST /api/v1/strategies/{strategy_id}/backtest",
    "POST /api/v1/strategies/{strategy_id}/optimize",
    # trading: symbols, venue rules (step, tick, minimum), available prices and risk limits are
    # checked for meaning; portfolio names are unique per owner (409)
    "POST /api/v1/trading/orders",
    "GET /api/v1/trading/orders",  # since/until: a well-formed but impossible date is a 422
    "PATCH /api/v1/trading/orders/{order_id}",
    "POST /api/v1/trading/positions/{position_id}/close",
    "POST /api/v1/risk/pre-trade-check",
    "PUT /api/v1/risk/limits/{portfolio_id}",
    # risk figures: the benchmark must have stored prices in common with the holdings
    "GET /api/v1/risk/portfolio/{portfolio_id}",
    "GET /api/v1/risk/position/{position_id}",
    "POST /api/v1/risk/stress-test",  # a scenario needs one kind; windows must be ordered
    # connections: the venue name and the key are checked at the venue; deployments: symbols,
    # intervals and parameter values are checked against the strategy and the stored bars
    "POST /api/v1/trading/connections",
    "POST /api/v1/strategies/{strategy_id}/deploy",
    "POST /api/v1/portfolio",
    "PUT /api/v1/portfolio/{portfolio_id}",
    "GET /api/v1/portfolio/{portfolio_id}/performance",  # the benchmark needs overlapping prices
    "POST /api/v1/portfolio/{portfolio_id}/rebalance",  # symbols need prices; targets sum to <= 1
    "POST /api/v1/portfolio/allocation",  # symbols need stored prices in common
    "GET /api/v1/portfolio/{portfolio_id}/attribution",  # benchmark weights sum to 1, prices overlap
    # reports: the period must not be in the future or before the portfolio; a benchmark needs prices
    "POST /api/v1/portfolio/{portfolio_id}/report",
    # ml: training settings, feature specs, the symbol's bars and a model's inputs are checked for
    # meaning (unknown feature, too few bars, a horizon the model does not predict: 422)
    "POST /api/v1/ml/models/train",
    "GET /api/v1/ml/models",  # status: one of the statuses or 'active'
    "POST /api/v1/ml/models/{model_id}/predict",
    "POST /api/v1/ml/models/{model_id}/predict/batch",
    "POST /api/v1/ml/registry/{name}/predict",
    "POST /api/v1/ml/features/engineer",
    "POST /api/v1/ml/signals",
]
LONG_TTL = 4 * 3600
POSITIVE_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]

CONFIG: dict[str, Any] = {
    "seed": SEED,
    "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
    "checks": {"enabled": True},  # all of them, explicitly
    "operations": [
        {
            "include-name": CONTENT_CHECKED,
            "checks": {"positive_data_acceptance": {"expected-statuses": POSITIVE_STATUSES}},
        },
    ],
}

# Operations that end the session of the token they are called with (or all of its user's):
# each case gets a session of its own.
SESSION_ENDING = frozenset(
    {
        "POST /auth/logout",
        "POST /api/v1/users/change-password",
        "DELETE /api/v1/users/sessions/{session_id}",
        "PUT /api/v1/users/{user_id}/role",
        "POST /api/v1/users/{user_id}/deactivate",
    }
)


class AppSlot:
    """The ASGI app schemathesis calls: forwards to the app the module fixture builds and starts.

    The schema has to exist at import time (``schema.parametrize`` makes one test per operation
    at collection); the app it talks to, with its data directory and lifespan, belongs to the
    fixture. (``schemathesis.pytest.from_fixture`` would avoid this, but schemathesis 4.32 sets
    ``Function._nodeid``, which pytest 9.2 no longer has.)
    """

    def __init__(self) -> None:
        self.target: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.target is None:
            raise RuntimeError("no app: the `deployment` fixture is not active")
        await self.target(scope, receive, send)


def _openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the app exactly as the tests build it (no lifespan, no I/O but a temp dir)."""
    with tempfile.TemporaryDirectory() as tmp:
        document: dict[str, Any] = create_app(make_settings(Path(tmp))).openapi()
    return document


# `format: email` is read by the server as pydantic's EmailStr (email-validator), which refuses
# RFC-valid addresses at special-use domains (`x@y.test`, `.invalid`, `.localhost`) with 422.
# Valid emails are drawn from what EmailStr accepts; anything else stays negative data.
_EMAIL = TypeAdapter(EmailStr)


def _accepted_email(value: str) -> bool:
    try:
        _EMAIL.validate_python(value)
    except ValidationError:
        return False
    return True


schemathesis.openapi.format("email", st.emails().filter(_accepted_email))

DOCUMENT = _openapi_document()
APP = AppSlot()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config.from_dict(CONFIG))
schema.app = APP


@dataclass(frozen=True)
class Account:
    email: str  # the login name: fuzzing PUT /profile renames the user, the email stays
    password: str


@dataclass
class Deployment:
    app: Any
    accounts: dict[str, Account]
    shared_tokens: dict[str, str] = field(default_factory=dict)

    def login(self, role: str) -> str:
        account = self.accounts[role]
        with st_asgi.get_client(APP) as client:
            r = client.post("/auth/login", json={"username": account.email, "password": account.password})
        assert r.status_code == 200, r.text
        token: str = r.json()["access_token"]
        remember(token, r.json()["refresh_token"])
        return token

    def token_for(self, role: str, operation_label: str) -> str:
        if operation_label in SESSION_ENDING:
            return self.login(role)
        if role not in self.shared_tokens:
            self.shared_tokens[role] = self.login(role)
        return self.shared_tokens[role]


# Coverage-phase cases are built at collection, before any app or token exists, so the provider
# marks "authenticated" with a placeholder and the test sends the real token of the role under
# test in its place. Cases testing missing or bad credentials never get the placeholder.
PLACEHOLDER = "Bearer token-of-the-role-under-test"


@schema.auth(refresh_interval=None, retry_on=[])
class Bearer:
    def get(self, _case: schemathesis.Case, _ctx: schemathesis.AuthContext) -> str:
        return PLACEHOLDER

    def set(self, case: schemathesis.Case, data: str, _ctx: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": data}


async def _make_accounts(data_dir: Path) -> dict[str, Account]:
    # the shared sessions must outlive the whole run, which takes longer than the default
    # 15-minute access token on a loaded machine
    settings = make_settings(data_dir, auth={"access_ttl_seconds": LONG_TTL})
    accounts: dict[str, Account] = {}
    async with running(settings) as api:
        for role in (Role.TRADER, Role.ADMIN):
            username, password = f"st_{role.value}_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
            remember(password, f"{username}@example.com")
            data = UserCreate(email=f"{username}@example.com", username=username, password=password)
            if role is Role.TRADER:
                await api.users.register(data=data, ip="127.0.0.1")
            else:
                await api.users.create_user(data=data, role=role, verified=True)
            accounts[role.value] = Account(f"{username}@example.com", password)
    return accounts


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("schemathesis")
    accounts = asyncio.run(_make_accounts(root))
    app = create_app(make_settings(root, auth={"access_ttl_seconds": LONG_TTL}))
    assert app.openapi() == DOCUMENT, "the app under test serves a different OpenAPI document"
    deployment = Deployment(app=app, accounts=accounts)
    APP.target = app
    try:
        yield deployment
        # The isolation of session-ending operations held: the shared sessions never died, so no
        # case was answered 401 for a reason other than the one it was testing.
        with st_asgi.get_client(APP) as client:
            for role, token in deployment.shared_tokens.items():
                r = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 200, f"the shared {role} session was ended mid-run: {r.text}"
    finally:
        st_asgi.shutdown_lifespans()  # the app's lifespan runs on schemathesis' event-loop thread
        APP.target = None


@pytest.fixture(scope="module", params=["trader", "admin"])
def role(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.mark.slow
@schema.parametrize()
def test_api_conforms_to_its_openapi(case: schemathesis.Case, role: str, deployment: Deployment) -> None:
    headers = None
    if (case.headers or {}).get("Authorization") == PLACEHOLDER:
        # Passed per call, not written into the case: coverage cases are shared by both roles.
        headers = {"Authorization": f"Bearer {deployment.token_for(role, case.operation.label)}"}
    case.call_and_validate(headers=headers)


# ---- regressions: bugs schemathesis found in src/ and that were fixed ----------------------------


async def _auth_headers(api: Api) -> dict[str, str]:
    _user, headers, _password = await api.user()
    return headers


async def test_an_undeclared_method_on_a_users_path_is_405(api: Api) -> None:
    headers = await _auth_headers(api)
    for path in ("/api/v1/users/register", "/api/v1/users/reset-password", "/api/v1/users/change-password"):
        r = await api.client.get(path, headers=headers)
        assert (r.status_code, r.headers.get("allow")) == (405, "POST"), (path, r.status_code, r.text)


async def test_a_405_allows_every_method_of_the_path(api: Api) -> None:
    headers = await _auth_headers(api)
    expected = {
        "/api/v1/users": {"GET", "POST"},
        "/api/v1/users/profile": {"GET", "PUT"},
        "/api/v1/users/settings": {"GET", "PUT"},
        "/api/v1/users/verify-email": {"GET", "POST"},
    }
    for path, methods in expected.items():
        r = await api.client.request("PATCH", path, headers=headers)
        allow = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
        assert (r.status_code, allow) == (405, methods), path


async def test_settings_update_accepts_the_nulls_its_schema_documents(api: Api) -> None:
    headers = await _auth_headers(api)
    properties = api.app.openapi()["components"]["schemas"]["SettingsUpdate"]["properties"]
    for name, body_value in (("currency", None), ("email_notifications", None)):
        nullable = any(s.get("type") == "null" for s in properties[name].get("anyOf", []))
        r = await api.client.put("/api/v1/users/settings", json={name: body_value}, headers=headers)
        assert not nullable or r.status_code == 200, (name, r.status_code, r.text)
