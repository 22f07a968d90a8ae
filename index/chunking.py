"""Sentence-level chunks: a decisive line item buried in a long table must be its own unit."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|(?<=[.])\s+(?=[A-Z\u4e00-\u9fff])")
MAX_CHARS = 320
MIN_CHARS = 12


def _split_long(piece: str) -> list[str]:
    if len(piece) <= MAX_CHARS:
        return [piece]
    parts = re.split(r"(?<=[，,、])", piece)
    out, current = [], ""
    for part in parts:
        if current and len(current) + len(part) > MAX_CHARS:
            out.append(current)
            current = ""
        current += part
    if current:
        out.append(current)
    return [chunk[i:i + MAX_CHARS] for chunk in out for i in range(0, len(chunk), MAX_CHARS)]


def _table_row(line: str) -> str:
    """'| 4 | GPU云实例 | AWS p4d |' -> '4 GPU云实例 AWS p4d' (cells kept together as one unit)."""
    cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
    return "；".join(cell for cell in cells if cell)


def split_sentences(text: str) -> list[str]:
    """Lines, table rows and sentences; prose fragments shorter than MIN_CHARS join the next.

    A table row is never merged with its neighbours: one row is one line item.
    """
    pieces: list[tuple[str, bool]] = []          # (text, is_table_row)
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line:
            continue
        if line.startswith("|"):
            pieces.extend((part, True) for part in _split_long(_table_row(line)))
            continue
        for sentence in _SENTENCE_END.split(line):
            pieces.extend((part, False) for part in _split_long(sentence.strip()))
    merged: list[str] = []
    carry = False
    for piece, is_row in pieces:
        if not piece:
            continue
        if carry and not is_row:
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
        carry = not is_row and len(merged[-1]) < MIN_CHARS
    return merged


def chunk_document(title: str, text: str) -> list[str]:
    """The title first (much evidence sits there), then the body's sentences."""
    chunks = [title.strip()] if title.strip() else []
    chunks.extend(sentence for sentence in split_sentences(text) if sentence != title.strip())
    return chunks


def detection_joins(chunks: list[str]) -> list[tuple[int, int, str]]:
    """Units that join neighbouring evidence, as (first chunk, second chunk, separator):
    each sentence with the next, and each sentence under the title.

    Why: the decisive fact often spans two lines ("SenseFoundry Face API" in the title, "runs
    on Google Cloud" in the body; a table header and its row). Sentences alone miss it and
    whole pages dilute it; pairs and title-prefixed sentences catch it at little cost.
    """
    if len(chunks) < 2:
        return []
    pairs = [(i, i + 1, " ") for i in range(len(chunks) - 1)]
    titled = [(0, i, " | ") for i in range(2, len(chunks))]  # chunks[0] + chunks[1] is a pair already
    return pairs + titled


def join_text(chunks: list[str], join: tuple[int, int, str]) -> str:
    first, second, separator = join
    return f"{chunks[first]}{separator}{chunks[second]}"

