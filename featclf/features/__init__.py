"""Feature extractors: fixed-length (HOG, LBP, ColorHistogram, CNNEmbedding)
and variable-length (SIFT, DenseSIFT, giving DescriptorSet per image).

Names are imported on first use, so ``import featclf.features`` stays cheap
and an optional extractor's missing extra fails only when it is used.
"""

import importlib

# public name -> module inside featclf.features that defines it
_LOCATIONS = {
    "CNNEmbedding": "cnn",
    "ColorHistogram": "color",
    "DescriptorSet": "descriptors",
    "DenseSIFT": "sift",
    "KMeansPatches": "patches",
    "SIFT": "sift",
    "HOG": "hog",
    "LBP": "lbp",
}

__all__ = sorted(_LOCATIONS)


def __getattr__(name):
    if name not in _LOCATIONS:
        raise AttributeError(f"module 'featclf.features' has no attribute {name!r}")
    module = importlib.import_module(f".{_LOCATIONS[name]}", __name__)
    return getattr(module, name)
