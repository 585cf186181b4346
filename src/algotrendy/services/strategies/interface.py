"""Strategies API, DTOs and the events it publishes.

A strategy is a named ``StrategyTemplate`` (``engine.template``) owned by one user, with a default
universe (``symbols``) and ``tags``. Its template is versioned: every change of the template is a
new immutable version numbered 1..n, and the strategy points to the latest. Name, description,
symbols, tags and status change in place. A strategy is created from a full template or from a
built-in one (``builtin``), either with ``parameters`` overriding parameter defaults.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)

from algotrendy.core.events import Event
from algotrendy.engine.template import ParamValue, StrategyTemplate

StrategyName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, strip_whitespace=True, pattern=r"^[^\x00-\x1f\x7f]+$"),
]
Description = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00]*$")]
Slug = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
Tag = Annotated[
    str,
    StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
    AfterValidator(str.lower),
]
SymbolText = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9^._/:-]+$")]
VenueText = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")]
Interval = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,3}(m|h|d|w)$")]
Overrides = Annotated[
    dict[Annotated[str, StringConstraints(max_length=40)], StrictInt | StrictFloat | StrictStr],
    Field(max_length=50, description="Parameter name -> new default value"),
]


def _strict_template(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # A template in a request is JSON as written: no JSON true where a number goes, no "5" for 5
    # (lax coercion would store something other than what was sent). Errors keep their path.
    if isinstance(value, dict):
        return StrategyTemplate.model_validate(value, strict=True)
    return handler(value)


RequestTemplate = Annotated[StrategyTemplate, WrapValidator(_strict_template)]


class StrategyStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


def _unique(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


Tags = Annotated[list[Tag], Field(max_length=20), AfterValidator(_unique)]


class _In(BaseModel):
    """Request bodies refuse unknown fields: a client cannot set ``owner`` or ``version`` (API3)."""

    model_config = ConfigDict(extra="forbid")


def _schema_without_null(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """OpenAPI: fields in ``_not_null`` are optional but not nullable."""
    not_null: frozenset[str] = getattr(model, "_not_null", frozenset())
    if isinstance(not_null, frozenset):
        for name, prop in schema.get("properties", {}).items():
            variants = prop.get("anyOf")
            if name not in not_null or not variants:
                continue
            rest = [v for v in variants if v.get("type") != "null"]
            del prop["anyOf"]
            if len(rest) == 1:
                prop.update(rest[0])
            else:
                prop["anyOf"] = rest
            if prop.get("default", "") is None:
                del prop["default"]


class UniverseEntry(_In):
    """One series a strategy trades by default: ``{"symbol": "SPY", "interval": "1d"}``."""

    symbol: SymbolText
    venue: VenueText | None = None
    interval: Interval = "1d"


Universe = Annotated[list[UniverseEntry], Field(max_length=100)]


class StrategyCreate(_In):
    """A full ``template``, or ``builtin`` naming a built-in one (``GET /api/v1/strategies/templates``);
    ``parameters`` override parameter defaults of either."""

    name: StrategyName
    description: Description = ""
    template: RequestTemplate | None = None
    builtin: Slug | None = Field(None, description="Slug of a built-in template, e.g. sma_crossover")
    parameters: Overrides = Field(default_factory=dict)
    symbols: Universe = Field(default_factory=list)
    tags: Tags = Field(default_factory=list)


class StrategyUpdate(_In):
    """Fields left out stay as they are; none may be null. A ``template`` (or ``parameters``) that
    changes the current template makes a new version."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_schema_without_null)
    _not_null: ClassVar[frozenset[str]] = frozenset(
        {"name", "description", "template", "parameters", "symbols", "tags", "status"}
    )

    name: StrategyName | None = None
    description: Description | None = None
    template: RequestTemplate | None = None
    parameters: Overrides | None = None
    symbols: Universe | None = None
    tags: Tags | None = None
    status: StrategyStatus | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_null(cls, value: object, info: ValidationInfo) -> object:
        if value is None and info.field_name in cls._not_null:
            raise ValueError("may be left out, but not set to null")
        return value


class StrategyRead(BaseModel):
    id: uuid.UUID
    owner: uuid.UUID
    name: str
    description: str
    version: int = Field(ge=1, description="The latest version, the one the template is")
    template: StrategyTemplate
    builtin: str | None = Field(None, description="The built-in template it was created from")
    symbols: list[UniverseEntry]
    tags: list[str]
    status: StrategyStatus
    created_at: datetime
    updated_at: datetime


class StrategyCreatedRead(StrategyRead):
    """The created strategy, with its id also as ``strategy_id`` (the spec's response)."""

    strategy_id: uuid.UUID


class VersionRead(BaseModel):
    strategy_id: uuid.UUID
    version: int = Field(ge=1)
    template: StrategyTemplate
    created_at: datetime


class TemplateRead(BaseModel):
    """A built-in template: create a strategy from it with ``{"builtin": slug}``."""

    slug: str
    name: str
    description: str
    kind: Literal["signal", "rotation"]
    template: StrategyTemplate


class ValidateRequest(_In):
    template: RequestTemplate
    parameters: Overrides = Field(default_factory=dict)


class TemplateIssue(BaseModel):
    field: str = Field(description="Where, e.g. template.entry_conditions[0] or parameters.fast")
    message: str


class ValidationReport(BaseModel):
    ok: bool
    errors: list[TemplateIssue] = Field(default_factory=list)


# ---- events ---------------------------------------------------------------------------------


class StrategyCreated(Event):
    topic: ClassVar[str] = "strategies.strategy.created"
    strategy_id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    version: int
    builtin: str | None


class StrategyUpdated(Event):
    topic: ClassVar[str] = "strategies.strategy.updated"
    strategy_id: uuid.UUID
    owner_id: uuid.UUID
    version: int
    new_version: bool = Field(description="The template changed: ``version`` is a new version")
    changed: list[str] = Field(description="Names of the fields that changed")


class StrategyDeleted(Event):
    topic: ClassVar[str] = "strategies.strategy.deleted"
    strategy_id: uuid.UUID
    owner_id: uuid.UUID


# ---- the API ----------------------------------------------------------------------------------


class StrategiesApi(Protocol):
    async def templates(self) -> builtins.list[TemplateRead]:
        """The built-in templates."""
        ...

    async def validate(
        self, *, template: StrategyTemplate, parameters: dict[str, ParamValue] | None = None
    ) -> ValidationReport:
        """Whether ``template`` (with ``parameters`` as defaults) can run; changes nothing."""
        ...

    async def create(self, *, owner: uuid.UUID, data: StrategyCreate) -> StrategyRead:
        """Version 1 of a new strategy. ``Invalid`` naming the field (``template.<field>``,
        ``builtin``, ``parameters.<name>``); ``Conflict`` (field ``name``) for a name the owner
        already uses."""
        ...

    async def get(self, *, owner: uuid.UUID, strategy_id: uuid.UUID) -> StrategyRead:
        """``NotFound`` also for another owner's strategy."""
        ...

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
        """The owner's strategies, newest first; ``name`` matches a part of the name (any case)."""
        ...

    async def update(self, *, owner: uuid.UUID, strategy_id: uuid.UUID, data: StrategyUpdate) -> StrategyRead:
        """Change fields; a changed template becomes version n+1."""
        ...

    async def delete(self, *, owner: uuid.UUID, strategy_id: uuid.UUID) -> None:
        """Delete the strategy and all its versions."""
        ...

    async def versions(
        self, *, owner: uuid.UUID, strategy_id: uuid.UUID, limit: int = 50, offset: int = 0
    ) -> builtins.list[VersionRead]:
        """The strategy's versions, newest first."""
        ...

    async def version(self, *, owner: uuid.UUID, strategy_id: uuid.UUID, version: int) -> VersionRead:
        """One version; ``NotFound`` when the strategy or the version does not exist."""
        ...
