"""Descriptor sets: the output of variable-length extractors (SIFT, dense SIFT).

Each image gives one :class:`DescriptorSet`: ``k`` local descriptors with the
pixel positions and scales where they were computed, plus the image size, so
that :class:`~featclf.encoding.BagOfVisualWords` can pool them over a spatial
pyramid. ``k`` may be 0 (an image with no keypoints).
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["DescriptorSet"]


@dataclass(frozen=True, eq=False)
class DescriptorSet:
    """The local descriptors of one image.

    Parameters
    ----------
    descriptors : ndarray of shape (k, d), dtype float32
        One row per keypoint.
    positions : ndarray of shape (k, 2), dtype float32
        Keypoint centres as ``(x, y)`` = (column, row) in pixels of the
        image the extractor saw.
    scales : ndarray of shape (k,), dtype float32
        Patch size (or keypoint diameter) in pixels.
    image_shape : tuple of (int, int)
        ``(height, width)`` of that image, for spatial pooling.
    """

    descriptors: np.ndarray
    positions: np.ndarray
    scales: np.ndarray
    image_shape: tuple

    def __post_init__(self):
        k = self.descriptors.shape[0]
        if self.descriptors.ndim != 2:
            raise ValueError(
                f"descriptors must be 2-D (k, d), got shape {self.descriptors.shape}"
            )
        if self.positions.shape != (k, 2) or self.scales.shape != (k,):
            raise ValueError(
                f"positions {self.positions.shape} and scales {self.scales.shape} "
                f"must match {k} descriptors: (k, 2) and (k,)"
            )

    def __len__(self):
        return self.descriptors.shape[0]

    @classmethod
    def sharing_grid(cls, descriptors, positions, scales, image_shape):
        """Return one set per image of a stack, all on one shared grid.

        The shapes are checked once for the whole stack (not once per
        image), so this is the cheap way to wrap many small images'
        descriptors (a dense extractor's batch).

        Parameters
        ----------
        descriptors : ndarray of shape (n, k, d), dtype float32
            ``descriptors[i]`` holds image ``i``'s rows.
        positions : ndarray of shape (k, 2), dtype float32
            Shared by every set (not copied).
        scales : ndarray of shape (k,), dtype float32
            Shared by every set (not copied).
        image_shape : tuple of (int, int)
            ``(height, width)`` of every image.

        Returns
        -------
        sets : list of DescriptorSet
            ``n`` sets whose ``descriptors`` are views ``descriptors[i]``.
        """
        if descriptors.ndim != 3:
            raise ValueError(
                f"descriptors must be 3-D (n, k, d), got shape {descriptors.shape}"
            )
        if not len(descriptors):
            return []
        first = cls(descriptors[0], positions, scales, tuple(image_shape))  # checks shapes
        shared = {"positions": first.positions, "scales": first.scales,
                  "image_shape": first.image_shape}
        sets = [first]
        for image_descriptors in descriptors[1:]:
            # the fields of a frozen dataclass, set as its __init__ would
            # (without repeating the checks made on the first set)
            descriptor_set = object.__new__(cls)
            fields = descriptor_set.__dict__
            fields["descriptors"] = image_descriptors
            fields.update(shared)
            sets.append(descriptor_set)
        return sets

    @classmethod
    def empty(cls, n_dims, image_shape):
        """Return a set with no descriptors (an image without keypoints).

        Parameters
        ----------
        n_dims : int
            Descriptor length ``d``.
        image_shape : tuple of (int, int)
            ``(height, width)`` of the image.

        Returns
        -------
        descriptor_set : DescriptorSet
            With ``k = 0``.
        """
        return cls(
            np.zeros((0, n_dims), np.float32),
            np.zeros((0, 2), np.float32),
            np.zeros((0,), np.float32),
            tuple(image_shape),
        )
