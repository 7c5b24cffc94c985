"""featclf: classical computer-vision features as scikit-learn transformers."""

from .io import as_image_batch, check_image, load_image_folder, read_image

__version__ = "0.1.0"

__all__ = [
    "as_image_batch",
    "check_image",
    "load_image_folder",
    "read_image",
]
