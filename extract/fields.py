"""Procurement fields from a notice's text, with OCDS-style names where they fit."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

_SEP = r"\s*[:：]\s*"
_VALUE = r"([^\n|；;。]{2,80})"
_PATTERNS = {
    "project_no": rf"(?:项目编号|采购项目编号|招标编号|项目代码){_SEP}([A-Za-z0-9\-_/\[\]〔〕（）()]{{3,60}})",
    "buyer": rf"(?:采购人(?:名称)?|采购单位(?:名称)?){_SEP}{_VALUE}",
    "agency": rf"(?:采购代理机构(?:名称)?|代理机构(?:名称)?){_SEP}{_VALUE}",
    "region": rf"(?:行政区域|地域|项目所在地){_SEP}{_VALUE}",
}
_AMOUNT = re.compile(
    r"(?P<label>预算金额|最高限价|采购预算|中标金额|成交金额|中标（成交）金额|合同金额"
    r"|budget|award(?:ed)? (?:value|amount))"
    r"[^0-9￥¥$]{0,20}(?P<cur>[￥¥$]|USD|HKD|RMB|CNY|US\$)?\s*(?P<num>[0-9][0-9,]*(?:\.[0-9]+)?)\s*"
    r"(?P<unit>万元|亿元|元|million|万)?",
    re.IGNORECASE,
)
_NOTICE_TYPES = (
    ("采购意向", "planning"), ("资格预审", "tender"), ("公开招标", "tender"), ("招标公告", "tender"),
    ("竞争性磋商", "tender"), ("竞争性谈判", "tender"), ("询价", "tender"), ("单一来源", "tender"),
    ("更正", "tenderAmendment"), ("终止", "tenderCancellation"), ("废标", "tenderCancellation"),
    ("中标", "award"), ("成交", "award"), ("结果公告", "award"), ("合同公告", "contract"),
)
_SUPPLIER = re.compile(rf"(?:中标(?:（成交）)?供应商(?:名称)?|成交供应商(?:名称)?|供应商名称){_SEP}{_VALUE}")


@dataclass
class Amount:
    label: str
    amount: float
    currency: str


@dataclass
class ProcurementFields:
    project_no: str | None = None
    buyer: str | None = None
    agency: str | None = None
    region: str | None = None
    notice_type: str | None = None
    amounts: list[Amount] = field(default_factory=list)
    suppliers: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value not in (None, [], "")}


def _currency(symbol: str | None, unit: str | None) -> str:
    symbol = (symbol or "").upper()
    if symbol in ("$", "USD", "US$"):
        return "USD"
    if symbol == "HKD":
        return "HKD"
    return "USD" if (unit or "").lower() == "million" else "CNY"


def parse_amounts(text: str) -> list[Amount]:
    """Amounts with their label, scaled to units (万元 x 10^4, 亿元 x 10^8, million x 10^6)."""
    scale = {"万元": 1e4, "万": 1e4, "亿元": 1e8, "million": 1e6}
    found = []
    for match in _AMOUNT.finditer(text):
        try:
            number = float(match.group("num").replace(",", ""))
        except ValueError:
            continue
        unit = match.group("unit")
        value = number * scale.get((unit or "").lower(), 1.0)
        found.append(Amount(match.group("label"), value, _currency(match.group("cur"), unit)))
    return found[:10]


def notice_type(title: str) -> str | None:
    return next((ocds for cue, ocds in _NOTICE_TYPES if cue in title), None)


def _first(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1).strip() if match else None


def parse_procurement_fields(text: str, title: str = "") -> ProcurementFields:
    found = {name: _first(pattern, text) for name, pattern in _PATTERNS.items()}
    fields = ProcurementFields(project_no=found["project_no"], buyer=found["buyer"], agency=found["agency"],
                               region=found["region"])
    fields.notice_type = notice_type(title)
    fields.amounts = parse_amounts(text)
    fields.suppliers = list(dict.fromkeys(m.group(1).strip() for m in _SUPPLIER.finditer(text)))[:5]
    return fields
