"""The resident's health account (联名卡): open, balance, status, statement — and the bank's side:
its notices (a top-up, a withdrawal) and the daily reconciliation of its statement file.  Every
route calls the node's health-account desk (``node.health_accounts``), which asks the access
policy or checks the bank, and audits."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import Field

from healthcard.api.deps import ActorDep, NodeDep
from healthcard.api.schemas import Strict
from healthcard.errors import InvalidValue
from healthcard.platform.settlement import bank as bk
from healthcard.platform.settlement.health_account import AccountView, Statement, TransferView

router = APIRouter(tags=["health account"])

ResidentId = Annotated[str, Path(pattern=r"^[0-9A-Za-z_-]{1,32}$", description="the resident id")]
BankCode = Annotated[str, Path(pattern=r"^[a-z0-9-]{2,12}$", description="the bank's code, e.g. demo-bank")]
#: the largest statement file the API reads (a day of a province's bank: ~100,000 lines)
MAX_STATEMENT_BYTES = 32 * 1024 * 1024


class OpenIn(Strict):
    bank: Annotated[
        str, Field(min_length=1, max_length=12, description="the co-issuing bank, e.g. demo-bank")
    ]


class StatusIn(Strict):
    status: Literal["ACTIVE", "FROZEN", "CLOSED"]


class NoticeIn(Strict):
    """A transfer notice of the bank (for a top-up: money received for the account; for a
    withdrawal: the holder asks for money out of it)."""

    bank_ref: Annotated[str, Field(min_length=1, max_length=40, description="the bank's reference, unique")]
    account_number: Annotated[str, Field(min_length=1, max_length=32)]
    amount_fen: Annotated[int, Field(strict=True, description="in fen (1 yuan = 100 fen)")]
    value_date: dt.date


@router.post(
    "/v1/residents/{resident_id}/health-account",
    status_code=201,
    summary="Open the resident's health account at a co-issuing bank",
)
def open_account(resident_id: ResidentId, body: OpenIn, node: NodeDep, actor: ActorDep) -> AccountView:
    return node.health_accounts.open(actor, resident_id, bank=body.bank)


@router.get("/v1/residents/{resident_id}/health-account", summary="The health account and its balance")
def account(resident_id: ResidentId, node: NodeDep, actor: ActorDep) -> AccountView:
    return node.health_accounts.account(actor, resident_id)


@router.put(
    "/v1/residents/{resident_id}/health-account/status",
    summary="Freeze, unfreeze or close (when empty) the health account",
)
def set_status(resident_id: ResidentId, body: StatusIn, node: NodeDep, actor: ActorDep) -> AccountView:
    return node.health_accounts.set_status(actor, resident_id, body.status)


@router.get(
    "/v1/residents/{resident_id}/health-account/statement",
    summary="The statement: ledger entries with the running balance, a page at a time",
)
def statement(
    resident_id: ResidentId,
    node: NodeDep,
    actor: ActorDep,
    start: Annotated[
        dt.date | None, Query(description="first local date (default: 30 days before end)")
    ] = None,
    end: Annotated[dt.date | None, Query(description="last local date (default: today)")] = None,
    after: Annotated[int, Query(ge=0, le=2**62, description="next_after of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Statement:
    return node.health_accounts.statement(actor, resident_id, start=start, end=end, after=after, limit=limit)


def _notice(
    bank: str, direction: bk.Direction, body: NoticeIn, node: NodeDep, actor: ActorDep, response: Response
) -> TransferView:
    transfer = bk.Transfer(
        bank, body.bank_ref, direction, body.account_number, body.amount_fen, body.value_date
    )
    booked, created = node.health_accounts.receive(actor, transfer)
    if not created:
        response.status_code = 200
    return booked


@router.post(
    "/v1/banks/{bank}/notices",
    status_code=201,
    summary="The bank's notice of a top-up (201 booked; 200 a repeat of the same bank_ref, nothing moved)",
)
def top_up(
    bank: BankCode, body: NoticeIn, node: NodeDep, actor: ActorDep, response: Response
) -> TransferView:
    return _notice(bank, bk.Direction.IN, body, node, actor, response)


@router.post(
    "/v1/banks/{bank}/withdrawals",
    status_code=201,
    summary="The bank's request to pay a withdrawal out (refused on amount_fen past the balance; "
    "200 for a repeat)",
)
def withdraw(
    bank: BankCode, body: NoticeIn, node: NodeDep, actor: ActorDep, response: Response
) -> TransferView:
    return _notice(bank, bk.Direction.OUT, body, node, actor, response)


@router.post(
    "/v1/banks/{bank}/reconciliation",
    summary="Reconcile the bank's statement file of a day (the CSV as the body) against the ledger",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string", "description": "the statement file"}}},
        }
    },
)
async def reconcile(
    bank: BankCode,
    request: Request,
    node: NodeDep,
    actor: ActorDep,
    day: Annotated[dt.date, Query(alias="date", description="the value date the file covers")],
) -> bk.Reconciliation:
    raw = await request.body()
    if len(raw) > MAX_STATEMENT_BYTES:
        raise InvalidValue("statement", f"at most {MAX_STATEMENT_BYTES // (1024 * 1024)} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidValue("statement", "UTF-8 text (the bank's CSV file)") from None
    report: bk.Reconciliation = await run_in_threadpool(
        node.health_accounts.reconcile, actor, bank=bank, day=day, statement=text
    )
    return report
