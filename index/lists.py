"""Official restriction lists as their publishers ship them, read into one entry shape.

Formats (chosen by the file's suffix, then checked against its content):

* the US Consolidated Screening List (trade.gov) as JSON: an object with ``results`` (the API's
  search answer and the bulk ``consolidated.json``) or a bare list of such records; fields
  ``id``, ``source``, ``name``, ``alt_names``, ``addresses`` ({address, city, state,
  postal_code, country}), ``programs``, ``federal_register_notice``, ``start_date``,
  ``source_information_url``;
* the same list as CSV, in the current layout (``_id,source,entity_number,type,programs,name,
  ...,alt_names,...``, list values joined by "; ") or the older ITA layout (``Source List,
  Entity Number,...,Name,...,Alternate Name,...``, one row per address and alternate name);
* Federal Register rules amending the Entity List (Supplement No. 4 to Part 744) as the
  Register's XML: the GPOTABLE rows under each country, "a.k.a." aliases as ``—`` items;
* an alias file (YAML) giving Chinese names for listed parties.

A malformed file raises :class:`ListFileError` naming the file, the line and the reason;
nothing is loaded from a batch with any bad file (see index.restricted).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ground.config import ConfigError, format_validation_error, read_yaml_mapping

# The lists the CSL merges: code -> name (trade.gov's `sources` parameter).
LIST_NAMES = {
    "EL": "Entity List", "MEU": "Military End User List", "UVL": "Unverified List", "DPL": "Denied Persons List",
    "ISN": "Nonproliferation Sanctions", "DTC": "ITAR Debarred", "SDN": "Specially Designated Nationals",
    "FSE": "Foreign Sanctions Evaders", "SSI": "Sectoral Sanctions Identifications List",
    "CMIC": "Non-SDN Chinese Military-Industrial Complex Companies List", "MBS": "Non-SDN Menu-Based Sanctions List",
    "PLC": "Palestinian Legislative Council List", "CAP": "Correspondent Account or Payable-Through Account Sanctions",
}
ENTITY_LIST = "Entity List (EL) - Bureau of Industry and Security"


class ListFileError(ValueError):
    """A list file that cannot be loaded: ``file:line: reason``."""

    def __init__(self, path: Path | None, line: int | None, reason: str) -> None:
        where = f"{path}{f':{line}' if line else ''}: " if path is not None else ""
        super().__init__(where + reason)


@dataclass
class ListedEntry:
    """One party on one list, with every name it is listed under."""

    list_code: str                 # EL, MEU, SDN, UVL ...
    list_name: str                 # as the publisher names it
    name: str
    alt_names: list[str] = field(default_factory=list)
    chinese_names: list[str] = field(default_factory=list)   # from an alias file
    countries: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    programs: list[str] = field(default_factory=list)
    federal_register_notice: str = ""
    start_date: str = ""
    source_url: str = ""
    type: str = ""
    file: str = ""
    key: str = ""                  # the publisher's id, else a hash of list and name

    def __post_init__(self) -> None:
        if not self.key:
            digest = hashlib.sha1(f"{self.list_code}|{self.name.casefold()}".encode(), usedforsecurity=False)
            self.key = f"{self.list_code}-{digest.hexdigest()[:12]}"

    def names(self) -> list[str]:
        return [self.name, *self.alt_names, *self.chinese_names]


def list_code(source: str) -> str:
    """"Entity List (EL) - Bureau of Industry and Security" -> "EL"; a bare code stays itself."""
    text = source.strip()
    match = re.search(r"\(([A-Z]{2,5})\)", text)
    if match:
        return match.group(1)
    if text.upper() in LIST_NAMES:
        return text.upper()
    by_name = [code for code, name in LIST_NAMES.items() if text.lower().startswith(name.lower())]
    return by_name[0] if by_name else text


def _strings(value: Any) -> list[str]:
    """A list of non-empty strings from a JSON list, a "; "-joined string or nothing."""
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(";")
    return [str(item).strip() for item in items if str(item or "").strip()]


_C1 = re.compile("[\x80-\x9f]")


def _c1_as_cp1252(text: str) -> str:
    """C1 control characters in UTF-8 text are Windows-1252 bytes decoded as Latin-1 upstream
    (the ITA Entity List CSV has "Sa\\x92id" for "Sa’id"): put the intended characters back."""
    return _C1.sub(lambda m: bytes([ord(m.group())]).decode("cp1252", errors="replace"), text)


def _decode(path: Path, data: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252, which BIS's own CSVs use."""
    try:
        return _c1_as_cp1252(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ListFileError(path, line, "neither UTF-8 nor Windows-1252 text") from exc


# --- CSL JSON ---------------------------------------------------------------------------------

def _json_array_items(text: str, start: int) -> Iterator[tuple[int, Any]]:
    """(line, item) of the JSON array opening at ``start``, so an error can name its line."""
    decoder = json.JSONDecoder()
    pos = start + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return
        item, end = decoder.raw_decode(text, pos)
        yield text.count("\n", 0, pos) + 1, item
        pos = end


def _address_line(value: Any) -> tuple[str, str]:
    """(address text, country) from a CSL address object or string."""
    if isinstance(value, dict):
        parts = [str(value.get(k) or "").strip() for k in ("address", "city", "state", "postal_code", "country")]
        return ", ".join(p for p in parts if p), str(value.get("country") or "").strip()
    return str(value or "").strip(), ""


def _csl_entry(record: dict[str, Any], path: Path, line: int) -> ListedEntry:
    name = str(record.get("name") or "").strip()
    if not name:
        raise ListFileError(path, line, "a record without a name")
    source = str(record.get("source") or "").strip()
    if not source:
        raise ListFileError(path, line, f"record {name!r} names no source list")
    addresses = [_address_line(a) for a in (record.get("addresses") or [])]
    return ListedEntry(
        list_code=list_code(source), list_name=source, name=name, alt_names=_strings(record.get("alt_names")),
        addresses=[a for a, _ in addresses if a], countries=sorted({c for _, c in addresses if c}),
        programs=_strings(record.get("programs")),
        federal_register_notice=str(record.get("federal_register_notice") or "").strip(),
        start_date=str(record.get("start_date") or "").strip(),
        source_url=str(record.get("source_information_url") or record.get("source_list_url") or "").strip(),
        type=str(record.get("type") or "").strip(), file=path.name, key=str(record.get("id") or "").strip())


def read_csl_json(path: Path, text: str) -> list[ListedEntry]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ListFileError(path, exc.lineno, f"not JSON: {exc.msg}") from exc
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        match = re.search(r'"results"\s*:\s*\[', text)
        start = match.end() - 1 if match else 0
    elif isinstance(data, list):
        start = text.index("[")
    else:
        raise ListFileError(path, 1, "expected a Consolidated Screening List: an object with `results` or a list")
    entries = []
    for line, record in _json_array_items(text, start):
        if not isinstance(record, dict):
            raise ListFileError(path, line, f"expected a record (an object), got {type(record).__name__}")
        entries.append(_csl_entry(record, path, line))
    return entries


# --- CSL CSV ----------------------------------------------------------------------------------

_OLD_LAYOUT = {"source": "Source List", "name": "Name", "alt": "Alternate Name", "fr": "Federal Register Notice",
               "date": "Effective Date", "programs": "Programs", "url": "Web Link", "country": "Country",
               "type": "SDN Type"}


def _rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            yield reader.line_num, {k.strip(): (v or "").strip() for k, v in row.items()
                                    if isinstance(k, str) and isinstance(v, str)}
    except csv.Error as exc:
        raise ListFileError(path, reader.line_num, f"malformed CSV: {exc}") from exc


def _current_csv(path: Path, text: str) -> list[ListedEntry]:
    entries = []
    for line, row in _rows(path, text):
        if not any(row.values()):
            continue
        record: dict[str, Any] = dict(row)
        record["id"] = row.get("_id", "")
        record["addresses"] = _strings(row.get("addresses"))
        entries.append(_csl_entry(record, path, line))
    return entries


def _old_csv(path: Path, text: str) -> list[ListedEntry]:
    """The older layout repeats a party on one row per address and alternate name."""
    grouped: dict[tuple[str, ...], ListedEntry] = {}
    col = _OLD_LAYOUT
    for line, row in _rows(path, text):
        if not any(row.values()):
            continue
        name = row.get(col["name"], "")
        if not name or not row.get(col["source"]):
            raise ListFileError(path, line, "a row without a name or source list")
        key = (row[col["source"]], row.get("Entity Number", ""), name)
        entry = grouped.get(key)
        if entry is None:
            entry = grouped[key] = _csl_entry({"source": row[col["source"]], "name": name, "type": row.get(col["type"]),
                                               "programs": row.get(col["programs"]), "federal_register_notice":
                                               row.get(col["fr"]), "start_date": row.get(col["date"]),
                                               "source_information_url": row.get(col["url"])}, path, line)
        address = ", ".join(p for p in (row.get("Address", ""), row.get("City", ""), row.get(col["country"], "")) if p)
        for values, item in ((entry.alt_names, row.get(col["alt"], "")), (entry.addresses, address),
                             (entry.countries, row.get(col["country"], ""))):
            if item and item not in values:
                values.append(item)
    return list(grouped.values())


def read_csl_csv(path: Path, text: str) -> list[ListedEntry]:
    header = next(csv.reader(io.StringIO(text)), [])
    columns = {c.strip() for c in header}
    if {"source", "name"} <= columns:
        return _current_csv(path, text)
    if {"Source List", "Name"} <= columns:
        return _old_csv(path, text)
    raise ListFileError(path, 1, "no `source` and `name` columns (nor `Source List` and `Name`): "
                                 "not a Consolidated Screening List CSV")


# --- Federal Register XML ---------------------------------------------------------------------

_ADDRESS_START = re.compile(r"^(\d|No\.|Room|Rm\b|Unit|Flat|Floor|Building|Bldg|Block|Suite|P\.?O\.? Box|"
                            r"[A-Z]?\d+[A-Z]?\b)", re.IGNORECASE)
_ABBREVIATIONS = {"co", "ltd", "inc", "corp", "llc", "jsc", "s.a", "b.v", "n.v", "pte", "plc"}


def _clean_text(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _alias(text: str) -> str:
    """"—Beijing Ti-Tech; and" -> "Beijing Ti-Tech"; a closing full stop goes unless it ends "Ltd."."""
    alias = re.sub(r"(;|\band)\s*$", "", text.lstrip("—–- ").strip()).strip().rstrip(";").strip()
    last = alias.rsplit(" ", 1)[-1].rstrip(".").lower()
    if alias.endswith(".") and last not in _ABBREVIATIONS:
        alias = alias[:-1]
    return alias


def _split_name(head: str) -> tuple[str, str]:
    """(name, address) from an entry cell: the name ends at ", a.k.a." or where the address starts."""
    if "a.k.a." in head:
        return head.split("a.k.a.")[0].strip().rstrip(","), ""
    parts = [p.strip() for p in head.split(",")]
    for cut in range(1, len(parts)):
        if _ADDRESS_START.match(parts[cut]):
            return ", ".join(parts[:cut]), ", ".join(parts[cut:])
    return head.rstrip("."), ""


def _cell_head(cell: etree._Element) -> str:
    """The cell's text before its first list item (the name and "a.k.a., the following ...")."""
    pieces = [cell.text or ""]
    for child in cell:
        if child.tag == "LI":
            break
        text = "".join(child.itertext()) if isinstance(child.tag, str) else ""  # an unexpanded &entity; is no text
        pieces.append(text + (child.tail or ""))
    return _clean_text("".join(pieces))


def _fr_entry(cell: etree._Element, country: str, citation: str, source_url: str, path: Path) -> ListedEntry:
    name, address = _split_name(_cell_head(cell))
    if not name:
        raise ListFileError(path, cell.sourceline, "an Entity List row without a name")
    entry = ListedEntry(list_code="EL", list_name=ENTITY_LIST, name=name, countries=[country] if country else [],
                        federal_register_notice=citation, source_url=source_url, type="Entity", file=path.name)
    if address:
        entry.addresses.append(address)
    for item in cell.iter("LI"):
        text = _clean_text("".join(item.itertext()))
        if text.startswith(("—", "–")):
            entry.alt_names.append(_alias(text))
        elif text:
            entry.addresses.append(text)
    return entry


def _is_stars(cell: etree._Element) -> bool:
    return not _clean_text("".join(cell.itertext())).strip("* ")


def _merge(entries: dict[str, ListedEntry], entry: ListedEntry) -> ListedEntry:
    """The same party under several countries is one entry with all their addresses."""
    known = entries.setdefault(entry.key, entry)
    if known is not entry:
        for values, more in ((known.alt_names, entry.alt_names), (known.addresses, entry.addresses),
                             (known.countries, entry.countries)):
            values.extend(v for v in more if v not in values)
    return known


def _fr_rows(table: etree._Element, source_url: str, path: Path, entries: dict[str, ListedEntry]) -> None:
    country, last = "", None
    for row in table.iter("ROW"):
        cells = row.findall("ENT")
        if not cells:
            continue
        first = _clean_text("".join(cells[0].itertext()))
        if cells[0].get("I") == "01" and first:
            country, last = " ".join(word.capitalize() for word in first.split()), None
            continue
        if len(cells) < 2 or _is_stars(cells[1]) or first.lower() == "country":
            continue
        if len(cells) >= 3:
            citation = _clean_text("".join(cells[-1].itertext())) if len(cells) >= 5 else ""
            last = _merge(entries, _fr_entry(cells[1], country, citation, source_url, path))
        elif last is not None:  # a row of more addresses for the entry above
            last.addresses.append(_clean_text("".join(cells[1].itertext())))


def read_federal_register(path: Path, data: bytes) -> list[ListedEntry]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ListFileError(path, exc.lineno, f"not XML: {exc.msg}") from exc
    frdoc = _clean_text(" ".join(root.xpath("//FRDOC//text()")))
    number = re.search(r"FR Doc\.\s*([\d-]+)", frdoc)
    source_url = f"https://www.federalregister.gov/d/{number.group(1)}" if number else ""
    entries: dict[str, ListedEntry] = {}
    for table in root.iter("GPOTABLE"):
        _fr_rows(table, source_url, path, entries)
    if not entries:
        raise ListFileError(path, 1, "no Entity List table (Supplement No. 4 to Part 744) in this Federal Register "
                                     "document")
    return list(entries.values())


# --- alias file -------------------------------------------------------------------------------

class AliasItem(BaseModel):
    entry: str = Field(min_length=1)        # a listed name or alternate name
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    on_list: str | None = Field(None, alias="list")   # the list code, when the name is on several lists
    names: list[str] = Field(min_length=1)  # Chinese names for the party


class AliasFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = "0"
    aliases: list[AliasItem]


def read_alias_file(path: Path) -> list[AliasItem]:
    try:
        data = read_yaml_mapping(path)
    except ConfigError as exc:
        raise ListFileError(None, None, str(exc)) from exc
    try:
        return AliasFile.model_validate(data).aliases
    except ValidationError as exc:
        raise ListFileError(None, None, format_validation_error(path, exc)) from exc


def apply_aliases(entries: list[ListedEntry], aliases: list[AliasItem]) -> list[AliasItem]:
    """Give each alias's entry its Chinese names; returns the aliases whose entry is not loaded."""
    by_name: dict[str, list[ListedEntry]] = {}
    for entry in entries:
        for name in [entry.name, *entry.alt_names]:
            by_name.setdefault(name.casefold().strip(), []).append(entry)
    unknown = []
    for alias in aliases:
        found = [e for e in by_name.get(alias.entry.casefold().strip(), []) if alias.on_list in (None, e.list_code)]
        for entry in found:
            entry.chinese_names.extend(n for n in alias.names if n not in entry.chinese_names)
        if not found:
            unknown.append(alias)
    return unknown


def read_list_file(path: Path) -> tuple[str, list[ListedEntry] | list[AliasItem]]:
    """(format, entries or aliases) of one file; the suffix chooses the reader."""
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "aliases", read_alias_file(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ListFileError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    if suffix == ".xml":
        return "federal-register-xml", read_federal_register(path, data)
    if suffix == ".json":
        return "csl-json", read_csl_json(path, _decode(path, data))
    if suffix in (".csv", ".txt"):
        return "csl-csv", read_csl_csv(path, _decode(path, data))
    raise ListFileError(path, None, "unknown format: use .json or .csv (Consolidated Screening List), "
                                    ".xml (Federal Register rule) or .yaml (alias file)")
