"""Check the built HTML book (run by `make test` after `racecar book`): every chapter page exists, shows
its figures and ends with a rendered reproduction-check table whose verdicts are the allowed ones.

    python tests/check_built_book.py [_build/html]
"""

from __future__ import annotations

import sys
from pathlib import Path

from bs4 import BeautifulSoup

from racecar_core.experiments import chapters
from racecar_core.report import VERDICTS


def problems_of(page: Path) -> list[str]:
    if not page.is_file():
        return [f"{page} is missing"]
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    found = []
    if not soup.find_all("img"):
        found.append("no figures")
    tables = [t for t in soup.find_all("table") if any("Verdict" in th.get_text() for th in t.find_all("th"))]
    if not tables:
        found.append("no rendered reproduction-check table (a Markdown output shown as text?)")
    for table in tables:
        header = [th.get_text(strip=True) for th in table.find_all("th")]
        column = header.index("Verdict")
        for row in table.find_all("tr")[1:]:
            verdict = row.find_all("td")[column].get_text(strip=True)
            if verdict not in VERDICTS:
                found.append(f"unknown verdict {verdict!r}")
    if "Traceback" in soup.get_text():
        found.append("a traceback in the page")
    return [f"{page.name}: {p}" for p in found]


def scorecard_problems(page: Path) -> list[str]:
    """The scorecard page lists a claim of every chapter, each linking to that chapter's reproduction check."""
    if not page.is_file():
        return [f"{page} is missing"]
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    tables = [t for t in soup.find_all("table") if any("Verdict" in th.get_text() for th in t.find_all("th"))]
    if len(tables) != 1:
        return [f"{page.name}: expected one scorecard table, found {len(tables)}"]
    links = {a.get("href", "") for a in tables[0].find_all("a")}
    return [f"{page.name}: no link to {name}'s reproduction check" for name in chapters()
            if f"{name}.html#{name}-check" not in links]


# sphinx-book-theme hides the page's table of contents while full-width or margin content scrolls past, and its
# script fails ("Cannot read properties of null") on a page that has such content but no table of contents (a page
# with a single heading).
_WIDE = ("full-width", "tag_full-width", "margin", "tag_margin", "margin-caption")


def layout_problems(page: Path) -> list[str]:
    """Full-width or margin content needs the page's secondary sidebar (its table of contents)."""
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    wide = soup.find(class_=lambda c: c in _WIDE)
    if wide is not None and soup.select_one("div.bd-sidebar-secondary") is None:
        return [f"{page.name}: full-width or margin content on a page without a table of contents (add a section heading)"]
    return []


def main(html: str = "_build/html") -> int:
    problems = [p for name in chapters() for p in problems_of(Path(html) / "book" / f"{name}.html")]
    problems += scorecard_problems(Path(html) / "book" / "scorecard.html")
    problems += [p for page in sorted(Path(html).rglob("*.html")) for p in layout_problems(page)]
    for p in problems:
        print(f"check_built_book: {p}", file=sys.stderr)
    print(f"check_built_book: {len(list(chapters()))} chapters checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
