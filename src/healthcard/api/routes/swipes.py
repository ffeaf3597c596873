"""A card swiped (authenticated by a terminal's SAM): presence grant + summary; and what cards
refused at a terminal, reported by it (docs/card.md §13)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter
from pydantic import Field

from healthcard.api import schemas as s
from healthcard.api.deps import ActorDep, NodeDep
from healthcard.api.schemas import Strict
from healthcard.platform.cardevents import MAX_REPORT
from healthcard.platform.node import Swipe

router = APIRouter(tags=["visit"])


@router.post("/v1/swipes", summary="Record a card swipe; returns the presence grant and the summary")
def swipe(body: s.SwipeIn, node: NodeDep, actor: ActorDep) -> Swipe:
    return node.swipe(
        actor,
        card_number=body.card_number,
        chip_serial=body.chip_serial,
        stage=body.stage,
        terminal_kind=body.terminal_kind,
    )


class RefusalIn(Strict):
    chip_serial: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{16}$", description="the chip's serial (ATR)")]
    command: Annotated[
        str,
        Field(pattern=r"^[0-9A-Fa-f]{8}$", description="the command's header CLA INS P1 P2 — never its data"),
    ]
    sw: Annotated[
        str,
        Field(
            pattern=r"^[0-9A-Fa-f]{4}$", description="the card's status word: 63Cx, 6982, 6983, 6985, 6988"
        ),
    ]
    at: Annotated[dt.datetime, Field(description="when the terminal saw it (its clock, with the offset)")]
    card_number: Annotated[str | None, Field(min_length=1, max_length=40)] = None


class RefusalsIn(Strict):
    refusals: Annotated[list[RefusalIn], Field(min_length=1, max_length=MAX_REPORT)]


class RefusalsOut(Strict):
    recorded: int


@router.post(
    "/v1/terminals/card-refusals",
    status_code=201,
    summary="A terminal reports what its cards refused offline (replay, bad MAC, wrong PIN): denied audit entries",
)
def card_refusals(body: RefusalsIn, node: NodeDep, actor: ActorDep) -> RefusalsOut:
    items = [r.model_dump() for r in body.refusals]
    return RefusalsOut(recorded=node.report_card_refusals(actor, items))
