"""The chapters' experiments, one module per chapter, named like the chapter and its notebook
(``experiments/peak.py`` ↔ ``book/peak.ipynb`` ↔ chapter ``peak``).

Each module defines ``CHAPTER`` (its parameters and presets), the data, training and measures it needs,
and ``claims(...)``, which turns measured results into the reproduction check's :class:`racecar_core.report.Claim`
list. This package is the registry of chapters; :mod:`racecar_core.chapters` only defines the spec.
"""

from types import ModuleType

from ..chapters import Chapter, ParameterError
from . import gan, mi, mnist, peak, pretraining, resnet, weather

MODULES: tuple[ModuleType, ...] = (mnist, peak, mi, resnet, gan, weather, pretraining)  # book order
CHAPTERS: dict[str, Chapter] = {m.CHAPTER.name: m.CHAPTER for m in MODULES}


def chapters() -> dict[str, Chapter]:
    """All chapters, by name, in book order."""
    return dict(CHAPTERS)


def get_chapter(name: str) -> Chapter:
    """The chapter called ``name``, or a :class:`ParameterError` listing the valid names."""
    if name not in CHAPTERS:
        raise ParameterError(f"unknown chapter {name!r}; chapters: {', '.join(CHAPTERS)}")
    return CHAPTERS[name]


def chapter_module(name: str) -> ModuleType:
    """The experiment module of chapter ``name``."""
    get_chapter(name)
    return next(m for m in MODULES if m.CHAPTER.name == name)
