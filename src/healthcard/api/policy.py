"""Who may call what: the access policy of every route of a node, as data.

One row per (method, path template) of every route the node serves — the API under ``/v1`` and
``/fhir`` and the web pages — and one column per kind of caller.  A cell is the class of answer
that caller gets (:class:`Outcome`).  ``tests/integration/test_authz_sweep.py`` calls every row
as every caller and compares; it fails when the app serves a route this table does not name, so
a new endpoint must be declared here.  docs/api.md "Who may call what" is :func:`markdown`'s
rendering of this table (a test checks that they are equal).  To draft the row of a new route,
``HC_SWEEP_DRAFT=/tmp/draft.txt pytest tests/integration/test_authz_sweep.py -k sqlite`` writes
what every caller gets from every served route (with the bodies of the refusals) to review.

The design's classes, used consistently:

* ``+`` **allow**: 2xx or 3xx.  A write may still be refused for its body (400/409/422) or
  find nothing (404) — but never 401 or 403.
* ``L`` **login**: no (valid) credentials for this kind of route: the API answers 401 with
  ``WWW-Authenticate: Bearer``; a page redirects (303) to its login page (``/portal/login`` or
  ``/staff/login``) — also a page of another area than the caller's role (a clinician's session
  on the resident portal goes to the portal's login).
* ``D`` **deny**: 403 ``forbidden`` — the caller is known but the policy refuses (the refusal is
  audited); a page's POST without the session's CSRF token is 403 too.
* ``N`` **hidden**: 404 as a denial.  The API does not hide: a record that exists and that the
  caller may not see is a 403 (audited), one that does not exist a 404 for anyone (resident ids
  are random; the look-up by a guessable identifier refuses a role that may never read
  demographics before it looks: :meth:`~healthcard.platform.access.Access.refuse_role`).  The
  resident portal hides: its pages are about the logged-in resident only, and another
  resident's visit is "not found" there.

The columns (who calls, about whom):

======================  ===========================================================================
``anonymous``           no token (a page: a browser session that has not logged in)
``resident-self``       the resident, about themselves
``resident-other``      the same resident, about another resident (another district, no link)
``clinician-tie``       a clinician of the hospital where the resident's card was swiped (presence)
``clinician-no-tie``    a clinician of another institution, about the same resident
``public-health-in``    public health of the district the resident lives in
``public-health-out``   the same account, about a resident of another district
``insurer``             the NCMS office (insurer)
``cashier``             a cashier of the hospital where the card was swiped
``card-centre``         card-centre staff (card-admin)
``auditor``             the auditor
``admin``               the platform administrator
``terminal-card``       the hospital's terminal, about the resident whose card is in its slot
``terminal-no-card``    the same terminal, about a resident whose card it has not seen
======================  ===========================================================================

Path parameters name the resident the column is about and that resident's own objects (visit,
booking, settlement); routes that are about no resident (a schedule, a pool) are called with the
same values by both columns of one account.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from fastapi.routing import iter_route_contexts


class Outcome(StrEnum):
    ALLOW = "+"
    LOGIN = "L"
    DENY = "D"
    HIDDEN = "N"


CALLERS: tuple[str, ...] = (
    "anonymous",
    "resident-self",
    "resident-other",
    "clinician-tie",
    "clinician-no-tie",
    "public-health-in",
    "public-health-out",
    "insurer",
    "cashier",
    "card-centre",
    "auditor",
    "admin",
    "terminal-card",
    "terminal-no-card",
)

Route = tuple[str, str]  # (method, path template)

# fmt: off
_TABLE = """
#      path                                                               anon self othr tie  noti phin phou ins  cash card aud  adm  tcrd tno
# --- the API (bearer tokens) ----------------------------------------
GET    /fhir/Appointment                                                  L    +    D    +    D    D    D    D    D    D    D    D    D    D
GET    /fhir/Appointment/{booking_id}                                     L    +    D    +    D    D    D    D    D    D    D    D    D    D
GET    /fhir/Claim                                                        L    +    D    D    D    D    D    +    +    D    D    D    D    D
GET    /fhir/Claim/{settlement_id}                                        L    +    D    D    D    D    D    +    +    D    D    D    D    D
GET    /fhir/ClaimResponse/{settlement_id}                                L    +    D    D    D    D    D    +    +    D    D    D    D    D
GET    /fhir/Patient/{resident_id}                                        L    +    D    +    D    +    D    D    +    +    D    D    +    D
GET    /fhir/Schedule                                                     L    +    +    +    +    +    +    +    +    +    +    +    +    +
GET    /fhir/Schedule/{doctor_id}                                         L    +    +    +    +    +    +    +    +    +    +    +    +    +
GET    /fhir/Slot                                                         L    +    +    +    +    +    +    +    +    +    +    +    +    +
GET    /fhir/{resource}                                                   L    +    D    +    D    D    D    D    D    D    D    D    +    D
GET    /v1/appointments/bookings                                          L    +    D    +    D    D    D    D    D    D    D    D    D    D
POST   /v1/appointments/bookings                                          L    +    D    +    D    D    D    D    D    D    D    D    D    D
GET    /v1/appointments/bookings/{booking_id}                             L    +    D    +    D    D    D    D    D    D    D    D    D    D
POST   /v1/appointments/bookings/{booking_id}/cancel                      L    +    D    D    D    D    D    D    D    D    D    D    +    D
POST   /v1/appointments/check-in                                          L    D    D    D    D    D    D    D    D    D    D    D    +    +
GET    /v1/appointments/doctors/{doctor_id}/templates                     L    D    D    D    D    D    D    D    D    D    D    +    D    D
POST   /v1/appointments/doctors/{doctor_id}/templates                     L    D    D    D    D    D    D    D    D    D    D    +    D    D
GET    /v1/appointments/institutions/{code}/departments                   L    +    +    +    +    +    +    +    +    +    +    +    +    +
POST   /v1/appointments/institutions/{code}/departments                   L    D    D    D    D    D    D    D    D    D    D    +    D    D
GET    /v1/appointments/institutions/{code}/doctors                       L    +    +    +    +    +    +    +    +    +    +    +    +    +
POST   /v1/appointments/institutions/{code}/doctors                       L    D    D    D    D    D    D    D    D    D    D    +    D    D
GET    /v1/appointments/institutions/{code}/exceptions                    L    D    D    D    D    D    D    D    D    D    D    +    D    D
POST   /v1/appointments/institutions/{code}/exceptions                    L    D    D    D    D    D    D    D    D    D    D    +    D    D
GET    /v1/appointments/institutions/{code}/sessions                      L    +    +    +    +    +    +    +    +    +    +    +    +    +
POST   /v1/appointments/institutions/{code}/sessions/open                 L    D    D    D    D    D    D    D    D    D    D    +    D    D
POST   /v1/appointments/no-shows/sweep                                    L    D    D    D    D    D    D    D    D    D    D    +    D    D
GET    /v1/appointments/sessions/{session_id}                             L    +    +    +    +    +    +    +    +    +    +    +    +    +
GET    /v1/appointments/sessions/{session_id}/slots                       L    +    +    +    +    +    +    +    +    +    +    +    +    +
GET    /v1/appointments/suspension                                        L    +    D    +    D    D    D    D    D    D    D    D    D    D
POST   /v1/appointments/suspension/lift                                   L    D    D    D    D    D    D    D    D    D    D    D    D    D
POST   /v1/appointments/templates/{template_id}/end                       L    D    D    D    D    D    D    D    D    D    D    +    D    D
GET    /v1/areas/{area_code}/immunizations/coverage                       L    D    D    D    D    +    D    D    D    D    D    D    D    D
GET    /v1/areas/{area_code}/immunizations/due                            L    D    D    D    D    +    D    D    D    D    D    D    D    D
GET    /v1/audit/verify                                                   L    D    D    D    D    D    D    D    D    D    +    +    D    D
POST   /v1/auth/card                                                      L    D    D    D    D    D    D    D    D    D    D    D    D    D
GET    /v1/auth/me                                                        L    +    +    +    +    +    +    +    +    +    +    +    +    +
POST   /v1/auth/terminal                                                  +    +    +    +    +    +    +    +    +    +    +    +    +    +
POST   /v1/auth/terminal/challenge                                        +    +    +    +    +    +    +    +    +    +    +    +    +    +
POST   /v1/auth/token                                                     +    +    +    +    +    +    +    +    +    +    +    +    +    +
POST   /v1/banks/{bank}/notices                                           L    D    D    D    D    D    D    D    D    D    D    D    D    D
POST   /v1/banks/{bank}/reconciliation                                    L    D    D    D    D    D    D    D    D    D    D    +    D    D
POST   /v1/banks/{bank}/withdrawals                                       L    D    D    D    D    D    D    D    D    D    D    D    D    D
POST   /v1/cards/self-service                                             L    D    D    D    D    D    D    D    D    D    D    D    D    D
POST   /v1/encounters/uploads                                             L    D    D    D    D    D    D    D    D    D    D    D    +    +
POST   /v1/household-links                                                L    D    D    D    D    D    D    D    D    +    D    D    D    D
POST   /v1/household-links/{link_id}/revoke                               L    D    D    D    D    D    D    D    D    +    D    D    D    D
POST   /v1/mpi/candidates                                                 L    D    D    D    D    D    D    D    D    +    D    D    D    D
POST   /v1/mpi/candidates/{candidate_id}/decision                         L    D    D    D    D    D    D    D    D    +    D    +    D    D
POST   /v1/mpi/merges                                                     L    D    D    D    D    D    D    D    D    D    D    +    D    D
GET    /v1/mpi/queue                                                      L    D    D    D    D    D    D    D    D    +    D    +    D    D
GET    /v1/mpi/residents/{resident_id}/merges                             L    D    D    D    D    D    D    D    D    +    D    +    D    D
POST   /v1/mpi/unmerges                                                   L    D    D    D    D    D    D    D    D    D    D    +    D    D
POST   /v1/ncms/enrolments                                                L    D    D    D    D    D    D    +    D    D    D    D    D    D
GET    /v1/ncms/pools/{pool}/dashboard                                    L    D    D    D    D    D    D    +    D    D    D    D    D    D
GET    /v1/ops/metrics                                                    L    D    D    D    D    D    D    D    D    D    D    +    D    D
GET    /v1/residents/lookup                                               L    +    D    +    D    +    D    D    +    +    D    D    +    D
GET    /v1/residents/{resident_id}                                        L    +    D    +    D    +    D    D    +    +    D    D    +    D
GET    /v1/residents/{resident_id}/access-log                             L    +    D    D    D    D    D    D    D    D    +    D    D    D
GET    /v1/residents/{resident_id}/allergies                              L    +    D    +    D    D    D    D    D    D    D    D    +    D
POST   /v1/residents/{resident_id}/allergies                              L    D    D    +    D    D    D    D    D    D    D    D    +    D
GET    /v1/residents/{resident_id}/archive                                L    +    D    +    D    D    D    D    D    D    D    D    D    D
PUT    /v1/residents/{resident_id}/archive                                L    D    D    +    D    D    D    D    D    D    D    D    D    D
POST   /v1/residents/{resident_id}/break-glass                            L    D    D    +    +    D    D    D    D    D    D    D    D    D
GET    /v1/residents/{resident_id}/card                                   L    +    D    +    D    D    D    D    +    +    D    D    +    +
POST   /v1/residents/{resident_id}/card/lost                              L    +    D    D    D    D    D    D    D    D    D    D    D    D
GET    /v1/residents/{resident_id}/dependants                             L    +    D    D    D    D    D    D    D    D    D    D    D    D
GET    /v1/residents/{resident_id}/encounters                             L    +    D    +    D    D    D    D    D    D    D    D    +    D
POST   /v1/residents/{resident_id}/encounters                             L    D    D    +    D    D    D    D    D    D    D    D    +    D
GET    /v1/residents/{resident_id}/encounters/{encounter_id}              L    +    D    +    D    D    D    D    D    D    D    D    +    D
GET    /v1/residents/{resident_id}/encounters/{encounter_id}/card-record  L    +    D    +    D    D    D    D    D    D    D    D    +    D
POST   /v1/residents/{resident_id}/encounters/{encounter_id}/close        L    D    D    +    D    D    D    D    D    D    D    D    +    D
POST   /v1/residents/{resident_id}/encounters/{encounter_id}/items        L    D    D    +    D    D    D    D    D    D    D    D    +    D
GET    /v1/residents/{resident_id}/health-account                         L    +    D    D    D    D    D    +    +    D    D    D    D    D
POST   /v1/residents/{resident_id}/health-account                         L    +    D    D    D    D    D    D    +    D    D    D    D    D
GET    /v1/residents/{resident_id}/health-account/statement               L    +    D    D    D    D    D    +    +    D    D    D    D    D
PUT    /v1/residents/{resident_id}/health-account/status                  L    +    D    D    D    D    D    D    +    D    D    D    D    D
GET    /v1/residents/{resident_id}/hidden-categories                      L    +    D    D    D    D    D    D    D    D    D    D    D    D
PUT    /v1/residents/{resident_id}/hidden-categories                      L    +    D    D    D    D    D    D    D    D    D    D    D    D
GET    /v1/residents/{resident_id}/household-links                        L    D    D    D    D    D    D    D    D    +    D    D    D    D
POST   /v1/residents/{resident_id}/identifiers                            L    +    D    D    D    D    D    D    D    +    D    D    D    D
GET    /v1/residents/{resident_id}/immunizations                          L    +    D    +    D    +    D    D    D    D    D    D    D    D
POST   /v1/residents/{resident_id}/immunizations                          L    D    D    +    D    +    D    D    D    D    D    D    +    D
GET    /v1/residents/{resident_id}/ncms                                   L    +    D    D    D    D    D    +    +    D    D    D    D    D
GET    /v1/residents/{resident_id}/notifications                          L    +    D    D    D    D    D    D    D    D    D    D    D    D
POST   /v1/residents/{resident_id}/notifications/{notification_id}/read   L    +    D    D    D    D    D    D    D    D    D    D    D    D
GET    /v1/residents/{resident_id}/settlements                            L    +    D    D    D    D    D    +    +    D    D    D    D    D
GET    /v1/residents/{resident_id}/summary                                L    +    D    +    D    D    D    D    D    D    D    D    +    D
GET    /v1/residents/{resident_id}/vaccination-plan                       L    +    D    +    D    +    D    D    D    D    D    D    D    D
GET    /v1/residents/{resident_id}/visits-elsewhere                       L    +    D    +    D    D    D    D    D    D    D    D    +    D
POST   /v1/settlements                                                    L    D    D    D    D    D    D    D    +    D    D    D    D    D
POST   /v1/settlements/pre-settlement                                     L    D    D    D    D    D    D    D    +    D    D    D    D    D
GET    /v1/settlements/{settlement_id}                                    L    +    D    D    D    D    D    +    +    D    D    D    D    D
POST   /v1/settlements/{settlement_id}/refund                             L    D    D    D    D    D    D    D    +    D    D    D    D    D
POST   /v1/swipes                                                         L    D    D    D    D    D    D    D    D    D    D    D    +    +
POST   /v1/terminals/card-refusals                                        L    D    D    D    D    D    D    D    D    D    D    D    +    +
# --- the pages (a session cookie; every POST carries the session's CSRF token) ----------
GET    /docs                                                              +    +    +    +    +    +    +    +    +    +    +    +    +    +
GET    /docs/oauth2-redirect                                              +    +    +    +    +    +    +    +    +    +    +    +    +    +
GET    /health                                                            +    +    +    +    +    +    +    +    +    +    +    +    +    +
GET    /openapi.json                                                      +    +    +    +    +    +    +    +    +    +    +    +    +    +
GET    /                                                                  +    +    +    +    +    +    +    +    +    +    +    +    +    +
GET    /admin                                                             L    D    D    +    +    +    +    +    +    +    +    +    L    L
GET    /admin/cards                                                       L    D    D    D    D    D    D    D    D    +    D    +    L    L
GET    /admin/cards/applications                                          L    D    D    D    D    D    D    D    D    +    D    D    L    L
POST   /admin/cards/applications/{number}/approve                         L    D    D    D    D    D    D    D    D    +    D    D    D    D
POST   /admin/cards/applications/{number}/issue                           L    D    D    D    D    D    D    D    D    +    D    D    D    D
POST   /admin/cards/applications/{number}/reject                          L    D    D    D    D    D    D    D    D    +    D    D    D    D
GET    /admin/cards/card                                                  L    D    D    D    D    D    D    D    D    +    D    D    L    L
GET    /admin/cards/card/{number}                                         L    D    D    D    D    D    D    D    D    +    D    D    L    L
POST   /admin/cards/card/{number}/{word}                                  L    D    D    D    D    D    D    D    D    +    D    D    D    D
GET    /admin/cards/hotlist                                               L    D    D    D    D    D    D    D    D    +    D    +    L    L
GET    /admin/coverage                                                    L    D    D    D    D    +    +    D    D    D    D    D    L    L
GET    /admin/ncms                                                        L    D    D    D    D    D    D    +    D    D    D    D    L    L
GET    /admin/platform                                                    L    D    D    D    D    D    D    D    D    D    D    +    L    L
GET    /clinic                                                            L    D    D    +    +    D    D    D    +    D    D    D    L    L
GET    /clinic/patient/{resident_id}                                      L    D    D    +    D    D    D    D    +    D    D    D    L    L
GET    /clinic/patient/{resident_id}/bill/{encounter_id}                  L    D    D    D    D    D    D    D    +    D    D    D    L    L
POST   /clinic/patient/{resident_id}/bill/{encounter_id}                  L    D    D    D    D    D    D    D    +    D    D    D    D    D
POST   /clinic/patient/{resident_id}/visits                               L    D    D    +    D    D    D    D    D    D    D    D    D    D
GET    /clinic/patient/{resident_id}/visits/{encounter_id}                L    D    D    +    D    D    D    D    D    D    D    D    L    L
POST   /clinic/patient/{resident_id}/visits/{encounter_id}/diagnoses      L    D    D    +    D    D    D    D    D    D    D    D    D    D
GET    /clinic/patient/{resident_id}/visits/{encounter_id}/icd10          L    D    D    +    +    D    D    D    D    D    D    D    L    L
POST   /clinic/patient/{resident_id}/visits/{encounter_id}/labs           L    D    D    +    D    D    D    D    D    D    D    D    D    D
POST   /clinic/patient/{resident_id}/visits/{encounter_id}/prescriptions  L    D    D    +    D    D    D    D    D    D    D    D    D    D
POST   /clinic/scan                                                       L    D    D    +    +    D    D    D    +    D    D    D    D    D
GET    /kiosk                                                             +    +    +    +    +    +    +    +    +    +    +    +    +    +
POST   /kiosk/exit                                                        +    +    +    +    +    +    +    +    +    +    +    +    D    D
GET    /kiosk/issue                                                       +    +    +    +    +    +    +    +    +    +    +    +    +    +
GET    /kiosk/menu                                                        L    +    +    L    L    L    L    L    L    L    L    L    L    L
GET    /kiosk/pin                                                         +    +    +    +    +    +    +    +    +    +    +    +    +    +
POST   /kiosk/session                                                     +    +    +    +    +    +    +    +    +    +    +    +    D    D
GET    /portal                                                            L    +    +    L    L    L    L    L    L    L    L    L    L    L
GET    /portal/account                                                    L    +    +    L    L    L    L    L    L    L    L    L    L    L
POST   /portal/account                                                    L    +    +    L    L    L    L    L    L    L    L    L    D    D
GET    /portal/appointments                                               L    +    +    L    L    L    L    L    L    L    L    L    L    L
POST   /portal/appointments                                               L    +    +    L    L    L    L    L    L    L    L    L    D    D
GET    /portal/appointments/new                                           L    +    +    L    L    L    L    L    L    L    L    L    L    L
POST   /portal/appointments/{booking_id}/cancel                           L    +    D    L    L    L    L    L    L    L    L    L    D    D
GET    /portal/archive                                                    L    +    +    L    L    L    L    L    L    L    L    L    L    L
GET    /portal/card/lost                                                  L    +    +    L    L    L    L    L    L    L    L    L    L    L
POST   /portal/card/lost                                                  L    +    +    L    L    L    L    L    L    L    L    L    D    D
GET    /portal/ehc                                                        L    +    +    L    L    L    L    L    L    L    L    L    L    L
GET    /portal/ehc/code                                                   L    +    +    L    L    L    L    L    L    L    L    L    L    L
GET    /portal/fees                                                       L    +    +    L    L    L    L    L    L    L    L    L    L    L
GET    /portal/lang/{code}                                                +    +    +    +    +    +    +    +    +    +    +    +    +    +
GET    /portal/login                                                      +    +    +    +    +    +    +    +    +    +    +    +    +    +
POST   /portal/login                                                      +    +    +    +    +    +    +    +    +    +    +    +    D    D
POST   /portal/logout                                                     +    +    +    +    +    +    +    +    +    +    +    +    D    D
GET    /portal/privacy                                                    L    +    +    L    L    L    L    L    L    L    L    L    L    L
POST   /portal/privacy/hidden                                             L    +    +    L    L    L    L    L    L    L    L    L    D    D
GET    /portal/vaccinations                                               L    +    +    L    L    L    L    L    L    L    L    L    L    L
GET    /portal/vaccinations/{link_id}                                     L    +    +    L    L    L    L    L    L    L    L    L    L    L
GET    /portal/visits                                                     L    +    +    L    L    L    L    L    L    L    L    L    L    L
GET    /portal/visits/{encounter_id:int}.pdf                              L    +    N    L    L    L    L    L    L    L    L    L    L    L
GET    /portal/visits/{encounter_id}                                      L    +    N    L    L    L    L    L    L    L    L    L    L    L
GET    /staff/login                                                       +    +    +    +    +    +    +    +    +    +    +    +    +    +
POST   /staff/login                                                       +    +    +    +    +    +    +    +    +    +    +    +    D    D
POST   /staff/logout                                                      +    +    +    +    +    +    +    +    +    +    +    +    D    D
"""
# fmt: on


def _parse(text: str) -> dict[Route, tuple[Outcome, ...]]:
    rows: dict[Route, tuple[Outcome, ...]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        method, path, *cells = line.split()
        if len(cells) != len(CALLERS):
            raise ValueError(f"{method} {path}: {len(cells)} cells for {len(CALLERS)} callers")
        if (method, path) in rows:
            raise ValueError(f"{method} {path} is listed twice")
        rows[(method, path)] = tuple(Outcome(c) for c in cells)
    return rows


#: THE table: (method, path template) → the outcome for each of :data:`CALLERS`
TABLE: Mapping[Route, tuple[Outcome, ...]] = MappingProxyType(_parse(_TABLE))


def expected(method: str, path: str, caller: str) -> Outcome:
    return TABLE[(method, path)][CALLERS.index(caller)]


def served_routes(app: Any) -> Iterator[Route]:
    """Every (method, path template) ``app`` (a FastAPI app) serves — HEAD aside (it answers as
    its GET); mounted apps (``/static``: public files) are not routes of the table."""
    for route in iter_route_contexts(app.routes):
        if route.endpoint is None or not route.methods:
            continue
        for method in sorted(route.methods):
            if method != "HEAD":
                yield method, str(route.path)


_WORDS = {Outcome.ALLOW: "✓", Outcome.LOGIN: "login", Outcome.DENY: "403", Outcome.HIDDEN: "404"}


def markdown(rows: Iterable[tuple[Route, tuple[Outcome, ...]]] | None = None) -> str:
    """The table as Markdown (docs/api.md, "Who may call what")."""
    items = list(TABLE.items() if rows is None else rows)
    header = "| method | path | " + " | ".join(CALLERS) + " |"
    rule = "|---|---|" + "---|" * len(CALLERS)
    lines = [header, rule]
    for (method, path), cells in items:
        shown = path.replace("|", "\\|")
        lines.append(f"| {method} | `{shown}` | " + " | ".join(_WORDS[c] for c in cells) + " |")
    return "\n".join(lines) + "\n"
