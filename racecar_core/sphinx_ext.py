"""A Sphinx extension for the book build (listed in ``_config.yml`` under ``sphinx.extra_extensions``).

Sphinx 7.4, the line that jupyter-book 1 runs on, writes an inline script that an extension adds after the builder
has started into every page twice: once as added (file name ``None``) and once more from the registry (file name
``""``), which its duplicate check tells apart (fixed upstream by Sphinx pull request 13402). sphinx-thebe's
configuration is such a script, so every page threw "Identifier 'THEBE_JS_URL' has already been declared". This
extension drops the second copy of any script from each page.
"""

from __future__ import annotations

from typing import Any


def unique_scripts(app, pagename: str, templatename: str, context: dict[str, Any], doctree) -> None:
    """Keep the first of scripts with the same file (``None`` counted as ``""``), priority and attributes."""
    seen, kept = set(), []
    for script in context.get("script_files", []):
        key = (str(script.filename or ""), script.priority, tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app) -> dict[str, Any]:
    app.connect("html-page-context", unique_scripts, priority=900)  # after the extensions that add page scripts
    return {"parallel_read_safe": True, "parallel_write_safe": True}
