"""The chapters' experiments: parameters, presets, data, training grids and measures."""

from . import mnist, peak, resnet

CHAPTERS = {c.name: c for c in (mnist.CHAPTER, peak.CHAPTER, resnet.CHAPTER)}
