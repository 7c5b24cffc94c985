"""Deskew: moment-based shear that makes slanted strokes upright."""

import cv2
import numpy as np

from featclf.preprocessing import Deskew


def _slanted_strokes():
    images = np.zeros((3, 28, 28), np.uint8)
    for image, (top, bottom) in zip(images, [(8, 18), (18, 8), (13, 13)]):
        cv2.line(image, (top, 4), (bottom, 23), 255, 2)
    return images


def test_deskew_makes_strokes_upright():
    images = _slanted_strokes()
    out = Deskew().fit_transform(images)
    assert out.shape == images.shape and out.dtype == np.uint8
    for before, after in zip(images[:2], out[:2]):
        m_before, m_after = cv2.moments(before), cv2.moments(after)
        assert abs(m_before["mu11"] / m_before["mu02"]) > 0.4
        assert abs(m_after["mu11"] / m_after["mu02"]) < 0.05
        assert abs(int(after.sum()) - int(before.sum())) < 0.1 * before.sum()


def test_upright_and_blank_images_are_unchanged(rgb_images):
    images = _slanted_strokes()
    out = Deskew().fit_transform(images[2:])
    np.testing.assert_array_equal(out, images[2:])
    blank = np.zeros((2, 10, 10), np.float32)
    np.testing.assert_array_equal(Deskew().fit_transform(blank), blank)
    assert Deskew().fit_transform(rgb_images).shape == rgb_images.shape
