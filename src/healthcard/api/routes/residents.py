"""A resident's record: person, summary, archive, allergies, encounters, immunizations, and the
resident's own controls (hidden categories, who looked, notices).  Every route goes through the
node, which asks the access policy first."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from healthcard.api import schemas as s
from healthcard.api.deps import ActorDep, NodeDep
from healthcard.platform import records as rec
from healthcard.platform.access import GrantView, NotificationView
from healthcard.platform.audit import AuditView
from healthcard.platform.immunization import DoseStatus, DoseView
from healthcard.platform.mpi import IdentifierView, PersonView

router = APIRouter(prefix="/v1/residents", tags=["residents"])

#: a database id: SQLite and PostgreSQL keep 64-bit integers, anything larger is no id of ours
EncounterId = Annotated[int, Path(ge=1, le=2**62)]
ResidentId = Annotated[str, Path(pattern=r"^[0-9A-Za-z_-]{1,32}$", description="the resident id")]


@router.get("/lookup", response_model=s.ResidentRef, summary="The resident an identifier belongs to")
def lookup(
    node: NodeDep,
    actor: ActorDep,
    system: Annotated[
        Literal["card", "citizen-id", "ncms", "archive", "visit-card", "passport", "other"], Query()
    ],
    value: Annotated[str, Query(min_length=1, max_length=40)],
    assigner: Annotated[str, Query(max_length=22)] = "",
) -> s.ResidentRef:
    return s.ResidentRef(resident_id=node.resolve(actor, system, value, assigner))


@router.get("/{resident_id}", summary="Demographics and identifiers")
def person(resident_id: ResidentId, node: NodeDep, actor: ActorDep) -> PersonView:
    return node.person(actor, resident_id)


@router.post(
    "/{resident_id}/identifiers", status_code=201, summary="Add an identifier (e.g. our old visit card)"
)
def add_identifier(
    resident_id: ResidentId, body: s.IdentifierIn, node: NodeDep, actor: ActorDep
) -> IdentifierView:
    return node.add_identifier(actor, resident_id, body.system, body.value)


@router.get("/{resident_id}/summary", summary="The on-card summary as the platform holds it")
def summary(resident_id: ResidentId, node: NodeDep, actor: ActorDep) -> rec.SummaryView:
    return node.summary(actor, resident_id)


@router.get("/{resident_id}/archive", summary="The health archive (居民健康档案)")
def archive(resident_id: ResidentId, node: NodeDep, actor: ActorDep) -> rec.ArchiveView | None:
    return node.archive(actor, resident_id)


@router.put("/{resident_id}/archive", summary="Create or update the health archive")
def put_archive(
    resident_id: ResidentId, body: s.ArchiveIn, node: NodeDep, actor: ActorDep
) -> rec.ArchiveView:
    return node.put_archive(actor, resident_id, **body.model_dump(exclude_unset=True))


@router.get("/{resident_id}/allergies", summary="Allergies")
def allergies(resident_id: ResidentId, node: NodeDep, actor: ActorDep) -> list[rec.AllergyView]:
    return node.allergies(actor, resident_id)


@router.post("/{resident_id}/allergies", status_code=201, summary="Record an allergy")
def add_allergy(
    resident_id: ResidentId, body: s.AllergyIn, node: NodeDep, actor: ActorDep
) -> rec.AllergyView:
    return node.add_allergy(
        actor, resident_id, allergen=body.allergen, reaction=body.reaction, severity=body.severity
    )


@router.get("/{resident_id}/encounters", summary="Visits, newest first")
def encounters(
    resident_id: ResidentId,
    node: NodeDep,
    actor: ActorDep,
    kind: Annotated[Literal["outpatient", "inpatient", "emergency"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[rec.EncounterView]:
    return node.encounters(actor, resident_id, kind=kind, limit=limit)


@router.get(
    "/{resident_id}/visits-elsewhere",
    response_model=list[s.VisitElsewhereOut],
    summary="Visits made in other cities: their pointers, newest first (the records stay there)",
)
def visits_elsewhere(
    resident_id: ResidentId,
    node: NodeDep,
    actor: ActorDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[s.VisitElsewhereOut]:
    return [
        s.VisitElsewhereOut(**dataclasses.asdict(v), city_name=v.city_name)
        for v in node.visits_elsewhere(actor, resident_id, limit=limit)
    ]


@router.post("/{resident_id}/encounters", status_code=201, summary="Open a visit at the caller's institution")
def open_encounter(
    resident_id: ResidentId, body: s.EncounterOpen, node: NodeDep, actor: ActorDep
) -> rec.EncounterView:
    data = rec.EncounterIn(
        institution_code=actor.institution_code or "",
        kind=rec.EncounterKind(body.kind),
        department=body.department,
        department_code=body.department_code,
        clinician=body.clinician,
        started_at=body.started_at or node.clock.now(),
        number=body.number,
        carrier=body.carrier,
        card_number=body.card_number,
    )
    return node.open_encounter(actor, resident_id, data)


@router.get("/{resident_id}/encounters/{encounter_id}", summary="One visit")
def encounter(
    resident_id: ResidentId, encounter_id: EncounterId, node: NodeDep, actor: ActorDep
) -> rec.EncounterView:
    return node.encounter(actor, resident_id, encounter_id)


@router.post(
    "/{resident_id}/encounters/{encounter_id}/items", summary="Add diagnoses, results, prescriptions"
)
def add_items(
    resident_id: ResidentId, encounter_id: EncounterId, body: s.Items, node: NodeDep, actor: ActorDep
) -> rec.EncounterView:
    return node.add_items(
        actor,
        resident_id,
        encounter_id,
        diagnoses=[d.domain() for d in body.diagnoses],
        observations=[o.domain() for o in body.observations],
        prescriptions=[p.domain() for p in body.prescriptions],
        procedures=[p.domain() for p in body.procedures],
    )


@router.get(
    "/{resident_id}/encounters/{encounter_id}/card-record",
    summary="The visit record the terminal writes to the card, by SDK tag: ED items for an "
    "outpatient or emergency visit (write_outpatient_record), EE items for an inpatient stay "
    "(write_inpatient_record)",
)
def card_record(
    resident_id: ResidentId, encounter_id: EncounterId, node: NodeDep, actor: ActorDep
) -> dict[str, str | int]:
    return node.card_record(actor, resident_id, encounter_id)


@router.post(
    "/{resident_id}/encounters/{encounter_id}/close", summary="Close the visit (after the card write)"
)
def close(
    resident_id: ResidentId, encounter_id: EncounterId, body: s.Close, node: NodeDep, actor: ActorDep
) -> rec.EncounterView:
    return node.close_encounter(
        actor,
        resident_id,
        encounter_id,
        fees=[f.domain() for f in body.fees],
        payment_method=body.payment_method,
        card_slot=body.card_slot,
    )


@router.get("/{resident_id}/immunizations", summary="Doses given")
def immunizations(resident_id: ResidentId, node: NodeDep, actor: ActorDep) -> list[DoseView]:
    return node.doses(actor, resident_id)


@router.post("/{resident_id}/immunizations", status_code=201, summary="Record a dose")
def record_dose(resident_id: ResidentId, body: s.DoseIn, node: NodeDep, actor: ActorDep) -> DoseView:
    return node.record_dose(
        actor,
        resident_id,
        vaccine=body.vaccine,
        dose=body.dose,
        given_on=body.given_on,
        lot=body.lot,
        institution_code=body.institution_code,
    )


@router.get("/{resident_id}/vaccination-plan", summary="The national schedule: given, due, overdue, upcoming")
def vaccination_plan(resident_id: ResidentId, node: NodeDep, actor: ActorDep) -> list[DoseStatus]:
    return node.vaccination_plan(actor, resident_id)


@router.post("/{resident_id}/break-glass", status_code=201, summary="Emergency access, with a reason")
def break_glass(resident_id: ResidentId, body: s.BreakGlassIn, node: NodeDep, actor: ActorDep) -> GrantView:
    return node.break_glass(actor, resident_id, reason=body.reason)


@router.get("/{resident_id}/hidden-categories", summary="Categories the resident hides")
def hidden(resident_id: ResidentId, node: NodeDep, actor: ActorDep) -> list[str]:
    return sorted(node.hidden(actor, resident_id))


@router.put("/{resident_id}/hidden-categories", summary="Hide or show a category (the resident only)")
def hide(resident_id: ResidentId, body: s.HideIn, node: NodeDep, actor: ActorDep) -> list[str]:
    return sorted(node.hide(actor, resident_id, body.category, body.hidden))


@router.get("/{resident_id}/access-log", summary="Who looked at my record")
def access_log(
    resident_id: ResidentId, node: NodeDep, actor: ActorDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[AuditView]:
    return node.who_looked(actor, resident_id, limit=limit)


@router.post(
    "/{resident_id}/notifications/{notification_id}/read", status_code=204, summary="Mark a notice read"
)
def mark_read(
    resident_id: ResidentId,
    notification_id: Annotated[int, Path(ge=1, le=2**62)],
    node: NodeDep,
    actor: ActorDep,
) -> None:
    node.mark_read(actor, resident_id, notification_id)


@router.get("/{resident_id}/notifications", summary="Notices to the resident (break-glass accesses …)")
def notifications(resident_id: ResidentId, node: NodeDep, actor: ActorDep) -> list[NotificationView]:
    return node.notifications(actor, resident_id)
