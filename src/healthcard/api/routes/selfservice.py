"""Self-service card issuance (自助发卡) at a hospital kiosk: the kiosk's terminal, logged in with
its SAM, issues the approved application of the person whose ID card it read, with the
cardholder PIN they chose (docs/issuance.md "Self-service issuance at a hospital kiosk").

The route is thin: :meth:`~healthcard.platform.carddesk.CardDesk.issue_at_kiosk` checks who asks
(a terminal of kind ``kiosk``) and the card centre the rest.  The PIN is in the request body only:
it goes into the chip's key file and nowhere else — no log, no error, no answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from healthcard.api.deps import ActorDep
from healthcard.api.schemas import Strict
from healthcard.errors import InvalidValue
from healthcard.issuance.cardcentre import CardView
from healthcard.issuance.chips import ChipSource
from healthcard.platform.carddesk import CardDesk

router = APIRouter(prefix="/v1/cards", tags=["cards"])


def _desk(request: Request) -> CardDesk:
    found: CardDesk = request.app.state.app.card_desk
    return found


DeskDep = Annotated[CardDesk, Depends(_desk)]


class SelfServiceIn(Strict):
    id_number: str = Field(
        min_length=1, max_length=18, description="the ID number the kiosk read off the ID card"
    )
    name: str = Field(min_length=1, max_length=30, description="the name the kiosk read off the ID card")
    pin: str = Field(
        max_length=16, description="the cardholder PIN the resident chose: 6 digits (never logged)"
    )


@router.post(
    "/self-service",
    status_code=201,
    summary="A self-service kiosk issues the approved application of the person at it (自助发卡)",
)
def self_service(body: SelfServiceIn, request: Request, desk: DeskDep, actor: ActorDep) -> CardView:
    """For a terminal of kind ``kiosk``: the card is personalised on the kiosk's dispenser (this
    node's card tray, ``HEALTHCARD_CARD_TRAY``, in the demo) with the PIN, and handed over
    (ACTIVE).  404: no approved application of that ID number; 422 ``name``: not the
    application's name; 422 ``pin``: not 6 digits; 403: not a kiosk.  Nothing is written when
    refused."""
    chips: Callable[[], ChipSource] | None = request.app.state.app.chips
    if chips is None:
        raise InvalidValue("chips", "this server has no card dispenser (HEALTHCARD_CARD_TRAY) configured")
    return desk.issue_at_kiosk(actor, id_number=body.id_number, name=body.name, pin=body.pin, chips=chips())
