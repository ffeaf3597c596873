"""A visit record as PDF (打印就诊记录), for the resident at home (the portal) or at the kiosk's
printer: ``GET /portal/visits/{id}.pdf``.

The visit comes from the same use case as the portal's page (``node.encounter`` with the logged-in
resident and the resident id of the token), so someone else's visit is 404 here too and the read
is audited the same way.  The PDF is drawn with reportlab in Chinese through its built-in CID font
STSong-Light (the reader's own Song typeface: no font file shipped, none embedded), every label
from the i18n catalog in the page's language; ``invariant`` makes the same visit the same bytes.

Its router is mounted before the portal's, whose ``/visits/{encounter_id}`` would otherwise take
``5.pdf`` for an id.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Annotated

from fastapi import Path
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from starlette.requests import Request
from starlette.responses import Response

from healthcard.platform.records import EncounterView
from healthcard.web import i18n
from healthcard.web.pages import HEADERS, ResidentDep, lang_of, node_of, own_resident, page_router

router = page_router("/portal")

FONT = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))


def visit_pdf(visit: EncounterView, *, name: str, lang: str, printed_at: dt.datetime) -> bytes:
    """The visit on A4 pages: where and when, diagnoses, labs (out-of-range ones flagged),
    prescriptions, procedures and fees."""
    _ = i18n.Translator(lang)
    out = io.BytesIO()
    pdf = Canvas(out, pagesize=A4, invariant=True, pageCompression=1)
    pdf.setTitle(f"{_('pdf.title')} {visit.number}")
    pdf.setAuthor(_("site.name"))
    width, height = A4
    left, top, bottom = 20 * mm, height - 20 * mm, 20 * mm
    y = top

    def line(text: str, size: float = 11, indent: float = 0, gap: float = 1.5) -> None:
        nonlocal y
        if y < bottom:
            pdf.showPage()
            y = top
        pdf.setFont(FONT, size)
        # long lines are cut to the page (a visit's items are short; the PDF is a printout)
        limit = width - 2 * left - indent
        while text and pdf.stringWidth(text, FONT, size) > limit:
            text = text[:-1]
        pdf.drawString(left + indent, y, text)
        y -= size * gap

    def heading(key: str) -> None:
        nonlocal y
        y -= 4
        line(_(key), 13)

    line(f"{_('pdf.title')} · {visit.institution_name}", 16, gap=1.8)
    line(f"{_('pdf.resident')}: {name}")
    line(f"{_('visit.where')}: {visit.institution_name} · {visit.department}")
    line(f"{_('visit.kind')}: {_.of('kind', visit.kind)} · {visit.number}")
    line(f"{_('visit.clinician')}: {visit.clinician or '—'}")
    ended = f" — {i18n.local(visit.ended_at)}" if visit.ended_at else ""
    line(
        f"{_('visit.status')}: {_.of('encounter.status', visit.status)} · {i18n.local(visit.started_at)}{ended}"
    )

    heading("visit.diagnoses")
    for d in visit.diagnoses:
        primary = f" ({_('visit.primary')})" if d.primary else ""
        line(f"{d.code}  {d.name}{primary}", indent=8)
    if not visit.diagnoses:
        line(_("summary.none"), indent=8)

    heading("visit.labs")
    for o in visit.observations:
        low = "" if o.low is None else f"{o.low:g}"
        high = "" if o.high is None else f"{o.high:g}"
        span = f"  [{low}–{high}]" if o.low is not None or o.high is not None else ""
        flag = f"  {_.of('flag', o.flag)}" if o.flag else ""
        line(f"{o.name}: {o.value} {o.unit or ''}{span}{flag}", indent=8)
    if not visit.observations:
        line(_("summary.none"), indent=8)

    heading("visit.prescriptions")
    for p in visit.prescriptions:
        days = _("visit.days", days=p.days)
        line(f"{p.drug} · {p.dose}{p.dose_unit} · {p.frequency} · {days}", indent=8)
    if not visit.prescriptions:
        line(_("summary.none"), indent=8)

    heading("visit.procedures")
    for pr in visit.procedures:
        line(f"{pr.code}  {pr.name} · {pr.performed_on}", indent=8)
    if not visit.procedures:
        line(_("summary.none"), indent=8)

    heading("visit.fees")
    for f in visit.fees:
        line(f"{f.category}: ¥{i18n.yuan(f.amount_fen)}", indent=8)
    if visit.fees:
        line(f"{_('fee.amount')}: ¥{i18n.yuan(sum(f.amount_fen for f in visit.fees))}", indent=8)
    else:
        line(_("summary.none"), indent=8)

    pdf.setFont(FONT, 8)
    pdf.drawString(left, bottom - 8 * mm, _("pdf.printed", at=i18n.local(printed_at)))
    pdf.showPage()
    pdf.save()
    return out.getvalue()


@router.get("/visits/{encounter_id:int}.pdf")
def visit_as_pdf(
    request: Request, actor: ResidentDep, encounter_id: Annotated[int, Path(ge=1, le=2**62)]
) -> Response:
    node = node_of(request)
    rid = own_resident(actor)
    visit = node.encounter(actor, rid, encounter_id)
    person = node.person(actor, rid)
    body = visit_pdf(visit, name=person.name, lang=lang_of(request), printed_at=node.clock.now())
    headers = dict(HEADERS)
    stem = re.sub(r"[^A-Za-z0-9-]", "", visit.number) or str(encounter_id)
    headers["Content-Disposition"] = f'inline; filename="visit-{stem}.pdf"'
    return Response(body, media_type="application/pdf", headers=headers)


__all__ = ["router", "visit_pdf"]
