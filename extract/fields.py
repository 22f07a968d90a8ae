"""Procurement fields from a notice, with OCDS-style names where they fit.

Two sources, the structured one first: the label/value summary table most portals put above
the notice (CCGP's 公告概要: 采购项目名称, 品目, 采购单位, 行政区域, 公告时间, 预算金额,
总中标金额, 代理机构名称 ...) and item tables in the body (货物名称, 数量, 单价, 品牌, 型号);
then patterns over the text for whatever the table lacks.

Notices of one procurement (intention, tender, correction, award) carry the same project
number and buyer; :func:`process_id` turns that pair into one id, so they can be read as one
process (OCDS's ``ocid``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from parsel import Selector

_SEP = r"\s*[:：]\s*"
_VALUE = r"([^\n|；;。]{2,80})"
_PATTERNS = {
    "project_no": rf"(?:项目编号|采购项目编号|招标编号|项目代码){_SEP}([A-Za-z0-9\-_/\[\]〔〕（）()]{{3,60}})",
    # "1.采购人信息 / 名 称：X": the contact block that closes most notices (政采云, ggzy, CCGP).
    "buyer": rf"(?:采购人(?:名称)?|采购单位(?:名称)?|采购人信息\s*名\s*称){_SEP}{_VALUE}",
    "agency": rf"(?:采购代理机构(?:名称)?|代理机构(?:名称)?|代理机构信息\s*名\s*称){_SEP}{_VALUE}",
    "region": rf"(?:行政区域|地域|项目所在地){_SEP}{_VALUE}",
}
_AMOUNT = re.compile(
    r"(?P<label>预算金额|最高限价|采购预算|中标金额|成交金额|中标（成交）金额|合同金额"
    r"|budget|award(?:ed)? (?:value|amount))"
    r"[^0-9￥¥$]{0,20}(?P<cur>[￥¥$]|USD|HKD|RMB|CNY|US\$)?\s*(?P<num>[0-9][0-9,]*(?:\.[0-9]+)?)\s*"
    r"[（(]?(?P<unit>万元|亿元|元|million|万)?",
    re.IGNORECASE,
)
_MONEY = re.compile(r"(?P<cur>[￥¥$]|USD|HKD|US\$)?\s*(?P<num>[0-9][0-9,]*(?:\.[0-9]+)?)\s*"
                    r"[（(]?(?P<unit>万元|亿元|元|万)?")
# Most specific first: "公开招标中标公告" is an award, "中标结果更正公告" an amendment.
_NOTICE_TYPES = (
    ("采购意向", "planning"), ("更正", "tenderAmendment"), ("变更", "tenderAmendment"),
    ("终止", "tenderCancellation"), ("废标", "tenderCancellation"), ("流标", "tenderCancellation"),
    ("合同公告", "contract"), ("中标", "award"), ("成交", "award"), ("结果公告", "award"),
    ("资格预审", "tender"), ("公开招标", "tender"), ("招标公告", "tender"), ("竞争性磋商", "tender"),
    ("竞争性谈判", "tender"), ("询价", "tender"), ("单一来源", "tender"), ("邀请招标", "tender"),
)
_SUPPLIER = re.compile(rf"(?:中标(?:（成交）)?供应商(?:名称)?|成交供应商(?:名称)?|供应商名称){_SEP}{_VALUE}")
_DATETIME = re.compile(r"(20\d\d)\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:\s*(\d{1,2}):(\d{2}))?")
# Summary-table labels -> our field names (OCDS: tender.title, buyer.name, tender.value, awards.value ...).
_SUMMARY = {
    "采购项目名称": "project_title", "项目名称": "project_title", "品目": "category", "采购品目": "category",
    "采购单位": "buyer", "采购人": "buyer", "采购人名称": "buyer", "行政区域": "region", "公告时间": "date_published",
    "开标时间": "tender_open_date", "获取招标文件时间": "documents_available", "首次公告日期": "first_published",
    "更正日期": "amendment_date", "预算金额": "budget", "总中标金额": "award_value", "中标金额": "award_value",
    "总成交金额": "award_value", "成交金额": "award_value", "代理机构名称": "agency", "采购代理机构": "agency",
    "项目编号": "project_no",
}
_MONEY_FIELDS = {"budget", "award_value"}
_DATE_FIELDS = {"date_published", "tender_open_date", "first_published", "amendment_date"}
_ITEM_COLUMNS = (("supplier", ("供应商名称", "中标人名称", "成交供应商")),
                 ("name", ("货物名称", "标的名称", "品目名称", "服务名称", "采购内容")), ("brand", ("品牌",)),
                 ("model", ("型号",)), ("quantity", ("数量",)), ("unit_price", ("单价",)),
                 ("award", ("中标金额", "成交金额")), ("budget", ("采购预算", "预算")),
                 ("lot", ("包号", "标项", "包组")))


@dataclass
class Amount:
    label: str
    amount: float
    currency: str


@dataclass
class ProcurementFields:
    project_no: str | None = None
    project_title: str | None = None
    buyer: str | None = None
    agency: str | None = None
    region: str | None = None
    category: str | None = None
    notice_type: str | None = None
    date_published: str | None = None
    tender_open_date: str | None = None
    documents_available: str | None = None
    first_published: str | None = None
    amendment_date: str | None = None
    budget: dict[str, Any] | None = None         # OCDS tender.value {amount, currency}
    award_value: dict[str, Any] | None = None    # OCDS awards[].value
    amounts: list[Amount] = field(default_factory=list)
    suppliers: list[str] = field(default_factory=list)
    items: list[dict[str, str]] = field(default_factory=list)
    summary: dict[str, str] = field(default_factory=dict)   # the summary table as published
    process_id: str | None = None

    def as_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value not in (None, [], "", {})}


def _currency(symbol: str | None, unit: str | None) -> str:
    symbol = (symbol or "").upper()
    if symbol in ("$", "USD", "US$"):
        return "USD"
    if symbol == "HKD":
        return "HKD"
    return "USD" if (unit or "").lower() == "million" else "CNY"


_SCALE = {"万元": 1e4, "万": 1e4, "亿元": 1e8, "million": 1e6}


def parse_amounts(text: str) -> list[Amount]:
    """Amounts with their label, scaled to units (万元 x 10^4, 亿元 x 10^8, million x 10^6)."""
    found = []
    for match in _AMOUNT.finditer(text):
        try:
            number = float(match.group("num").replace(",", ""))
        except ValueError:
            continue
        unit = match.group("unit")
        value = number * _SCALE.get((unit or "").lower(), 1.0)
        found.append(Amount(match.group("label"), value, _currency(match.group("cur"), unit)))
    return found[:10]


def money(value: str) -> dict[str, Any] | None:
    """``￥3300.000000万元（人民币）`` -> {"amount": 33000000.0, "currency": "CNY"}."""
    match = _MONEY.search(value)
    if not match:
        return None
    amount = float(match.group("num").replace(",", "")) * _SCALE.get(match.group("unit") or "", 1.0)
    currency = "USD" if "美元" in value else _currency(match.group("cur"), match.group("unit"))
    return {"amount": round(amount, 2), "currency": currency}


def iso_datetime(value: str) -> str | None:
    """First date (and time, when given) as ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM``."""
    match = _DATETIME.search(value)
    if not match:
        return None
    year, month, day, hour, minute = match.groups()
    if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31):
        return None
    date = f"{int(year):04d}-{int(month):02d}-{int(day):02d}"
    return f"{date}T{int(hour):02d}:{minute}" if hour else date


def notice_type(title: str) -> str | None:
    return next((ocds for cue, ocds in _NOTICE_TYPES if cue in title), None)


def _first(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1).strip() if match else None


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\xa0", " ")).strip()


def summary_table(page: Selector) -> dict[str, str]:
    """Label/value pairs of the summary table (``td.title`` label cells and the cell after each)."""
    pairs: dict[str, str] = {}
    for label_cell in page.css("div.table td.title, table.summary td.title, table.summary th"):
        label = _clean(label_cell.xpath("string()").get("")).rstrip(":：")
        value = _clean(label_cell.xpath("string(following-sibling::td[1])").get(""))
        if label and value and not label.startswith("附件") and label not in pairs:
            pairs[label] = value
    return pairs


def _column(header: str, taken: set[str]) -> str | None:
    return next((name for name, cues in _ITEM_COLUMNS if name not in taken and any(cue in header for cue in cues)),
                None)


def _header(rows: list[Selector]) -> tuple[int, list[str | None]]:
    """Index and column names of the header row: the first row of two or more cells."""
    for index, row in enumerate(rows[:3]):
        cells = [_clean(cell.xpath("string()").get("")) for cell in row.css("td, th")]
        if len(cells) >= 2:
            taken: set[str] = set()
            columns = []
            for cell in cells:
                name = _column(cell, taken)
                columns.append(name)
                taken.add(name or "")
            return index, columns
    return 0, []


def table_rows(page: Selector, limit: int = 50) -> list[list[dict[str, str]]]:
    """Body tables with a recognised header (货物名称, 供应商名称, 数量 ...) as lists of row dicts."""
    tables = []
    for table in page.css("table"):
        rows = table.xpath("./tr | ./tbody/tr | ./thead/tr")
        start, columns = _header(rows)
        if not ({"name", "supplier"} & set(columns)):
            continue
        lines = []
        for row in rows[start + 1:start + 1 + limit]:
            cells = [_clean(cell.xpath("string()").get("")) for cell in row.css("td, th")]
            line = {name: value for name, value in zip(columns, cells, strict=False) if name and value}
            if line.get("name") or line.get("supplier"):
                lines.append(line)
        tables.append(lines)
    return tables


def _supplier_name(value: str) -> str:
    """The name alone: flattened text runs on into the address (供应商地址 ...)."""
    return re.split(r"\s{2,}|供应商地址|地址[:：]|统一社会信用代码", value)[0].strip()


def _balanced(value: str) -> str:
    """Drop a trailing opening bracket the pattern swallowed: ``0701-2641（招标文件编号`` -> ``0701-2641``."""
    return re.sub(r"[（(\[〔]+[^）)\]〕]*$", "", value).strip()


def process_id(project_no: str | None, buyer: str | None) -> str | None:
    """One id for every notice of a procurement: project number and buyer, normalised."""
    if not project_no or not buyer:
        return None
    key = re.sub(r"[\s\u3000]", "", project_no).upper() + "|" + re.sub(r"[\s\u3000]", "", buyer)
    return "proc-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def _from_summary(fields: ProcurementFields, summary: dict[str, str]) -> None:
    for label, value in summary.items():
        name = _SUMMARY.get(label)
        if name is None or getattr(fields, name) is not None:
            continue
        if name in _MONEY_FIELDS:
            setattr(fields, name, money(value))
        elif name in _DATE_FIELDS:
            setattr(fields, name, iso_datetime(value))
        else:
            setattr(fields, name, value)


def parse_procurement_fields(text: str, title: str = "", page: Selector | None = None) -> ProcurementFields:
    """Fields from the page's summary and item tables (when the HTML is given), then from the text."""
    fields = ProcurementFields()
    tables: list[list[dict[str, str]]] = []
    if page is not None:
        fields.summary = summary_table(page)
        _from_summary(fields, fields.summary)
        tables = table_rows(page)
        fields.items = next((rows for rows in tables if any("name" in row for row in rows)), [])
    for name, pattern in _PATTERNS.items():
        if getattr(fields, name) is None:
            setattr(fields, name, _first(pattern, text))
    if fields.project_no:
        fields.project_no = _balanced(fields.project_no)
    fields.notice_type = notice_type(title)
    fields.amounts = parse_amounts(text)
    if fields.budget is None:
        fields.budget = next(({"amount": a.amount, "currency": a.currency} for a in fields.amounts
                              if a.label in ("预算金额", "采购预算", "最高限价") or a.label.lower() == "budget"), None)
    from_tables = [row["supplier"] for rows in tables for row in rows if row.get("supplier")]
    from_text = [_supplier_name(m.group(1)) for m in _SUPPLIER.finditer(text)]
    fields.suppliers = [name for name in dict.fromkeys(from_tables or from_text) if name][:5]
    fields.process_id = process_id(fields.project_no, fields.buyer)
    return fields
