"""The book's Sphinx set-up: the local MathJax it ships and the fix for scripts that Sphinx 7.4 writes twice."""

import importlib
from pathlib import Path

import yaml
from sphinx.builders.html._assets import _JavaScript

from racecar_core import sphinx_ext
from racecar_core.runs import REPO_ROOT


def test_the_book_loads_mathjax_from_its_own_files():
    extensions = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())["sphinx"]["extra_extensions"]
    assert "sphinx-mathjax-offline" in extensions and "racecar_core.sphinx_ext" in extensions
    package = importlib.import_module("sphinx-mathjax-offline")  # a folder name with hyphens: Sphinx imports it so

    class App:
        config = type("Config", (), {})()
        connect = staticmethod(lambda *args, **kwargs: None)

    package.setup(App)
    assert App.config.mathjax_path == "mathjax/tex-chtml.js"  # relative: served from the book's _static/mathjax
    mathjax = Path(package.__file__).parent / "static" / "mathjax"
    assert (mathjax / "tex-chtml.js").is_file()
    assert 'VERSION="3.' in (mathjax / "tex-chtml.js").read_text(encoding="utf-8")
    fonts = {p.stem for p in (mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff")}
    assert {"MathJax_Main-Regular", "MathJax_Math-Italic", "MathJax_Size1-Regular", "MathJax_AMS-Regular"} <= fonts


def test_a_script_added_twice_is_written_once():
    config = "const THEBE_JS_URL = 'x'"
    scripts = [_JavaScript("_static/a.js"), _JavaScript(None, body=config), _JavaScript("", body=config),
               _JavaScript("_static/b.js", priority=200)]
    context = {"script_files": scripts}
    sphinx_ext.unique_scripts(None, "page", "page.html", context, None)
    assert context["script_files"] == [scripts[0], scripts[1], scripts[3]]
