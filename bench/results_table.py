"""Write benchmark rows into a table of a docs/results page, between two markers, replacing rows with the same key."""

from __future__ import annotations

from pathlib import Path


def replace_rows(page: Path, begin: str, end: str, header: list[str], rows: dict[str, str]) -> None:
    """`rows` maps a row's key (the start of its line, e.g. "| bilstm |") to the new line.

    Rows whose line starts with a key are replaced, others are appended after the table's last row; text in
    the block around the table is kept. A page without the markers gets the block at its end.
    """
    page.parent.mkdir(parents=True, exist_ok=True)
    body = page.read_text() if page.exists() else ""
    if begin not in body:
        body += f"\n{begin}\n" + "\n".join(header) + f"\n{end}\n"
    head, rest = body.split(begin, 1)
    block, tail = rest.split(end, 1)
    lines = block.strip("\n").splitlines()
    if header[0] not in lines:
        lines += header
    for key, new in rows.items():
        at = [i for i, line in enumerate(lines) if line.startswith(key)]
        if at:
            lines[at[0]] = new
        else:
            last = max(i for i, line in enumerate(lines) if line.startswith("|"))
            lines.insert(last + 1, new)
    page.write_text(head + begin + "\n" + "\n".join(lines) + "\n" + end + tail)
