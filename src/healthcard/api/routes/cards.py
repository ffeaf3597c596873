"""A resident's card as the holder sees it, and the holder's own report of a lost card (挂失).

The card administrators' operations (approve, issue, replace, cancel …) are the card centre's
(``healthcard`` CLI, the staff pages under ``/admin/cards``); here only what the holder does,
through :class:`~healthcard.platform.carddesk.CardDesk` — the access policy's ``card`` category
for ``self``, audited with the resident as actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import Field

from healthcard.api.deps import ActorDep
from healthcard.api.schemas import Strict
from healthcard.issuance.cardcentre import CardView
from healthcard.platform.carddesk import CardDesk

router = APIRouter(prefix="/v1/residents", tags=["cards"])

ResidentId = Annotated[str, Path(pattern=r"^[0-9A-Za-z_-]{1,32}$", description="the resident id")]


def _desk(request: Request) -> CardDesk:
    found: CardDesk = request.app.state.app.card_desk
    return found


DeskDep = Annotated[CardDesk, Depends(_desk)]


class LostIn(Strict):
    reason: str = Field("", max_length=200, description="optional: where and when, in the holder's words")


@router.get("/{resident_id}/card", summary="The resident's current card: status and validity (null: none)")
def card(resident_id: ResidentId, desk: DeskDep, actor: ActorDep) -> CardView | None:
    return desk.holder_card(actor, resident_id)


@router.post(
    "/{resident_id}/card/lost",
    summary="The holder reports their own card lost (挂失): LOST and on the hot list at once",
)
def report_lost(resident_id: ResidentId, body: LostIn, desk: DeskDep, actor: ActorDep) -> CardView:
    return desk.report_lost_by_holder(actor, resident_id, reason=body.reason)
