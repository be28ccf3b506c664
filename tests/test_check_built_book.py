"""The static check of the built book (tests/check_built_book.py) on small pages written here."""

import check_built_book as cbb

PAGE = """<html><body>{sidebar}<main><h1>Scorecard</h1><div class="cell tag_full-width">table</div></main></body></html>"""


def test_full_width_content_needs_the_pages_table_of_contents(tmp_path):
    bare = tmp_path / "bare.html"
    bare.write_text(PAGE.format(sidebar=""), encoding="utf-8")
    with_toc = tmp_path / "toc.html"
    with_toc.write_text(PAGE.format(sidebar='<div class="bd-sidebar-secondary">On this page</div>'), encoding="utf-8")
    assert cbb.layout_problems(bare) and "table of contents" in cbb.layout_problems(bare)[0]
    assert cbb.layout_problems(with_toc) == []


def test_pages_without_wide_content_need_no_table_of_contents(tmp_path):
    page = tmp_path / "plain.html"
    page.write_text("<html><body><h1>Intro</h1><p>text</p></body></html>", encoding="utf-8")
    assert cbb.layout_problems(page) == []
