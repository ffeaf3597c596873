"""Household proxy links (家庭代理): card-centre and registration staff establish, revoke and list
a resident's links; a resident lists their dependants (then reads a dependant's vaccinations at
``/v1/residents/{dependant}/vaccination-plan`` and ``…/immunizations``, which the access policy
opens to a guardian through the link).  Every route calls ``node.households``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import Field

from healthcard.api.deps import ActorDep, NodeDep
from healthcard.api.schemas import Strict
from healthcard.platform.household import DependantView, LinkView

router = APIRouter(tags=["household links"])

LinkId = Annotated[int, Path(ge=1, le=2**62, description="the household link's id")]
ResidentId = Annotated[str, Path(pattern=r"^[0-9A-Za-z_-]{1,32}$", description="the resident id")]
Resident = Annotated[str, Field(min_length=1, max_length=32)]


class LinkIn(Strict):
    guardian_id: Resident
    dependant_id: Resident
    relation: Literal["parent", "guardian"]
    evidence_kind: Literal["hukou", "birth-certificate"]
    evidence: Annotated[
        str, Field(min_length=1, max_length=60, description="the document's number as written on it")
    ]
    valid_from: dt.date | None = Field(default=None, description="default: today")
    valid_until: dt.date | None = Field(
        default=None, description="the first day it no longer holds; default and latest: the 18th birthday"
    )


class RevokeIn(Strict):
    reason: Annotated[str, Field(min_length=1, max_length=200)]


@router.post("/v1/household-links", status_code=201, summary="Link a guardian to a minor dependant")
def establish(body: LinkIn, node: NodeDep, actor: ActorDep) -> LinkView:
    return node.households.establish(
        actor,
        guardian_id=body.guardian_id,
        dependant_id=body.dependant_id,
        relation=body.relation,
        evidence_kind=body.evidence_kind,
        evidence=body.evidence,
        valid_from=body.valid_from,
        valid_until=body.valid_until,
    )


@router.post("/v1/household-links/{link_id}/revoke", summary="Revoke a household link")
def revoke(link_id: LinkId, body: RevokeIn, node: NodeDep, actor: ActorDep) -> LinkView:
    return node.households.revoke(actor, link_id, reason=body.reason)


@router.get(
    "/v1/residents/{resident_id}/household-links",
    summary="A resident's household links, as guardian or dependant, revoked and ended ones too",
)
def links(resident_id: ResidentId, node: NodeDep, actor: ActorDep) -> list[LinkView]:
    return node.households.links(actor, resident_id)


@router.get("/v1/residents/{resident_id}/dependants", summary="My dependants (live household links)")
def dependants(resident_id: ResidentId, node: NodeDep, actor: ActorDep) -> list[DependantView]:
    return node.households.dependants(actor, resident_id)
