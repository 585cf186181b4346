"""``StrategiesService``: the ``StrategiesApi`` use cases over the strategies tables.

Every write is one transaction together with its outbox event (``strategies.strategy.*``).
A template is checked with ``engine.signals.validate_template`` before it is stored, so a stored
strategy can always run; its error names the field (``template.entry_conditions[0]``).
"""

from __future__ import annotations

import builtins
import math
import uuid
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import Conflict, Invalid, NotFound
from algotrendy.core.ids import new_id
from algotrendy.db.engine import begin_serialized
from algotrendy.db.outbox import Outbox
from algotrendy.engine.builtin import BUILTIN_TEMPLATES
from algotrendy.engine.signals import resolve_params, validate_template
from algotrendy.engine.template import ParamValue, StrategyTemplate, TemplateError
from algotrendy.services.strategies import store
from algotrendy.services.strategies.interface import (
    StrategyCreate,
    StrategyCreated,
    StrategyDeleted,
    StrategyRead,
    StrategyStatus,
    StrategyUpdate,
    StrategyUpdated,
    TemplateIssue,
    TemplateRead,
    ValidationReport,
    VersionRead,
)
from algotrendy.services.strategies.settings import StrategiesSettings

log = structlog.get_logger(__name__)

MAX_PAGE = 200


def _not_found(strategy_id: uuid.UUID) -> NotFound:
    return NotFound(f"strategy {strategy_id} not found", code="strategy_not_found")


def _check_plain(value: Any, field: str) -> None:
    """Refuse what JSON columns cannot keep faithfully: NaN/infinity and NUL characters."""
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid(f"{field} must be a finite number", field=field, code="invalid_template")
    if isinstance(value, str) and "\x00" in value:
        raise Invalid(f"{field} must not contain NUL characters", field=field, code="invalid_template")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, field)
            _check_plain(item, f"{field}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{field}[{i}]")


def _template_invalid(exc: TemplateError) -> Invalid:
    field = f"template.{exc.field}" if exc.field else "template"
    return Invalid(f"{field}: {exc}", field=field, code="invalid_template")


def with_defaults(template: StrategyTemplate, overrides: dict[str, ParamValue]) -> StrategyTemplate:
    """``template`` with the parameter defaults in ``overrides`` (each checked against its spec)."""
    if not overrides:
        return template
    _check_plain(overrides, "parameters")
    for name in overrides:
        if name not in template.parameters:
            known = ", ".join(template.parameters) or "none"
            raise Invalid(
                f"parameters.{name}: the template has no parameter {name!r} (it has: {known})",
                field=f"parameters.{name}",
                code="unknown_parameter",
            )
    try:
        resolved = resolve_params(template, overrides)
    except TemplateError as exc:
        # "params.<name>" is a value given here; any other field is the template's own
        field = exc.field or "template.parameters"
        if field.startswith("params."):
            field = "parameters." + field.removeprefix("params.")
        elif not field.startswith("template"):
            field = f"template.{field}"
        raise Invalid(f"{field}: {exc}", field=field, code="invalid_parameter") from None
    data = template.model_dump()
    for name, value in overrides.items():
        data["parameters"][name]["default"] = resolved.get(name, value)
    return StrategyTemplate.model_validate(data)


def checked(template: StrategyTemplate, overrides: dict[str, ParamValue] | None = None) -> StrategyTemplate:
    """The template to store: overrides applied, validated; ``Invalid`` naming the field."""
    _check_plain(template.model_dump(), "template")
    result = with_defaults(template, overrides or {})
    try:
        validate_template(result)
    except TemplateError as exc:
        raise _template_invalid(exc) from None
    return result


class StrategiesService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        settings: StrategiesSettings,
        outbox: Outbox,
    ) -> None:
        self._db = sessions
        self._clock = clock
        self._s = settings
        self._outbox = outbox

    # --- built-ins and dry validation --------------------------------------------------------------

    async def templates(self) -> builtins.list[TemplateRead]:
        return [
            TemplateRead(
                slug=slug,
                name=t.name,
                description=t.description,
                kind="rotation" if t.is_rotation else "signal",
                template=t,
            )
            for slug, t in BUILTIN_TEMPLATES.items()
        ]

    async def validate(
        self, *, template: StrategyTemplate, parameters: dict[str, ParamValue] | None = None
    ) -> ValidationReport:
        try:
            checked(template, parameters)
        except Invalid as exc:
            field = exc.field or "template"
            message = exc.detail.removeprefix(f"{field}: ")
            return ValidationReport(ok=False, errors=[TemplateIssue(field=field, message=message)])
        return ValidationReport(ok=True)

    # --- strategies --------------------------------------------------------------------------------

    def _initial_template(self, data: StrategyCreate) -> StrategyTemplate:
        template = data.template
        if data.builtin is not None:
            if template is not None:
                raise Invalid(
                    "give either a template or the slug of a built-in template (builtin), not both",
                    field="template",
                    code="template_or_builtin",
                )
            template = BUILTIN_TEMPLATES.get(data.builtin)
            if template is None:
                raise Invalid(
                    f"builtin: no built-in template {data.builtin!r} "
                    f"(there are: {', '.join(BUILTIN_TEMPLATES)})",
                    field="builtin",
                    code="unknown_builtin",
                )
        if template is None:
            raise Invalid(
                "give a template, or the slug of a built-in template (builtin)",
                field="template",
                code="template_required",
            )
        return checked(template, data.parameters)

    async def create(self, *, owner: uuid.UUID, data: StrategyCreate) -> StrategyRead:
        template = self._initial_template(data)
        now = self._clock.now()
        values: dict[str, Any] = {
            "id": new_id(),
            "owner_id": owner,
            "name": data.name,
            "name_norm": store.norm(data.name),
            "description": data.description,
            "builtin": data.builtin,
            "version": 1,
            "symbols": [s.model_dump(mode="json") for s in data.symbols],
            "status": StrategyStatus.ACTIVE.value,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with begin_serialized(self._db) as session:
                if await store.count_for_owner(session, owner) >= self._s.max_per_owner:
                    raise Conflict(
                        f"you have {self._s.max_per_owner} strategies, the most allowed; delete some first",
                        code="strategy_limit",
                    )
                if await store.name_taken(session, owner=owner, name=data.name):
                    raise self._name_taken(data.name)
                await store.insert_strategy(
                    session, values, template=template.model_dump(mode="json"), tag_list=data.tags
                )
                await self._outbox.add(
                    session,
                    StrategyCreated(
                        strategy_id=values["id"],
                        owner_id=owner,
                        name=data.name,
                        version=1,
                        builtin=data.builtin,
                    ),
                )
        except IntegrityError:
            raise self._name_taken(data.name) from None
        log.info("strategies.created", strategy_id=str(values["id"]), builtin=data.builtin)
        return store.to_read({**values, "template": template.model_dump(mode="json")}, data.tags)

    @staticmethod
    def _name_taken(name: str) -> Conflict:
        return Conflict(
            f"you already have a strategy named {name!r}", code="strategy_name_taken", field="name"
        )

    async def get(self, *, owner: uuid.UUID, strategy_id: uuid.UUID) -> StrategyRead:
        async with self._db() as session:
            return await self._read(session, owner, strategy_id)

    async def _read(
        self, session: AsyncSession, owner: uuid.UUID, strategy_id: uuid.UUID, *, lock: bool = False
    ) -> StrategyRead:
        row = await store.fetch(session, strategy_id, owner=owner, lock=lock)
        if row is None:
            raise _not_found(strategy_id)
        tag_map = await store.tags_of(session, [strategy_id])
        return store.to_read(row, tag_map[strategy_id])

    async def list(
        self,
        *,
        owner: uuid.UUID,
        name: str | None = None,
        tag: str | None = None,
        status: StrategyStatus | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[StrategyRead]:
        if not 1 <= limit <= MAX_PAGE:
            raise Invalid(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        if offset < 0:
            raise Invalid("offset must not be negative", field="offset")
        async with self._db() as session:
            rows = await store.list_for_owner(
                session,
                owner=owner,
                name=name,
                tag=tag,
                status=StrategyStatus(status) if status is not None else None,
                limit=limit,
                offset=offset,
            )
            tag_map = await store.tags_of(session, [r.id for r in rows])
        return [store.to_read(r, tag_map[r.id]) for r in rows]

    async def update(self, *, owner: uuid.UUID, strategy_id: uuid.UUID, data: StrategyUpdate) -> StrategyRead:
        given = data.model_fields_set
        try:
            async with begin_serialized(self._db) as session:
                current = await self._read(session, owner, strategy_id, lock=True)
                values, changed = await self._changes(session, current, data, given)
                if not changed:
                    return current
                values["updated_at"] = self._clock.now()
                await store.change(session, strategy_id, values)
                await self._outbox.add(
                    session,
                    StrategyUpdated(
                        strategy_id=strategy_id,
                        owner_id=owner,
                        version=values.get("version", current.version),
                        new_version="template" in changed,
                        changed=changed,
                    ),
                )
                result = await self._read(session, owner, strategy_id)
        except IntegrityError:
            raise self._name_taken(data.name or "") from None
        log.info("strategies.updated", strategy_id=str(strategy_id), changed=changed, version=result.version)
        return result

    async def _changes(
        self, session: AsyncSession, current: StrategyRead, data: StrategyUpdate, given: set[str]
    ) -> tuple[dict[str, Any], builtins.list[str]]:
        values: dict[str, Any] = {}
        changed: list[str] = []
        if "template" in given or "parameters" in given:
            base = data.template if data.template is not None else current.template
            template = checked(base, data.parameters)
            if template != current.template:
                version = current.version + 1
                if version > self._s.max_versions:
                    raise Conflict(
                        f"the strategy has {self._s.max_versions} versions, the most allowed; "
                        "save the template as a new strategy",
                        code="version_limit",
                    )
                await store.insert_version(
                    session,
                    current.id,
                    version=version,
                    template=template.model_dump(mode="json"),
                    at=self._clock.now(),
                )
                values["version"] = version
                changed.append("template")
        if data.name is not None and data.name != current.name:
            if store.norm(data.name) != store.norm(current.name) and await store.name_taken(
                session, owner=current.owner, name=data.name, exclude=current.id
            ):
                raise self._name_taken(data.name)
            values |= {"name": data.name, "name_norm": store.norm(data.name)}
            changed.append("name")
        if data.description is not None and data.description != current.description:
            values["description"] = data.description
            changed.append("description")
        if data.symbols is not None and data.symbols != current.symbols:
            values["symbols"] = [s.model_dump(mode="json") for s in data.symbols]
            changed.append("symbols")
        if data.status is not None and data.status != current.status:
            values["status"] = StrategyStatus(data.status).value
            changed.append("status")
        if data.tags is not None and data.tags != current.tags:
            await store.set_tags(session, current.id, data.tags)
            changed.append("tags")
        return values, changed

    async def delete(self, *, owner: uuid.UUID, strategy_id: uuid.UUID) -> None:
        async with begin_serialized(self._db) as session:
            row = await store.fetch(session, strategy_id, owner=owner, lock=True)
            if row is None:
                raise _not_found(strategy_id)
            await store.remove(session, strategy_id)
            await self._outbox.add(session, StrategyDeleted(strategy_id=strategy_id, owner_id=owner))
        log.info("strategies.deleted", strategy_id=str(strategy_id))

    # --- versions ----------------------------------------------------------------------------------

    async def versions(
        self, *, owner: uuid.UUID, strategy_id: uuid.UUID, limit: int = 50, offset: int = 0
    ) -> builtins.list[VersionRead]:
        if not 1 <= limit <= MAX_PAGE:
            raise Invalid(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        if offset < 0:
            raise Invalid("offset must not be negative", field="offset")
        async with self._db() as session:
            if await store.fetch(session, strategy_id, owner=owner) is None:
                raise _not_found(strategy_id)
            rows = await store.list_versions(session, strategy_id, limit=limit, offset=offset)
        return [store.to_version(r) for r in rows]

    async def version(self, *, owner: uuid.UUID, strategy_id: uuid.UUID, version: int) -> VersionRead:
        if version < 1:
            raise Invalid("version must be 1 or more", field="version")
        async with self._db() as session:
            if await store.fetch(session, strategy_id, owner=owner) is None:
                raise _not_found(strategy_id)
            row = await store.fetch_version(session, strategy_id, version)
        if row is None:
            raise NotFound(
                f"strategy {strategy_id} has no version {version}", code="strategy_version_not_found"
            )
        return store.to_version(row)
