"""FHIR R4 read views (``/fhir``): Patient by id, and the searches ``<Resource>?patient=<id>`` of
Encounter, Condition, Observation, MedicationRequest, AllergyIntolerance and Immunization.

The node loads the rows through the access policy (audited, hidden categories left out); the
mappers of :mod:`healthcard.api.fhir` turn them into resources validated by ``fhir.resources``.
The card number is a Patient identifier in the system ``urn:oid:2.16.156.10011.1.19``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from healthcard.api import fhir
from healthcard.api.deps import ActorDep, CountQuery, NodeDep, PatientQuery
from healthcard.errors import InvalidValue
from healthcard.platform.immunization import vaccine as vaccine_of
from healthcard.storage import tables as t

router = APIRouter(prefix="/fhir", tags=["fhir"])

FHIR_JSON = "application/fhir+json"
SEARCHABLE = (
    "Encounter",
    "Condition",
    "Observation",
    "MedicationRequest",
    "AllergyIntolerance",
    "Immunization",
)


def _vaccine_name(code: str) -> str | None:
    try:
        return vaccine_of(code).name
    except InvalidValue:
        return None


@router.get("/Patient/{resident_id}", summary="FHIR Patient")
def patient(
    resident_id: Annotated[str, Path(pattern=r"^[0-9A-Za-z_-]{1,32}$")], node: NodeDep, actor: ActorDep
) -> JSONResponse:
    resident, identifiers, card = node.patient_rows(actor, resident_id)
    return JSONResponse(fhir.patient(resident, identifiers, card), media_type=FHIR_JSON)


@router.get("/{resource}", summary="FHIR search by patient: Encounter, Condition, Observation, …")
def search(
    resource: str,
    request: Request,
    node: NodeDep,
    actor: ActorDep,
    patient: PatientQuery,
    count: CountQuery = 50,
) -> JSONResponse:
    if resource not in SEARCHABLE:
        raise InvalidValue("resource", f"{resource}: searchable are {', '.join(SEARCHABLE)}")
    rows = node.fhir_rows(actor, patient.removeprefix("Patient/"), resource, limit=count)
    names = node.institution_names(
        {r.institution_code for r in rows if isinstance(r, t.Encounter | t.ImmunizationDose)}
    )
    mappers: dict[str, Callable[[Any], dict[str, Any]]] = {
        "Encounter": lambda r: fhir.encounter(r, names.get(r.institution_code)),
        "Condition": fhir.condition,
        "Observation": fhir.observation,
        "MedicationRequest": fhir.medication_request,
        "AllergyIntolerance": fhir.allergy_intolerance,
        "Immunization": lambda r: fhir.immunization(
            r, _vaccine_name(r.vaccine), names.get(r.institution_code)
        ),
    }
    resources = [mappers[resource](r) for r in rows]
    return JSONResponse(
        fhir.bundle(
            resources, self_url=str(request.url)
        )  # one page: the total is not counted, media_type=FHIR_JSON
    )
