"""The billing API: the operator's billing system writes accounts, payments made elsewhere and
balance adjustments, and reads an account's state back (docs/billing-api.md).

Every call carries a client's token (``abono api-clients create``) as a bearer token: none or
an unknown or revoked one is a 401, a scope the client lacks a 403. A write may carry an
``Idempotency-Key``: sent again, it changes nothing and gets the first answer back (with
``Idempotent-Replayed: true``); the same key with another request is a 422. Every call is
audited (``api.call``), the refused ones too. The bodies are read raw (the key's fingerprint is
taken over exactly what arrived) and parsed here, so the schema is given as ``openapi_extra``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from abono import audit
from abono.accounts.csv_import import BATCH_SIZE, Served, upsert_records
from abono.accounts.state import account_state
from abono.api.body_limit import body_limits
from abono.api.clients import authenticate
from abono.api.idempotency import Answer, checked_key, earlier_answer, fingerprint, remember
from abono.app import served_by_policies
from abono.container import Container
from abono.errors import (
    AbonoError,
    AccountNotFoundError,
    ConcurrentChangeError,
    ForbiddenError,
    InvalidRequestError,
    NotSignedInError,
)
from abono.payments.external import (
    MAX_REFERENCE,
    adjust_balance,
    apply_statement,
    record_external_payment,
)
from abono.store.db import retrying_a_lost_race
from abono.store.models import Account

log = structlog.get_logger(__name__)

PREFIX = "/api/v1"
BATCH_PATH = f"{PREFIX}/accounts/batch"
MAX_CENTS = 10**12  # ten billion in the currency's unit: any bill, and far from BigInteger's end
BATCH_BYTES = 2 * 1024 * 1024  # BATCH_SIZE records of a few hundred bytes each, with room
Cell = str | int | float | bool | None
ModelT = TypeVar("ModelT", bound=BaseModel)


class _Body(BaseModel):
    """Unknown fields are refused (a typo is not silently dropped), and so is a NUL character,
    which PostgreSQL cannot store in text (it would fail the write: a 500, not a 422)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value


class AccountRecord(_Body):
    """One customer and account, in the columns of the CSV import (docs/billing-api.md)."""

    customer_id: Cell = None
    first_name: Cell = None
    last_name: Cell = None
    language: Cell = None
    timezone: Cell = None
    phone: Cell = None
    email: Cell = None
    zip: Cell = None
    dob: Cell = None
    account_number: Cell = None
    balance: Cell = Field(default=None, description='What is owed, e.g. "120.50"')
    currency: Cell = None
    due_date: Cell = None
    segment: Cell = None
    consent_sms: Cell = None
    consent_email: Cell = None
    consent_voice: Cell = None
    preferred_channel: Cell = None
    days_past_due: Cell = None
    country: Cell = None
    balance_as_of: AwareDatetime = Field(
        description="When billing computed the balance; an older one than stored is refused"
    )

    def cells(self) -> dict[str, str]:
        """The record as the file's cells, so the import's own rules read it."""
        return {
            name: _cell(value) for name, value in self.model_dump(exclude={"balance_as_of"}).items()
        }


class AccountBatch(_Body):
    accounts: list[AccountRecord] = Field(min_length=1, max_length=BATCH_SIZE)


class ExternalPayment(_Body):
    amount_cents: int = Field(
        strict=True, le=MAX_CENTS, description="Positive, in the account's currency"
    )
    currency: str = Field(min_length=3, max_length=3)
    reference: str = Field(min_length=1, max_length=MAX_REFERENCE, description="Billing's id")
    method: Literal["store", "bank_transfer", "ivr", "other"]
    paid_at: AwareDatetime


class BalanceStatement(_Body):
    balance_cents: int = Field(
        strict=True, ge=0, le=MAX_CENTS, description="What billing says is owed at as_of"
    )
    as_of: AwareDatetime


class BalanceAdjustmentBody(_Body):
    amount_cents: int = Field(
        strict=True,
        ge=-MAX_CENTS,
        le=MAX_CENTS,
        description="A fee (positive) or a credit (negative)",
    )
    reference: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=200)
    as_of: AwareDatetime


def _cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "y" if value else "n"
    return str(value)


@dataclass(frozen=True)
class Caller:
    id: int
    name: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class Call:
    """What the audit records of a call (never its body)."""

    method: str
    path: str
    key: str | None = None


Operation = Callable[[Session], tuple[Answer, Account | None]]  # the answer and its account


def install(app: FastAPI, container: Container) -> None:
    served = served_by_policies()
    body_limits(app).allow(BATCH_PATH, BATCH_BYTES, multipart=False)
    app.include_router(_router(container, served))


def _router(container: Container, served: Served) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["billing"])
    api = _Api(container)

    @router.post("/accounts/batch", openapi_extra=_documented(AccountBatch))
    async def upsert(request: Request) -> JSONResponse:
        def operation(body: bytes) -> Operation:
            batch = _parsed(AccountBatch, body)

            def run(session: Session) -> tuple[Answer, Account | None]:
                records = [(r.cells(), r.balance_as_of) for r in batch.accounts]
                outcomes = upsert_records(session, records, served)
                results = [
                    {
                        "index": index,
                        "customer_id": _cell(record.customer_id),
                        "account_number": _cell(record.account_number),
                        "status": outcome.status,
                        "reasons": outcome.reasons,
                    }
                    for index, (record, outcome) in enumerate(
                        zip(batch.accounts, outcomes, strict=True)
                    )
                ]
                counts = {s: 0 for s in ("created", "updated", "unchanged", "rejected")}
                for outcome in outcomes:
                    counts[outcome.status] += 1
                return Answer(200, {**counts, "results": results}), None

            return run

        return await api.write(request, "accounts:write", operation)

    @router.get("/accounts/{account_number}")
    async def read(request: Request, account_number: str) -> JSONResponse:
        def run(session: Session) -> tuple[Answer, Account | None]:
            account = _account(session, account_number)
            state = account_state(session, account, container.clock(), container.stage_of)
            return Answer(200, state), account

        return await api.read(request, "accounts:read", run)

    @router.post("/accounts/{account_number}/payments", openapi_extra=_documented(ExternalPayment))
    async def payment(request: Request, account_number: str) -> JSONResponse:
        def operation(body: bytes) -> Operation:
            paid = _parsed(ExternalPayment, body)

            def run(session: Session) -> tuple[Answer, Account | None]:
                account = _account(session, account_number)
                applied = record_external_payment(
                    session,
                    account,
                    amount_cents=paid.amount_cents,
                    currency=paid.currency,
                    reference=paid.reference,
                    method=paid.method,
                    paid_at=paid.paid_at,
                    now=container.clock(),
                )
                answer = {
                    "account_number": account.account_number,
                    "reference": applied.reference,
                    "amount_cents": paid.amount_cents,
                    "currency": account.currency,
                    "balance_cents": applied.balance_cents,
                    "credit_cents": applied.credit_cents,
                }
                return Answer(201, answer), account

            return run

        return await api.write(request, "payments:write", operation)

    @router.put("/accounts/{account_number}/balance", openapi_extra=_documented(BalanceStatement))
    async def statement(request: Request, account_number: str) -> JSONResponse:
        def operation(body: bytes) -> Operation:
            stated = _parsed(BalanceStatement, body)

            def run(session: Session) -> tuple[Answer, Account | None]:
                account = _account(session, account_number)
                applied = apply_statement(
                    session,
                    account,
                    balance_cents=stated.balance_cents,
                    as_of=stated.as_of,
                    now=container.clock(),
                )
                answer = {
                    "account_number": account.account_number,
                    "currency": account.currency,
                    "balance_cents": applied.balance_cents,
                    "credit_cents": applied.credit_cents,
                    "balance_as_of": stated.as_of.isoformat(),
                }
                return Answer(200, answer), account

            return run

        return await api.write(request, "accounts:write", operation)

    @router.post(
        "/accounts/{account_number}/adjustments",
        openapi_extra=_documented(BalanceAdjustmentBody),
    )
    async def adjustment(request: Request, account_number: str) -> JSONResponse:
        def operation(body: bytes) -> Operation:
            change = _parsed(BalanceAdjustmentBody, body)

            def run(session: Session) -> tuple[Answer, Account | None]:
                account = _account(session, account_number)
                applied = adjust_balance(
                    session,
                    account,
                    amount_cents=change.amount_cents,
                    reference=change.reference,
                    reason=change.reason,
                    as_of=change.as_of,
                    now=container.clock(),
                )
                answer = {
                    "account_number": account.account_number,
                    "reference": applied.reference,
                    "amount_cents": change.amount_cents,
                    "currency": account.currency,
                    "balance_cents": applied.balance_cents,
                    "credit_cents": applied.credit_cents,
                    "balance_as_of": change.as_of.isoformat(),
                }
                return Answer(201, answer), account

            return run

        return await api.write(request, "accounts:write", operation)

    return router


class _Api:
    """Who calls (401), whether they may (403), the key, the transaction and the audit."""

    def __init__(self, container: Container) -> None:
        self.container = container

    async def read(self, request: Request, scope: str, run: Operation) -> JSONResponse:
        call = Call(request.method, request.url.path)
        try:
            caller = await asyncio.to_thread(self._caller, request, scope, call)
        except AbonoError as error:
            return _error(error)
        try:
            answer = await asyncio.to_thread(self._apply, caller, call, None, run)
        except AbonoError as error:
            await asyncio.to_thread(self._audit_refusal, caller, call, error)
            return _error(error)
        return JSONResponse(answer.body, answer.status)

    async def write(
        self,
        request: Request,
        scope: str,
        operation: Callable[[bytes], Operation],
    ) -> JSONResponse:
        call = Call(request.method, request.url.path)
        try:
            caller = await asyncio.to_thread(self._caller, request, scope, call)
        except AbonoError as error:
            return _error(error)
        try:
            key = checked_key(request.headers.get("idempotency-key"))
            call = Call(call.method, call.path, key)
            body = await request.body()
            run = operation(body)
            print_ = fingerprint(call.method, call.path, body)
            answer = await asyncio.to_thread(self._apply, caller, call, print_, run)
        except AbonoError as error:
            await asyncio.to_thread(self._audit_refusal, caller, call, error)
            return _error(error)
        headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
        return JSONResponse(answer.body, answer.status, headers=headers)

    def _caller(self, request: Request, scope: str, call: Call) -> Caller:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self.container.sessions.begin() as session:
            client = authenticate(session, token.strip()) if scheme.lower() == "bearer" else None
            if client is None:
                log.warning("api.call.unauthenticated", method=call.method, path=call.path)
                raise NotSignedInError("a valid bearer token is required (abono api-clients)")
            caller = Caller(client.id, client.name, frozenset(client.scopes))
            if scope not in caller.scopes:
                _audit(session, caller, call, 403, None, error="forbidden")
        if scope not in caller.scopes:  # once the audit row is committed
            raise ForbiddenError(f"this client lacks the scope {scope}")
        return caller

    def _apply(self, caller: Caller, call: Call, print_: str | None, run: Operation) -> _Replied:
        """One transaction: the earlier answer, or the operation, its answer and the audit.
        A unique clash (the same key or reference at once) is run again, and then finds the
        winner's row: its answer, or a 409."""
        try:
            return retrying_a_lost_race(
                self.container.sessions,
                lambda session: self._once(session, caller, call, print_, run),
                lambda: log.info("api.call.raced", method=call.method, path=call.path),
            )
        except IntegrityError:
            message = "changed by another request at the same moment; send it again"
            raise ConcurrentChangeError(message) from None

    def _once(
        self, session: Session, caller: Caller, call: Call, print_: str | None, run: Operation
    ) -> _Replied:
        if call.key is not None and print_ is not None:
            earlier = earlier_answer(session, caller.id, call.key, print_)
            if earlier is not None:
                _audit(session, caller, call, earlier.status, None, replayed=True)
                return _Replied(earlier.status, earlier.body, replayed=True)
        answer, account = run(session)
        if call.key is not None and print_ is not None:
            remember(session, caller.id, call.key, print_, answer)
        _audit(session, caller, call, answer.status, account)
        session.flush()
        return _Replied(answer.status, answer.body, replayed=False)

    def _audit_refusal(self, caller: Caller, call: Call, error: AbonoError) -> None:
        with self.container.sessions.begin() as session:
            _audit(session, caller, call, error.status, None, error=error.code)


@dataclass(frozen=True)
class _Replied:
    status: int
    body: dict[str, Any]
    replayed: bool


def _audit(
    session: Session,
    caller: Caller,
    call: Call,
    status: int,
    account: Account | None,
    **facts: Any,
) -> None:
    """One ``api.call`` row: on the account's customer (and naming the account, so another
    of their accounts' trails leaves it out) where the call was about one."""
    if account is not None:
        facts["account_id"] = account.id
    event = audit.record(
        session,
        "api.call",
        client=caller.name,
        method=call.method,
        path=call.path,
        status=status,
        idempotency_key=call.key,
        **facts,
    )
    event.customer_id = account.customer_id if account is not None else None


def _account(session: Session, account_number: str) -> Account:
    """By its number; one that could not be stored (too long, a NUL) is not asked for."""
    account = None
    if len(account_number) <= 64 and "\x00" not in account_number:
        account = session.scalars(
            select(Account).where(Account.account_number == account_number)
        ).first()
    if account is None:
        raise AccountNotFoundError("no account has that number")
    return account


def _parsed(model: type[ModelT], body: bytes) -> ModelT:
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
            for problem in error.errors(
                include_url=False, include_context=False, include_input=False
            )
        ]
        raise InvalidRequestError("; ".join(problems[:20])) from None


def _error(error: AbonoError) -> JSONResponse:
    return JSONResponse({"error": error.code, "message": error.message}, error.status)


def _documented(model: type[BaseModel]) -> dict[str, Any]:
    """The body's JSON schema, its nested models inlined (the app's schema has no components
    for them), and the Idempotency-Key header."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    schema = inline(schema)
    return {
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
                "description": "Sent again with the same request: nothing changes, first answer.",
            }
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
    }
