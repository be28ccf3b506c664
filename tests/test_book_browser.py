"""The browser check of the built book (tests/check_book_browser.py) on small pages written here: it passes a good
page with a figure and math typeset by the local MathJax, and fails on a broken image, raw TeX, a console error, a
request leaving the book and a scorecard page without its table. The checks that open pages need Chromium."""

import importlib.util
from pathlib import Path

import check_book_browser as cbb
import pytest

pytestmark = pytest.mark.browser

requires_chromium = pytest.mark.skipif(
    cbb.chromium_path() is None or importlib.util.find_spec("playwright") is None,
    reason=f"needs Chromium at {cbb.DEFAULT_CHROMIUM} (or ${cbb.CHROMIUM_ENV}) and Playwright: {cbb.INSTALL_HINT}")

MATHJAX = """<script>MathJax = {"options": {"processHtmlClass": "math"}}</script>
<script defer src="mathjax/tex-chtml.js"></script>"""


def test_raw_tex_finds_the_delimiters_mathjax_leaves_when_it_does_not_run():
    assert len(cbb.raw_tex(r"a network of \(L\) layers")) == 2
    assert len(cbb.raw_tex(r"display \[ x^2 \] and $$y$$ and \begin{align} a \end{align}")) == 6
    assert cbb.raw_tex(r"inline $\lambda_{RR}$ in dollars")
    assert not cbb.raw_tex("costs $5 or $6, arrays a[0] (see (1)), a path C:\\temp")


def test_only_the_book_itself_is_local():
    assert cbb.is_local("file:///tmp/book/index.html") and cbb.is_local("http://127.0.0.1:8000/x.png")
    assert cbb.is_local("data:image/png;base64,AAAA")
    assert not cbb.is_local("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js")


def test_pages_and_redirects(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "_static").mkdir()
    for name in ("book/intro.html", "search.html", "_static/x.html"):
        (tmp_path / name).write_text("<html></html>")
    (tmp_path / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html" />')
    assert cbb.pages(tmp_path) == [Path("book/intro.html"), Path("index.html"), Path("search.html")]
    assert cbb.redirect_target(tmp_path / "index.html") == "book/intro.html"
    assert cbb.redirect_target(tmp_path / "search.html") is None


def page(folder: Path, name: str, body: str, head: str = "") -> Path:
    path = folder / name
    path.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>")
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder with an image and the MathJax that the book ships (from the sphinx-mathjax-offline package)."""
    folder = tmp_path_factory.mktemp("site")
    from PIL import Image

    Image.new("RGB", (8, 6), "red").save(folder / "figure.png")
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is not None:
        (folder / "mathjax").symlink_to(Path(spec.origin).parent / "static" / "mathjax", target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    with cbb.BookBrowser() as b:
        yield b


@pytest.fixture(scope="module")
def check(site, browser):
    with cbb.serve(site) as base:
        yield lambda path, **kw: browser.check(base + path.name, path.name, **kw)


@requires_chromium
def test_a_good_page_passes_with_its_math_typeset_offline(site, check, tmp_path):
    if not (site / "mathjax").exists():
        pytest.skip("sphinx-mathjax-offline is not installed: pip install -r requirements.txt")
    good = page(site, "good.html", r"""<p>A network of <span class="math">\(784 \to 128\)</span> units.</p>
        <div class="math">\[ \mathcal{L} = \tfrac12 \lVert d - d' \rVert^2 \]</div>
        <img src="figure.png"><pre>print(r"\(not math\)")</pre>""", MATHJAX)
    report = check(good, screenshot=tmp_path / "good.png")
    assert report.problems == []
    assert (report.images, report.math) == (1, 2)
    assert (tmp_path / "good.png").stat().st_size > 0


@requires_chromium
@pytest.mark.parametrize("name, body, found", [
    ("broken-image.html", '<img src="figure.png"><img src="missing.png">', "image did not load: missing.png"),
    ("raw-tex.html", r"<p>A network of \(784 \to 128\) units.</p>", "raw TeX in the text: 2 delimiters"),
    ("console.html", "<script>console.error('boom')</script>", "console error: boom"),
    ("exception.html", "<script>undefinedFunction()</script>", "uncaught ReferenceError"),
    ("online.html", '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>',
     "request outside the book (blocked): https://cdn.jsdelivr.net/"),
])
def test_a_page_with_a_fault_fails(site, check, name, body, found):
    report = check(page(site, name, body))
    assert any(p.startswith(found) for p in report.problems), report.problems


@requires_chromium
def test_math_that_mathjax_cannot_typeset_fails(site, check):
    if not (site / "mathjax").exists():
        pytest.skip("sphinx-mathjax-offline is not installed: pip install -r requirements.txt")
    report = check(page(site, "bad-math.html", r'<span class="math">\(\nosuchcommand{x}\)</span>'
                        r'<span class="math">\(\frac{1}\)</span>', MATHJAX))
    assert {p for p in report.problems if p.startswith("MathJax error")} == {
        "MathJax error: undefined command \\nosuchcommand", "MathJax error: Missing argument for \\frac"}


@requires_chromium
def test_a_scorecard_page_needs_its_table(site, check):
    table = ("<table><thead><tr><th>Claim</th><th>Verdict</th></tr></thead>"
             "<tbody><tr><td>a</td><td>reproduced</td></tr></tbody></table>")
    assert check(page(site, "scorecard.html", table), scorecard=True).problems == []
    empty = check(page(site, "empty-scorecard.html", "<p>no runs</p>"), scorecard=True)
    assert empty.problems == ["no scorecard table with rows"]


@requires_chromium
def test_the_whole_check_over_a_folder(tmp_path, browser):
    page(tmp_path, "index.html", '<meta http-equiv="refresh" content="0; url=missing.html" />')
    page(tmp_path, "broken.html", '<img src="missing.png">')
    reports = {r.page: r for r in cbb.check_book(tmp_path, tmp_path / "shots", browser=browser)}
    assert reports["index.html"].problems == ["redirects to a missing page missing.html"]
    assert reports["broken.html"].problems[0] == "image did not load: missing.png"
    assert (tmp_path / "shots" / "broken.png").is_file()


def test_no_chromium_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv(cbb.CHROMIUM_ENV, str(tmp_path / "no-such-chromium"))
    assert cbb.chromium_path() is None
    with pytest.raises(RuntimeError, match="apt-get install chromium"):
        cbb.BookBrowser()
