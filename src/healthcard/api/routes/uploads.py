"""Visits recorded by an offline terminal, uploaded later — exactly once per upload key."""

from __future__ import annotations

from fastapi import APIRouter, Response

from healthcard.api import schemas as s
from healthcard.api.deps import ActorDep, NodeDep
from healthcard.platform import records as rec
from healthcard.platform.node import Upload

router = APIRouter(prefix="/v1/encounters", tags=["visit"])


@router.post(
    "/uploads",
    response_model=s.UploadOut,
    status_code=201,
    summary="Upload an offline visit (201 the first time, 200 for a repeat of the same upload_key)",
)
def upload(body: s.UploadIn, node: NodeDep, actor: ActorDep, response: Response) -> s.UploadOut:
    data = rec.EncounterIn(
        institution_code=body.institution_code or actor.institution_code or "",
        kind=rec.EncounterKind(body.kind),
        department=body.department,
        clinician=body.clinician,
        started_at=body.started_at,
        ended_at=body.ended_at,
        carrier="upload",
        card_number=body.card_number,
        payment_method=body.payment_method,
        diagnoses=tuple(d.domain() for d in body.diagnoses),
        observations=tuple(o.domain() for o in body.observations),
        prescriptions=tuple(p.domain() for p in body.prescriptions),
        procedures=tuple(p.domain() for p in body.procedures),
        fees=tuple(f.domain() for f in body.fees),
        upload_key=body.upload_key,
        card_slot=body.card_slot,
    )
    view, created = node.upload(actor, Upload(body.card_number, body.chip_serial, data))
    if not created:
        response.status_code = 200
    return s.UploadOut(encounter_id=view.id, created=created)
