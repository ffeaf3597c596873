"""The administrators' dashboards under ``/admin``: the card centre's issuance, the NCMS office's
fund, public health's immunization coverage and the platform's load and audit chain.

Each page calls the node's use cases with the logged-in actor, exactly as the API does (the
use case checks the role and scope again and audits the read), and draws its charts with
:mod:`healthcard.web.charts` — SVG, each with the same figures in a table beside it.  The
figures are counts and sums: no page here names a resident.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query
from starlette.requests import Request
from starlette.responses import Response

from healthcard.api.metrics import BUCKETS_MS
from healthcard.clock import local_date
from healthcard.platform.access import Actor, Role
from healthcard.platform.immunization import DoseState
from healthcard.web import charts, i18n
from healthcard.web.pages import lang_of, node_of, page_router, render
from healthcard.web.staff import AnyStaffDep, staff

router = page_router("/admin")

CardAdminDep = Annotated[Actor, Depends(staff(Role.CARD_ADMIN, Role.ADMIN))]
InsurerDep = Annotated[Actor, Depends(staff(Role.INSURER))]
PublicHealthDep = Annotated[Actor, Depends(staff(Role.PUBLIC_HEALTH))]
AdminDep = Annotated[Actor, Depends(staff(Role.ADMIN))]

#: days of the card centre's chart
ISSUED_DAYS = 30


@dataclass(frozen=True)
class Board:
    key: str  # the menu's ``nav`` mark
    href: str
    roles: frozenset[Role]

    @property
    def title(self) -> str:
        """Its catalog key (whole, so that the templates name no key by halves)."""
        return f"board.{self.key}"

    @property
    def help(self) -> str:
        return f"board.{self.key}.help"


#: the dashboards, and who may open each (the index lists the ones of the person's role)
BOARDS = (
    Board("cards", "/admin/cards", frozenset({Role.CARD_ADMIN, Role.ADMIN})),
    # the card centre's work (web/cardcentre.py): people's applications and cards, the hot lists
    Board("applications", "/admin/cards/applications", frozenset({Role.CARD_ADMIN})),
    Board("card", "/admin/cards/card", frozenset({Role.CARD_ADMIN})),
    Board("hotlist", "/admin/cards/hotlist", frozenset({Role.CARD_ADMIN, Role.ADMIN})),
    Board("ncms", "/admin/ncms", frozenset({Role.INSURER})),
    Board("coverage", "/admin/coverage", frozenset({Role.PUBLIC_HEALTH})),
    Board("platform", "/admin/platform", frozenset({Role.ADMIN})),
)


def boards_of(actor: Actor) -> list[Board]:
    return [b for b in BOARDS if actor.role in b.roles]


def _page(request: Request, actor: Actor, template: str, nav: str, context: dict[str, object]) -> Response:
    return render(request, template, {"boards": boards_of(actor), "nav": nav, **context})


def _yuan(value: float) -> str:
    """An axis or bar value in fen (a float only because the chart's scale divides) as yuan."""
    return i18n.yuan(round(value))


@router.get("")
def index(request: Request, actor: AnyStaffDep) -> Response:
    return _page(request, actor, "admin/index.html", "index", {})


# --- card centre ---------------------------------------------------------------------------------
@router.get("/cards")
def cards(request: Request, actor: CardAdminDep) -> Response:
    """Cards issued per day by city over the last 30 local days (days without a card included,
    so the axis is time)."""
    node = node_of(request)
    issued = node.cards_issued(actor, days=ISSUED_DAYS)
    today = local_date(node.clock)
    days = [today - dt.timedelta(days=n) for n in range(ISSUED_DAYS - 1, -1, -1)]
    cities = sorted({row.city_code for row in issued})
    counts = {(row.day, row.city_code): row.cards for row in issued}
    series = {city: [float(counts.get((day, city), 0)) for day in days] for city in cities}
    _ = i18n.Translator(lang_of(request))
    chart = charts.columns(_("cards.chart"), [d.strftime("%m-%d") for d in days], series)
    rows = [(day, [counts.get((day, city), 0) for city in cities]) for day in reversed(days)]
    rows = [(day, n) for day, n in rows if any(n)]
    totals = [sum(counts.get((day, city), 0) for day in days) for city in cities]
    return _page(
        request,
        actor,
        "admin/cards.html",
        "cards",
        {"chart": chart, "cities": cities, "rows": rows, "totals": totals, "days": ISSUED_DAYS},
    )


# --- NCMS office --------------------------------------------------------------------------------
@router.get("/ncms")
def ncms(
    request: Request,
    actor: InsurerDep,
    pool: Annotated[str, Query(pattern=r"^[0-9A-Za-z-]{1,16}$")] = "demo",
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> Response:
    """The pool's fund: balance, payments by institution level and by month, the 20 largest
    and the ones flagged for review (``node.settlement.dashboard``: the office of the pool only)."""
    board = node_of(request).settlement.dashboard(actor, pool, year)
    _ = i18n.Translator(lang_of(request))
    chart = charts.bars(
        _("ncms.chart"),
        [charts.Point(_.of("level", row.key), float(row.fund_fen)) for row in board.by_level],
        fmt=_yuan,
    )
    return _page(request, actor, "admin/ncms.html", "ncms", {"board": board, "chart": chart})


# --- public health ------------------------------------------------------------------------------
@router.get("/coverage")
def coverage(request: Request, actor: PublicHealthDep) -> Response:
    """Immunization coverage by vaccine and dose in the actor's own area, and how many doses are
    due or overdue there (the list itself is the public-health worker's, not this page's)."""
    node = node_of(request)
    area = actor.area_code or ""
    rows = node.coverage(actor, area)
    due = node.due_in_area(actor, area)
    _ = i18n.Translator(lang_of(request))
    chart = charts.hbars(
        _("coverage.chart", area=area),
        [charts.Point(f"{row.vaccine_name} {row.dose}", row.rate * 100) for row in rows],
    )
    counts = {
        state: sum(1 for e in due if e.status.state is state) for state in (DoseState.DUE, DoseState.OVERDUE)
    }
    counties = node.coverage_map(actor, area) if len(area) == 4 else []
    vaccines = list(dict.fromkeys((r.vaccine, r.vaccine_name) for r in rows))
    return _page(
        request,
        actor,
        "admin/coverage.html",
        "coverage",
        {
            "area": area,
            "rows": rows,
            "chart": chart,
            "due": counts[DoseState.DUE],
            "overdue": counts[DoseState.OVERDUE],
            "children": len({e.resident_id for e in due}),
            "counties": [(c, c.by_vaccine()) for c in counties],
            "vaccines": vaccines,
        },
    )


# --- platform -----------------------------------------------------------------------------------
@router.get("/platform")
def platform(request: Request, actor: AdminDep) -> Response:
    """This worker's request metrics (since it started) and the audit chain's verification."""
    metrics = request.app.state.metrics.snapshot()
    report = node_of(request).verify_audit(actor)
    _ = i18n.Translator(lang_of(request))
    ok = metrics.requests - metrics.client_errors - metrics.server_errors
    chart = charts.bars(
        _("platform.chart"),
        [
            charts.Point(_("platform.ok"), float(ok)),
            charts.Point("4xx", float(metrics.client_errors)),
            charts.Point("5xx", float(metrics.server_errors)),
        ],
    )
    return _page(
        request,
        actor,
        "admin/platform.html",
        "platform",
        {
            "metrics": metrics,
            "routes": [(r, _ms(r.p50_ms), _ms(r.p95_ms), _ms(r.p99_ms)) for r in metrics.routes],
            "ok": ok,
            "report": report,
            "chart": chart,
        },
    )


def _ms(bound: float) -> str:
    """A quantile of the latency histogram: the upper bound of its bucket (the last is open)."""
    if bound == float("inf"):
        return f"> {BUCKETS_MS[-2]:,.0f}"
    return f"≤ {bound:,.0f}"


__all__ = ["BOARDS", "Board", "boards_of", "router"]
