import numpy as np
import pytest

from labelsky.data.photometry import REFERENCE_FILTER, galaxy_colour, star_colour

G, R = "sdss2010-g", "sdss2010-r"


def g_minus_r(sed, z):
    return float(galaxy_colour(sed, z, G) - galaxy_colour(sed, z, R))


def test_reference_filter_is_sdss_r():
    assert REFERENCE_FILTER == R


def test_template_colour_order_at_z01():
    e, sbc, im = g_minus_r("E", 0.1), g_minus_r("Sbc", 0.1), g_minus_r("Im", 0.1)
    assert e > sbc > im


def test_elliptical_g_minus_r_at_z01():
    # red sequence at z ~ 0.1: g - r ~ 0.95 (e.g. Blanton & Moustakas 2009)
    assert g_minus_r("E", 0.1) == pytest.approx(0.95, abs=0.2)


def test_elliptical_reddens_with_redshift():
    z = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    gr = galaxy_colour("E", z, G) - galaxy_colour("E", z, R)
    assert np.all(np.diff(gr) > 0)


def test_hotter_star_is_bluer():
    gr = star_colour([3500.0, 5800.0, 10000.0, 20000.0], G) - star_colour([3500.0, 5800.0, 10000.0, 20000.0], R)
    assert np.all(np.diff(gr) < 0)


def test_colour_in_reference_filter_is_zero():
    assert float(galaxy_colour("Sbc", 0.3, REFERENCE_FILTER)) == 0.0
    np.testing.assert_array_equal(galaxy_colour("E", [0.0, 0.5, 1.0], R), 0.0)
    np.testing.assert_array_equal(star_colour([4000.0, 9000.0], R), 0.0)
