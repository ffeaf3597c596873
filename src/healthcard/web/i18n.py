"""The words of the web pages, Chinese first, English second: one catalog, every string a page
shows goes through it (``{{ _("key") }}`` in a template, :class:`Translator` in Python).

* ``_("key", **values)`` — a sentence, with ``{name}`` placeholders filled (the values are
  escaped by the template like any other);
* ``_.of("prefix", value)`` — the word for a code (a card status, a role, a dose state …): the
  catalog's ``prefix.value`` when it has one, else the value itself (data the catalog does not
  know is shown as it is, never dropped).

A key missing from the catalog shows as the key (a test checks that every key the templates use
is here, in both languages).  Messages of the domain's errors (``InvalidValue.message``) are the
API's own words and are shown as they are, next to the field.
"""

from __future__ import annotations

import datetime as dt

from healthcard.clock import SHANGHAI

LANGS = ("zh", "en")
DEFAULT = "zh"
HTML_LANG = {"zh": "zh-CN", "en": "en"}

#: key → (Chinese, English)
CATALOG: dict[str, tuple[str, str]] = {
    # --- the frame
    "site.name": ("居民健康网", "Resident Health Portal"),
    "site.footer": (
        "居民健康卡 · 区域卫生信息平台。您的每一次查阅都会记录在审计日志中。",
        "Resident Health Card · regional health information platform. Every access is audited.",
    ),
    "nav.skip": ("跳到正文", "Skip to content"),
    "nav.language": ("语言", "Language"),
    "nav.menu": ("主菜单", "Main menu"),
    "nav.logout": ("退出登录", "Log out"),
    "nav.home": ("我的首页", "Home"),
    "nav.appointments": ("预约挂号", "Appointments"),
    "nav.visits": ("就诊记录", "Visits"),
    "nav.vaccinations": ("预防接种", "Vaccinations"),
    "nav.fees": ("费用与报销", "Fees and claims"),
    "nav.account": ("健康账户", "Health account"),
    "nav.archive": ("健康档案", "Health archive"),
    "nav.privacy": ("隐私与查阅记录", "Privacy and access log"),
    "nav.ehc": ("电子健康卡", "Electronic health card"),
    # --- errors
    "error.back": ("返回首页", "Back to the portal"),
    "error.bad_request": ("请求无法处理", "The request cannot be handled"),
    "error.bad_request.help": ("请检查输入后重试。", "Please check what you entered and try again."),
    "error.login": ("请先登录", "Please log in"),
    "error.login.help": ("您的登录已失效，请重新登录。", "Your session has ended; please log in again."),
    "error.forbidden": ("无权访问", "Not allowed"),
    "error.forbidden.help": ("您没有权限进行此操作。", "You may not do this."),
    "error.csrf": ("表单已过期", "The form has expired"),
    "error.csrf.help": (
        "为保护您的账户，此表单未被接受，未做任何更改。请返回页面刷新后重试。",
        "To protect your account this form was not accepted and nothing was changed. Go back, "
        "reload the page and try again.",
    ),
    "error.not_found": ("未找到", "Not found"),
    "error.not_found.help": (
        "您要查看的内容不存在，或不属于您。",
        "What you asked for does not exist, or is not yours.",
    ),
    "error.conflict": ("无法完成", "Cannot be done"),
    "error.conflict.help": ("当前状态不允许此操作。", "The current state does not allow this."),
    "error.invalid": ("输入有误", "Invalid input"),
    "error.invalid.help": ("请检查输入后重试。", "Please check what you entered and try again."),
    "error.unavailable": ("服务暂不可用", "Service unavailable"),
    "error.unavailable.help": ("请稍后再试。", "Please try again shortly."),
    "error.server": ("系统出错了", "Something went wrong"),
    "error.server.help": (
        "我们已记录此问题，请稍后再试。",
        "The problem was logged; please try again later.",
    ),
    # --- logging in
    "login.title": ("居民登录", "Resident login"),
    "login.username": ("身份证号", "ID number"),
    "login.username.hint": ("即您的居民健康卡卡号", "The number of your resident health card"),
    "login.password": ("密码", "Password"),
    "login.submit": ("登录", "Log in"),
    "login.expired": ("登录已过期，请重新登录。", "Your session expired; please log in again."),
    "login.refused": ("身份证号或密码错误", "The ID number or the password is wrong"),
    "login.kiosk": (
        "在医院的自助终端上，也可以插入健康卡并输入卡密码登录。",
        "At a hospital's self-service kiosk you can also insert your card and enter its PIN.",
    ),
    # --- confirmations
    "done.booked": ("预约成功。", "Booked."),
    "done.cancelled": ("预约已取消。", "The booking is cancelled."),
    "done.opened": ("健康账户已开通。", "Your health account is open."),
    # --- home
    "home.hello": ("{name}，您好", "Hello, {name}"),
    "home.card": ("我的居民健康卡", "My health card"),
    "home.summary": ("健康摘要", "Health summary"),
    "home.recent": ("最近就诊", "Recent visits"),
    "card.number": ("卡号", "Card number"),
    "card.status": ("状态", "Status"),
    "card.valid": ("有效期", "Valid"),
    "card.expired": ("已过期", "expired"),
    "card.none": ("平台上没有您的健康卡记录。", "The platform holds no card of yours."),
    "card.report_lost.where": (
        "卡丢失了？请到任一信息采集点、卡管中心窗口或医院自助终端办理挂失（网上挂失尚未开通）。",
        "Lost your card? Report it at any collection point, card centre desk or hospital kiosk "
        "(reporting online is not available yet).",
    ),
    "card.status.PERSONALISING": ("制卡中", "Being made"),
    "card.status.ISSUED": ("已制卡待领取", "Issued, not yet collected"),
    "card.status.ACTIVE": ("正常", "Active"),
    "card.status.LOST": ("已挂失", "Reported lost"),
    "card.status.REPLACED": ("已补换", "Replaced"),
    "card.status.CANCELLED": ("已注销", "Cancelled"),
    "card.status.EXPIRED": ("已过期", "Expired"),
    "card.status.SPOILED": ("作废", "Spoiled"),
    "summary.sex": ("性别", "Sex"),
    "summary.born": ("出生日期", "Born"),
    "summary.blood": ("血型", "Blood type"),
    "summary.alerts": ("医学警示", "Medical alerts"),
    "summary.allergies": ("过敏", "Allergies"),
    "summary.none": ("无记录", "None recorded"),
    "summary.unknown": ("未记录", "Not recorded"),
    "sex.0": ("未知", "Unknown"),
    "sex.1": ("男", "Male"),
    "sex.2": ("女", "Female"),
    "sex.9": ("未说明", "Not stated"),
    "abo.1": ("A型", "A"),
    "abo.2": ("B型", "B"),
    "abo.3": ("O型", "O"),
    "abo.4": ("AB型", "AB"),
    "abo.5": ("不详", "Unknown"),
    "rh.1": ("Rh阳性", "Rh positive"),
    "rh.2": ("Rh阴性", "Rh negative"),
    "rh.3": ("Rh不详", "Rh unknown"),
    "alert.asthma": ("哮喘", "Asthma"),
    "alert.heart_disease": ("心脏病", "Heart disease"),
    "alert.cerebrovascular": ("脑血管病", "Cerebrovascular disease"),
    "alert.epilepsy": ("癫痫", "Epilepsy"),
    "alert.coagulation_disorder": ("凝血紊乱", "Coagulation disorder"),
    "alert.diabetes": ("糖尿病", "Diabetes"),
    "alert.glaucoma": ("青光眼", "Glaucoma"),
    "alert.dialysis": ("透析", "Dialysis"),
    "alert.organ_transplant": ("器官移植", "Organ transplant"),
    "alert.organ_loss": ("器官缺失", "Organ loss"),
    "alert.prosthesis": ("装有假肢", "Prosthesis"),
    "alert.pacemaker": ("装有心脏起搏器", "Pacemaker"),
    "yesno.True": ("有", "Yes"),
    "yesno.False": ("无", "No"),
    "yesno.None": ("未记录", "Not recorded"),
    # --- archive
    "archive.number": ("档案编号", "Archive number"),
    "archive.psychiatric": ("精神疾病史", "Psychiatric history"),
    "archive.updated": ("最近更新", "Last updated"),
    "archive.alert": ("警示项目", "Alert"),
    "archive.recorded": ("记录", "Recorded"),
    "archive.other": ("其他医学警示", "Other medical alert"),
    "archive.history": ("既往史", "Past history"),
    "archive.family": ("家族史", "Family history"),
    "archive.none": (
        "您还没有建立健康档案。请到社区卫生服务中心建档。",
        "You have no health archive yet; your community health centre makes one.",
    ),
    # --- visits
    "visits.none": ("暂无就诊记录", "No visits yet"),
    "visit.title": ("就诊详情", "Visit"),
    "visit.where": ("医院 · 科室", "Hospital · department"),
    "visit.kind": ("就诊类型", "Kind"),
    "visit.clinician": ("医生", "Clinician"),
    "visit.status": ("状态", "Status"),
    "visit.diagnoses": ("诊断", "Diagnoses"),
    "visit.primary": ("主要诊断", "primary"),
    "visit.labs": ("检验检查", "Lab and exam results"),
    "visit.prescriptions": ("处方", "Prescriptions"),
    "visit.procedures": ("手术与操作", "Procedures"),
    "visit.fees": ("费用", "Fees"),
    "visit.days": ("{days}天", "{days} days"),
    "kind.outpatient": ("门诊", "Outpatient"),
    "kind.inpatient": ("住院", "Inpatient"),
    "kind.emergency": ("急诊", "Emergency"),
    "encounter.status.open": ("进行中", "Open"),
    "encounter.status.closed": ("已完成", "Closed"),
    "lab.item": ("项目", "Test"),
    "lab.value": ("结果", "Result"),
    "lab.range": ("参考范围", "Normal range"),
    "lab.flag": ("提示", "Flag"),
    "flag.H": ("↑ 偏高", "↑ high"),
    "flag.L": ("↓ 偏低", "↓ low"),
    "flag.N": ("正常", "normal"),
    "fee.category": ("费用类别", "Category"),
    "fee.amount": ("金额", "Amount"),
    # --- vaccinations
    "vacc.attention": ("应种与逾期", "Due and overdue"),
    "vacc.nothing_due": ("目前没有应种或逾期的疫苗。", "No vaccine is due or overdue now."),
    "vacc.children": (
        "为子女查看接种计划的家庭代理功能尚未开通；请使用子女本人的账户或到接种门诊查询。",
        "Viewing your children's plans through a household link is not available yet; use the "
        "child's own account or ask the vaccination clinic.",
    ),
    "vacc.plan": ("国家免疫规划", "National immunization schedule"),
    "vacc.adult": (
        "国家免疫规划针对儿童；您已过接种年龄。",
        "The national schedule is for children; you are past it.",
    ),
    "vacc.given": ("已接种", "Doses given"),
    "vacc.vaccine": ("疫苗", "Vaccine"),
    "vacc.dose_col": ("剂次", "Dose"),
    "vacc.age": ("接种月龄", "Age"),
    "vacc.state": ("状态", "State"),
    "vacc.date": ("日期", "Date"),
    "vacc.dose": ("第{n}剂", "dose {n}"),
    "vacc.months": ("{n}月龄", "{n} months"),
    "vacc.due_from": ("应种日期 {day}", "due from {day}"),
    "dose.state.given": ("已种", "Given"),
    "dose.state.upcoming": ("未到期", "Upcoming"),
    "dose.state.due": ("应种", "Due"),
    "dose.state.overdue": ("逾期", "Overdue"),
    # --- fees
    "fees.insured": ("{year}年新农合参合情况", "NCMS insurance {year}"),
    "fees.not_insured": ("本年度未参合。", "Not insured this year."),
    "fees.ncms_number": ("参合号", "NCMS number"),
    "fees.fund_paid_year": ("本年基金已支付", "Paid by the fund this year"),
    "fees.fund_left": ("年度封顶剩余", "Left of the annual cap"),
    "fees.outpatient_left": ("门诊封顶剩余", "Left of the outpatient cap"),
    "fees.settlements": ("结算记录", "Settlements"),
    "fees.totals": (
        "合计：基金支付 ¥{fund}，个人支付 ¥{own}",
        "In all: the fund paid ¥{fund}, you paid ¥{own}",
    ),
    "fees.none": ("暂无结算记录", "No settlements yet"),
    "fees.when": ("时间", "When"),
    "fees.where": ("医疗机构", "Institution"),
    "fees.total": ("总费用", "Total"),
    "fees.fund": ("基金支付", "Fund paid"),
    "fees.self": ("个人支付", "I paid"),
    "fees.paid_by": ("支付方式", "Paid by"),
    "fees.refund": ("退费", "refund"),
    "paid.account": ("健康账户", "Health account"),
    "paid.cash": ("现金", "Cash"),
    # --- health account
    "account.balance": ("账户余额", "Balance"),
    "account.bank": ("合作银行", "Bank"),
    "account.number": ("账号", "Account number"),
    "account.status": ("状态", "Status"),
    "account.status.ACTIVE": ("正常", "Active"),
    "account.status.FROZEN": ("已冻结", "Frozen"),
    "account.status.CLOSED": ("已销户", "Closed"),
    "account.topup": ("如何充值", "How to top up"),
    "account.topup.how": (
        "充值由银行办理：请通过{bank}柜台、网银或手机银行向账号 {number} 转账，银行到账通知后余额自动更新。",
        "Top-ups are made by the bank: transfer to account {number} at {bank} (counter, online "
        "or mobile banking); the balance updates when the bank's notice arrives.",
    ),
    "account.statement": ("账户明细 {start} 至 {end}", "Statement {start} to {end}"),
    "account.opening": ("期初余额 ¥{amount}", "Opening balance ¥{amount}"),
    "account.closing": ("期末余额 ¥{amount}", "Closing balance ¥{amount}"),
    "account.no_lines": ("此期间无交易。", "No transactions in this period."),
    "account.kind": ("类型", "Kind"),
    "account.after": ("余额", "Balance after"),
    "account.none": ("您还没有健康账户", "You have no health account"),
    "account.why": (
        "健康账户由合作银行开立，就诊时可直接支付个人自付部分。",
        "A health account, held by a co-issuing bank, pays your own share at the cashier.",
    ),
    "account.choose_bank": ("请选择银行", "Choose a bank"),
    "account.open": ("开通健康账户", "Open a health account"),
    "entry.topup": ("充值", "Top-up"),
    "entry.payment": ("支付", "Payment"),
    "entry.withdrawal": ("取现", "Withdrawal"),
    "entry.refund": ("退款", "Refund"),
    "entry.settlement": ("结算", "Settlement"),
    # --- appointments
    "appt.book": ("预约挂号", "Book an appointment"),
    "appt.mine": ("我的预约", "My bookings"),
    "appt.none": ("暂无预约", "No bookings"),
    "appt.number": ("{n}号", "no. {n}"),
    "appt.time": ("就诊时间 {time}", "at {time}"),
    "appt.cancel": ("取消预约", "Cancel"),
    "appt.cancel_one": ("取消 {day} {doctor} 的预约", "Cancel the booking of {day} with {doctor}"),
    "appt.institution": ("医院", "Hospital"),
    "appt.department": ("科室", "Department"),
    "appt.doctor": ("医生", "Doctor"),
    "appt.session": ("出诊时段", "Session"),
    "appt.choose": ("请选择", "Choose"),
    "appt.free": ("余号 {n}", "{n} free"),
    "appt.no_sessions": (
        "该医生在预约期内没有可预约的时段。",
        "This doctor has no session open for booking.",
    ),
    "appt.slot_assigned": (
        "号序与就诊时间按预约顺序分配（该时段第一个空余号），预约成功后显示。",
        "The queue number and time are the session's next free slot, shown once booked.",
    ),
    "appt.confirm": ("确认预约", "Book"),
    "period.morning": ("上午", "morning"),
    "period.afternoon": ("下午", "afternoon"),
    "period.evening": ("晚上", "evening"),
    "booking.status.BOOKED": ("已预约", "Booked"),
    "booking.status.CHECKED_IN": ("已签到", "Checked in"),
    "booking.status.CANCELLED": ("已取消", "Cancelled"),
    "booking.status.NO_SHOW": ("爽约", "No-show"),
    # --- privacy
    "privacy.hidden": ("隐藏的类别", "Categories I hide"),
    "privacy.hidden.help": (
        "隐藏后，医生在常规诊疗中看不到这些类别的记录（急诊破窗访问除外，届时您会收到通知）。",
        "Hidden categories are not shown to clinicians in ordinary care (except an emergency "
        "break-glass access, which you are told about).",
    ),
    "privacy.hiding": ("已隐藏", "Hidden"),
    "privacy.showing": ("可见", "Visible"),
    "privacy.who": ("谁查看了我的记录", "Who looked at my record"),
    "privacy.by": ("查阅人", "Who"),
    "privacy.where": ("机构", "Where"),
    "privacy.what": ("内容", "What"),
    "privacy.outcome": ("结果", "Outcome"),
    "category.psychiatric": ("精神心理", "Mental health"),
    "category.hiv": ("艾滋病/性病", "HIV and STIs"),
    "category.reproductive": ("生殖健康", "Reproductive health"),
    "category.substance": ("成瘾物质", "Substance use"),
    "outcome.allowed": ("允许", "allowed"),
    "outcome.denied": ("拒绝", "denied"),
    "action.read": ("查看", "read"),
    "action.write": ("写入", "wrote"),
    "action.deny": ("拒绝", "denied"),
    "action.break-glass": ("紧急破窗", "break-glass"),
    "action.login": ("登录", "login"),
    "role.resident": ("本人", "me"),
    "role.clinician": ("医生", "clinician"),
    "role.registration": ("挂号员", "registration"),
    "role.cashier": ("收费员", "cashier"),
    "role.public-health": ("疾控", "public health"),
    "role.insurer": ("新农合经办", "NCMS office"),
    "role.card-admin": ("卡管中心", "card centre"),
    "role.auditor": ("审计员", "auditor"),
    "role.admin": ("平台管理员", "platform admin"),
    "role.terminal": ("刷卡终端", "card terminal"),
    "role.bank": ("银行", "bank"),
    # --- electronic health card
    "ehc.qr_title": ("电子健康卡动态二维码", "Electronic health card dynamic QR code"),
    "ehc.help": (
        "就诊时出示此二维码即可代替实体卡。二维码5分钟内有效，过期请刷新；请勿截图转发给他人。",
        "Show this code instead of your card. It is valid for 5 minutes; refresh it when it "
        "expires, and do not share screenshots of it.",
    ),
    "ehc.valid_until": ("有效至 {time}", "Valid until {time}"),
    "ehc.seconds": ("（剩余 {n} 秒）", "({n} s left)"),
    "ehc.expired": ("已过期，请刷新", "expired: refresh"),
    "ehc.refresh": ("刷新二维码", "Refresh the code"),
    "ehc.no_card": (
        "您没有可用的健康卡（未发卡或已挂失），暂不能生成电子健康卡。",
        "You have no usable card (none issued, or reported lost): no electronic card can be shown.",
    ),
    # --- staff login and the administrators' dashboards (web/staff.py, web/admin.py)
    "staff.name": ("区域卫生信息平台 · 工作人员", "Regional health platform · Staff"),
    "staff.login.title": ("工作人员登录", "Staff login"),
    "staff.login.username": ("用户名", "Username"),
    "staff.login.refused": ("用户名或密码错误", "The username or the password is wrong"),
    "staff.login.resident": ("居民请登录", "Residents log in at the"),
    "board.index": ("管理看板", "Dashboards"),
    "board.yours": ("{role}可查看的看板", "Dashboards for {role}"),
    "board.none": ("您的角色没有可查看的看板。", "Your role has no dashboard."),
    "board.cards": ("卡管中心", "Card centre"),
    "board.cards.help": ("各市每日发卡量", "Cards issued per day by city"),
    "board.ncms": ("新农合基金", "NCMS fund"),
    "board.ncms.help": (
        "基金余额、按机构级别和月份的支出、最大额与待审核的结算",
        "Fund balance, payments by institution level and by month, the largest and the flagged",
    ),
    "board.coverage": ("免疫接种率", "Immunization coverage"),
    "board.coverage.help": (
        "本辖区按疫苗和剂次的接种率，应种和逾期人数",
        "Coverage by vaccine and dose in your area, doses due and overdue",
    ),
    "board.platform": ("平台运行", "Platform"),
    "board.platform.help": (
        "本进程的请求量、错误率和响应时间，审计日志校验",
        "This worker's requests, error rates and latency; the audit chain's verification",
    ),
    "cards.chart": ("各市每日发卡量", "Cards issued per day by city"),
    "cards.issued": ("近{days}天发卡量", "Cards issued in the last {days} days"),
    "cards.day": ("日期", "Day"),
    "cards.city": ("城市 {city}", "City {city}"),
    "cards.total": ("合计", "Total"),
    "cards.none": ("近{days}天没有发卡。", "No card was issued in the last {days} days."),
    "ncms.chart": ("按机构级别的基金支出", "Fund spending by institution level"),
    "ncms.pool": ("统筹区", "Pool"),
    "ncms.year": ("年度", "Year"),
    "ncms.show": ("查看", "Show"),
    "ncms.fund_of": ("统筹区 {pool} · {year}年", "Pool {pool} · {year}"),
    "ncms.balance": ("基金余额", "Fund balance"),
    "ncms.premiums": ("累计筹资", "Premiums collected"),
    "ncms.by_level": ("按机构级别", "By institution level"),
    "ncms.by_month": ("按月份", "By month"),
    "ncms.month": ("月份", "Month"),
    "ncms.largest": ("基金支出最大的20笔结算", "The 20 settlements that cost the fund most"),
    "ncms.flagged": ("待审核的结算", "Settlements flagged for review"),
    "ncms.none": ("本年度尚无结算。", "No settlement this year yet."),
    "ncms.none_flagged": ("没有待审核的结算。", "No settlement is flagged for review."),
    "ncms.settlement": ("结算号", "Settlement"),
    "ncms.when": ("结算时间", "Settled"),
    "ncms.institution": ("机构", "Institution"),
    "ncms.level": ("级别", "Level"),
    "ncms.diagnosis": ("诊断", "Diagnosis"),
    "ncms.settlements": ("结算笔数", "Settlements"),
    "ncms.refunds": ("退费笔数", "Refunds"),
    "ncms.total": ("总费用", "Total"),
    "ncms.fund": ("基金支付", "Fund paid"),
    "ncms.self": ("个人支付", "Self paid"),
    "ncms.reasons": ("审核原因", "Why"),
    "level.village": ("村卫生室", "village"),
    "level.township": ("乡镇卫生院", "township"),
    "level.county": ("县级", "county"),
    "level.city": ("市级", "city"),
    "level.province": ("省级", "province"),
    "review.random": ("随机抽查", "random sample"),
    "review.threshold": ("超过限额", "over the threshold"),
    "review.outlier": ("费用异常", "outlier"),
    "coverage.chart": ("辖区 {area} 按疫苗和剂次的接种率", "Coverage by vaccine and dose, area {area}"),
    "coverage.due_title": ("辖区 {area} 应种与逾期", "Due and overdue in area {area}"),
    "coverage.children": ("涉及儿童", "Children concerned"),
    "coverage.eligible": ("应种人数", "Eligible"),
    "coverage.given": ("已种人数", "Given"),
    "coverage.rate": ("接种率", "Coverage"),
    "coverage.none": ("辖区内没有适龄儿童。", "No child of the schedule's ages lives in the area."),
    "platform.audit": ("审计日志校验", "Audit chain verification"),
    "platform.audit_ok": (
        "校验通过：{chains}条链，{entries}条记录，未发现篡改。",
        "Verified: {chains} chains, {entries} entries, no tampering found.",
    ),
    "platform.audit_bad": (
        "校验失败：{chains}条链，{entries}条记录，发现以下问题：",
        "Verification failed: {chains} chains, {entries} entries; problems:",
    ),
    "platform.load": (
        "本进程（PID {pid}，运行{minutes}分钟）的请求",
        "Requests of this worker (PID {pid}, up {minutes} min)",
    ),
    "platform.chart": ("请求结果", "Request outcomes"),
    "platform.requests": ("请求数", "Requests"),
    "platform.ok": ("成功", "Succeeded"),
    "platform.client_errors": ("客户端错误 4xx", "Client errors 4xx"),
    "platform.server_errors": ("服务器错误 5xx", "Server errors 5xx"),
    "platform.routes": ("各接口的请求与响应时间", "Requests and latency per route"),
    "platform.route": ("接口", "Route"),
    "platform.p50": ("P50（毫秒）", "p50 (ms)"),
    "platform.p95": ("P95（毫秒）", "p95 (ms)"),
    "platform.p99": ("P99（毫秒）", "p99 (ms)"),
}


class Translator:
    """The catalog in one language (``_`` in templates)."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGS else DEFAULT
        self._index = LANGS.index(self.lang)

    def __call__(self, key: str, **values: object) -> str:
        entry = CATALOG.get(key)
        if entry is None:
            return key
        text = entry[self._index]
        return text.format(**values) if values else text

    def of(self, prefix: str, value: object) -> str:
        entry = CATALOG.get(f"{prefix}.{value}")
        return str(value) if entry is None else entry[self._index]


def yuan(fen: int) -> str:
    """Integer fen as yuan with two decimals (no float on the way: 12345 → "123.45")."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def local(moment: dt.datetime | None) -> str:
    """A moment in Beijing time, to the minute."""
    if moment is None:
        return "—"
    return _aware(moment).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def local_time(moment: dt.datetime) -> str:
    return _aware(moment).astimezone(SHANGHAI).strftime("%H:%M")


def _aware(moment: dt.datetime) -> dt.datetime:
    """The platform stores UTC; a naive moment is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


__all__ = ["CATALOG", "DEFAULT", "HTML_LANG", "LANGS", "Translator", "local", "local_time", "yuan"]
