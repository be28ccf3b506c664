"""The chapters' experiments: parameters, presets, data, training grids and measures."""

from . import ib, mnist, peak, resnet

CHAPTERS = {c.name: c for c in (mnist.CHAPTER, peak.CHAPTER, ib.CHAPTER, resnet.CHAPTER)}
