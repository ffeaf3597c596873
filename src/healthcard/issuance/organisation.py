"""Who is who in the card system: card centres and hospitals, collection points (信息采集点),
operators and their roles.  Reference data, not a resident's; changed by the card centre's
administrators (``healthcard org …``) and by the demo set-up."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from healthcard.errors import Duplicate, InvalidValue
from healthcard.issuance.keycentre import issuer_code
from healthcard.issuance.lifecycle import Role
from healthcard.keys.keyset import province_code
from healthcard.storage import tables as t
from healthcard.storage.db import Database
from healthcard.storage.uow import UnitOfWork

KINDS = ("province-centre", "city-centre", "hospital", "clinic", "cdc", "ncms-office")
#: the five levels of medical institution (省 市 县 乡 村)
LEVELS = ("province", "city", "county", "township", "village")
#: the province card centres the demo and the tests set up
PROVINCE_CENTRES = {"41": ("河南省卫生健康委员会", "410000"), "44": ("广东省卫生健康委员会", "440000")}


def _area(code: str) -> str:
    if len(code) != 6 or not code.isdigit():
        raise InvalidValue("area", f"{code!r}: a GB/T 2260 area code is 6 digits")
    try:
        province_code(code[:2])
    except InvalidValue as exc:
        raise InvalidValue("area", exc.message) from None
    return code


def _name(name: str) -> str:
    if not name.strip() or len(name) > 60:
        raise InvalidValue("name", "1 to 60 characters")
    return name.strip()


@dataclass(frozen=True)
class OperatorSpec:
    id: str
    name: str
    role: str
    institution: str
    point: str | None = None


class Organisation:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _commit(self, uow: UnitOfWork, field: str, key: str) -> None:
        try:
            uow.commit()
        except IntegrityError:
            uow.rollback()
            raise Duplicate(field, f"{key} exists already") from None

    def add_institution(
        self,
        code: str,
        *,
        name: str,
        area: str,
        kind: str = "province-centre",
        issues: bool = True,
        level: str | None = None,
    ) -> None:
        if kind not in KINDS:
            raise InvalidValue("kind", f"{kind!r}: one of {', '.join(KINDS)}")
        if level is not None and level not in LEVELS:
            raise InvalidValue("level", f"{level!r}: one of {', '.join(LEVELS)}")
        if not code or len(code) > 22 or not code.isalnum():
            raise InvalidValue("code", f"{code!r}: up to 22 letters and digits (WS 218)")
        row = t.Institution(
            code=code, name=_name(name), kind=kind, area_code=_area(area), issues_cards=issues, level=level
        )
        with self.db.uow() as uow:
            if uow.reference.institution(code) is not None:
                raise Duplicate("code", f"institution {code} exists already")
            uow.reference.add(row)
            self._commit(uow, "code", code)

    def add_collection_point(self, code: str, *, name: str, area: str, institution: str) -> None:
        if not code or len(code) > 20:
            raise InvalidValue("code", f"{code!r}: 1 to 20 characters")
        with self.db.uow() as uow:
            if uow.reference.institution(institution) is None:
                raise InvalidValue("institution", f"no institution {institution}")
            if uow.reference.collection_point(code) is not None:
                raise Duplicate("code", f"collection point {code} exists already")
            uow.reference.add(
                t.CollectionPoint(
                    code=code, name=_name(name), area_code=_area(area), institution_code=institution
                )
            )
            self._commit(uow, "code", code)

    def add_operator(self, spec: OperatorSpec) -> None:
        if spec.role not in {r.value for r in Role}:
            raise InvalidValue("role", f"{spec.role!r}: one of {', '.join(r.value for r in Role)}")
        if not spec.id or len(spec.id) > 40:
            raise InvalidValue("id", f"{spec.id!r}: 1 to 40 characters")
        with self.db.uow() as uow:
            if uow.reference.institution(spec.institution) is None:
                raise InvalidValue("institution", f"no institution {spec.institution}")
            if spec.point is not None and uow.reference.collection_point(spec.point) is None:
                raise InvalidValue("point", f"no collection point {spec.point}")
            if uow.reference.operator(spec.id) is not None:
                raise Duplicate("id", f"operator {spec.id} exists already")
            uow.reference.add(
                t.Operator(
                    id=spec.id,
                    name=_name(spec.name),
                    role=spec.role,
                    institution_code=spec.institution,
                    collection_point_code=spec.point,
                )
            )
            self._commit(uow, "id", spec.id)

    def has_institution(self, code: str) -> bool:
        with self.db.uow() as uow:
            return uow.reference.institution(code) is not None

    def has_operator(self, operator_id: str) -> bool:
        with self.db.uow() as uow:
            return uow.reference.operator(operator_id) is not None

    def ensure_demo(self) -> None:
        """The demo organisation (idempotent): the card centres of Henan and Guangdong, a
        collection point in Zhengzhou's Zhongyuan district, a hospital with a self-service
        kiosk, and ``demo-admin-PP`` / ``demo-clerk-PP`` operators of each centre."""
        for province, (name, area) in PROVINCE_CENTRES.items():
            code = issuer_code(province)
            if not self.has_institution(code):
                self.add_institution(code, name=name, area=area)
            for role in (Role.CARD_ADMIN, Role.CLERK):
                operator = f"demo-{role.value.split('-')[-1]}-{province}"
                if not self.has_operator(operator):
                    self.add_operator(OperatorSpec(operator, operator, role.value, code))
        if not self.has_institution("410102001"):
            self.add_institution(
                "410102001", name="郑州市中原区人民医院", area="410102", kind="hospital", issues=False
            )
            self.add_collection_point(
                "410102-01", name="中原区建设路社区卫生服务中心", area="410102", institution="41000000001"
            )
            self.add_operator(
                OperatorSpec("demo-kiosk-41", "中原区人民医院自助机", Role.KIOSK.value, "410102001")
            )
