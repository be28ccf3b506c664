"""Open every page of the built HTML book in headless Chromium with the network blocked (run by `make test` after
tests/check_built_book.py): each page loads, every image has loaded, nothing is logged as an error, nothing is
fetched from outside the book, the math is typeset by the book's own MathJax (no raw TeX left in the text), and
the scorecard page shows its table. A full-page screenshot of each page is kept.

    python tests/check_book_browser.py [_build/html] [--screenshots _build/screenshots] [--via http|file]

Chromium: Debian's `chromium` package at /usr/bin/chromium (or the path in $RACECAR_CHROMIUM), driven by Playwright
for Python; Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM_ENV = "RACECAR_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
INSTALL_HINT = ("install Debian's package as root (`apt-get install chromium`; `make test` does this when it runs as root) "
                f"or set {CHROMIUM_ENV} to a Chromium or Chrome executable")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
        # offline: every host but 127.0.0.1 fails to resolve; the route in BookBrowser also aborts what leaves the book
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
LOCAL_HOSTS = ("127.0.0.1", "localhost")
NOT_PAGES = ("_static", "_sources", "_images", "_downloads")

# TeX that MathJax should have typeset: \( \) \[ \] $$ \begin{...} \end{...}, and $...$ around a TeX command
RAW_TEX = re.compile(r"\\[()[\]]|\$\$|\\(?:begin|end)\{|\$[^$\n]{0,200}?\\[A-Za-z]+[^$\n]{0,200}?\$")

# the page's text outside code, outputs shown as code, and typeset math
TEXT_OUTSIDE_CODE = """() => {
  const skip = "pre, code, kbd, samp, script, style, textarea, noscript, template, mjx-container, .highlight";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const parts = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.parentElement.closest(skip)) parts.push(n.nodeValue);
  }
  return parts.join("");
}"""

# waits for MathJax's first typesetting (when the page has MathJax), the fonts and every image (lazy ones too)
SETTLE = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const images = Array.from(document.images);
  images.forEach(img => { if (img.loading === "lazy") img.loading = "eager"; });
  await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener("load", done); img.addEventListener("error", done); })));
  await document.fonts.ready;
  return Boolean(window.MathJax && MathJax.startup);
}"""

FACTS = """() => {
  const math = Array.from(document.querySelectorAll(".math"));
  const tables = Array.from(document.querySelectorAll("table")).filter(t =>
    Array.from(t.querySelectorAll("th")).some(th => th.textContent.includes("Verdict")));
  return {
    images: Array.from(document.images).map(img => ({src: img.getAttribute("src"), ok: img.complete && img.naturalWidth > 0})),
    math: math.length,
    typeset: math.filter(m => m.querySelector("mjx-container")).length,
    mathErrors: Array.from(document.querySelectorAll("mjx-merror")).map(e => e.getAttribute("data-mjx-error") || e.textContent)
      .concat(Array.from(document.querySelectorAll('mjx-assistive-mml mtext[mathcolor="red"]'))  // TeX's noundefined
        .filter(e => e.textContent.startsWith("\\\\")).map(e => `undefined command ${e.textContent}`)),
    verdictRows: tables.filter(t => t.getBoundingClientRect().height > 0)
                       .map(t => t.querySelectorAll("tbody tr").length),
  };
}"""


def chromium_path() -> str | None:
    """The Chromium executable to drive: $RACECAR_CHROMIUM, else /usr/bin/chromium; None when it is not there."""
    path = os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def raw_tex(text: str) -> list[str]:
    """The raw TeX delimiters left in ``text`` (page text outside code), each with a little context."""
    return [repr(text[max(m.start() - 25, 0):m.end() + 25].strip()) for m in RAW_TEX.finditer(text)]


def is_local(url: str) -> bool:
    """Whether ``url`` stays inside the book: a file, inline data, or the test's server on this machine."""
    parts = urlsplit(url)
    return parts.scheme in ("file", "data", "blob", "about") or parts.hostname in LOCAL_HOSTS


def redirect_target(page: Path) -> str | None:
    """The target of an HTML redirect page (jupyter-book's index.html), None for an ordinary page."""
    head = page.read_text(encoding="utf-8", errors="replace")[:4000]
    found = re.search(r'<meta[^>]+http-equiv="refresh"[^>]+content="\d+;\s*url=([^"]+)"', head, re.IGNORECASE)
    return found.group(1) if found else None


def pages(html: Path) -> list[Path]:
    """Every HTML page of the built book, as paths relative to ``html``."""
    return sorted(p.relative_to(html) for p in html.rglob("*.html") if p.relative_to(html).parts[0] not in NOT_PAGES)


@dataclass
class PageReport:
    page: str
    seconds: float = 0.0
    images: int = 0
    math: int = 0
    problems: list[str] = field(default_factory=list)


class BookBrowser:
    """Headless Chromium with a fresh profile and the network blocked: every request that leaves the book
    (not file:, data: or 127.0.0.1/localhost) is aborted and reported as a problem of the page that made it."""

    def __init__(self, executable: str | None = None, viewport: tuple[int, int] = (1280, 900)):
        executable = executable or chromium_path()
        if executable is None:
            raise RuntimeError(f"check_book_browser: no Chromium at {os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM}: "
                               f"{INSTALL_HINT}")
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as error:
            raise RuntimeError("check_book_browser: Playwright for Python is missing: pip install -r requirements.txt "
                               "(never `playwright install`: the system Chromium is used)") from error
        self._stack = contextlib.ExitStack()
        self._playwright = self._stack.enter_context(sync_playwright())
        profile = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="racecar-chromium-"))
        self.context = self._playwright.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=ARGS, viewport=dict(zip(("width", "height"), viewport)),
            service_workers="block")
        self._stack.callback(self.context.close)
        self.blocked: list[str] = []
        self.context.route("**/*", self._route)

    def _route(self, route) -> None:
        if is_local(route.request.url):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("internetdisconnected")

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> BookBrowser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check(self, url: str, name: str, screenshot: Path | None = None, scorecard: bool = False,
              timeout_s: float = 60.0) -> PageReport:
        """Load ``url`` and return what is wrong with it (``name`` labels the report)."""
        report, errors = PageReport(name), []
        start, self.blocked = time.perf_counter(), []
        page = self.context.new_page()
        page.set_default_timeout(timeout_s * 1000)
        # failed loads are reported with their URL by the two request handlers; the console's copy names none
        page.on("console", lambda message: errors.append(f"console error: {message.text}")
                if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
        page.on("pageerror", lambda error: errors.append(f"uncaught {error.name}: {error.message}"))
        page.on("response", lambda response: errors.append(f"HTTP {response.status} for {response.url}")
                if response.status >= 400 else None)
        page.on("requestfailed", lambda request: errors.append(f"request failed: {request.url} ({request.failure})")
                if is_local(request.url) else None)
        try:
            response = page.goto(url, wait_until="load")
            if response is not None and not response.ok:
                report.problems.append(f"did not load: HTTP {response.status}")
            page.evaluate(SETTLE)
            facts = page.evaluate(FACTS)
            tex = raw_tex(page.evaluate(TEXT_OUTSIDE_CODE))
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
        except Exception as error:  # a page that cannot be opened is a finding, not a crash of the whole check
            report.problems.append(f"could not be checked: {type(error).__name__}: {str(error).splitlines()[0]}")
            facts, tex = None, []
        finally:
            page.close()
        report.seconds = time.perf_counter() - start
        if facts is not None:
            report.images, report.math = len(facts["images"]), facts["math"]
            report.problems += [f"image did not load: {img['src']}" for img in facts["images"] if not img["ok"]]
            if facts["typeset"] < facts["math"]:
                report.problems.append(f"math not typeset: {facts['math'] - facts['typeset']} of {facts['math']} formulas")
            report.problems += [f"MathJax error: {e}" for e in facts["mathErrors"]]
            if scorecard and not any(facts["verdictRows"]):
                report.problems.append("no scorecard table with rows")
        if tex:
            report.problems.append(f"raw TeX in the text: {len(tex)} delimiters, e.g. {', '.join(tex[:3])}")
        report.problems += [f"request outside the book (blocked): {u}" for u in dict.fromkeys(self.blocked)]
        report.problems += list(dict.fromkeys(errors))
        return report


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 (a free port) while the block runs; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def check_book(html: Path, screenshots: Path | None, via: str = "http", browser: BookBrowser | None = None) -> list[PageReport]:
    """Check every page of the book in ``html`` (in ``browser``, else a new one); screenshots go to
    ``screenshots/<page path with _>.png``."""
    reports = []
    all_pages = pages(html)
    if screenshots is not None and screenshots.is_dir():  # no screenshot of a page that is gone
        for old in screenshots.glob("*.png"):
            old.unlink()
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(serve(html)) if via == "http" else html.resolve().as_uri() + "/"
        browser = browser or stack.enter_context(BookBrowser())
        for page in all_pages:
            target = redirect_target(html / page)
            if target is not None:  # a redirect: its target must be a page of the book (checked on its own)
                resolved = Path(os.path.normpath(page.parent / target.split("#")[0]))
                missing = [] if resolved in all_pages else [f"redirects to a missing page {target}"]
                reports.append(PageReport(str(page), problems=missing))
                continue
            shot = screenshots / (str(page.with_suffix("")).replace(os.sep, "_") + ".png") if screenshots else None
            reports.append(browser.check(base + page.as_posix(), str(page), shot, scorecard=page.stem == "scorecard"))
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", nargs="?", default="_build/html", help="the built book (default: _build/html)")
    parser.add_argument("--screenshots", default=None, help="folder for the screenshots (default: _build/screenshots "
                        "beside the html folder)")
    parser.add_argument("--via", choices=("http", "file"), default="http",
                        help="open the pages from a server on 127.0.0.1 (default) or as file:// URLs")
    args = parser.parse_args(argv)
    html = Path(args.html)
    if not (html / "index.html").is_file():
        print(f"check_book_browser: {html} holds no built book (index.html): build it with `racecar book`", file=sys.stderr)
        return 2
    screenshots = Path(args.screenshots) if args.screenshots else html.parent / "screenshots"
    start = time.perf_counter()
    try:
        reports = check_book(html, screenshots, args.via)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 2
    problems = 0
    for r in reports:
        print(f"check_book_browser: {r.page}: {r.seconds:.1f} s, {r.images} images, {r.math} formulas"
              + (f", {len(r.problems)} problems" if r.problems else ", ok"))
        for p in r.problems:
            print(f"check_book_browser: {r.page}: {p}", file=sys.stderr)
        problems += len(r.problems)
    print(f"check_book_browser: {len(reports)} pages checked offline ({args.via}) in {time.perf_counter() - start:.0f} s, "
          f"{problems} problems; screenshots in {screenshots}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
