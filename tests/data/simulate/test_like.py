"""``labelsky simulate --like``: a simulation matched to the user's own images (``labelsky.data.simulate.like``).

The "user's images" here are a simulation with known settings (framing, depth, PSF), measured as any dataset
would be: --like must find those settings back within the tolerances stated in docs/no_labels.md.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelsky.data.io import DatasetWriter, open_dataset
from labelsky.data.simulate import SimulationError, simulate_galaxies
from labelsky.data.simulate.like import simulate_like

pytest.importorskip("galsim")
pytest.importorskip("photutils")

#: the target's known settings
TRUE = dict(scaled_fov=10.0, depth_shift=-1.0, psf_scale=1.4)


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    out = tmp_path_factory.mktemp("like") / "target"
    return simulate_galaxies(out, n_objects=64, surveys=["decals"], stamp_size=32, cutout="scaled",
                             mag_range=(15.0, 18.0), seed=5, progress=False, workers=2, **TRUE)["decals"]


def test_like_finds_the_framing_depth_and_psf_of_the_target(target, tmp_path):
    rep = simulate_like(target, tmp_path / "sim", n_objects=16, pilot=48, iterations=3, workers=2, progress=False)
    s = rep["settings"]
    assert s["scaled_fov"] == pytest.approx(TRUE["scaled_fov"], rel=0.2)
    assert s["depth_shift"] == pytest.approx(TRUE["depth_shift"], abs=0.5)
    assert s["psf_scale"] == pytest.approx(TRUE["psf_scale"], rel=0.3)
    # the first pilot (the simulator's defaults) was further off in framing than the result
    first = rep["iterations"][0]["statistics"]["frame"]["value"]
    goal = rep["statistics"]["target"]["frame"]["value"]
    assert abs(first - goal) > abs(rep["iterations"][-1]["statistics"]["frame"]["value"] - goal)
    # outputs: the simulation, its settings recorded, the table and the figure
    sim = open_dataset(tmp_path / "sim" / "decals")
    assert len(sim) == 16
    config = json.loads((tmp_path / "sim" / "simulation.json").read_text())["config"]
    assert config["scaled_fov"] == pytest.approx(s["scaled_fov"]) and config["psf_scale"] == pytest.approx(
        s["psf_scale"])
    assert sim.survey.psf_fwhm[1] == pytest.approx(1.3 * s["psf_scale"])  # decals r: 1.3"
    table = (tmp_path / "sim" / "like.md").read_text()
    assert "| S/N |" in table and "simulation after" in table
    assert (tmp_path / "sim" / "like.png").stat().st_size > 1000


def test_like_compares_pictures_through_the_viewer(target, tmp_path):
    from labelsky.data.display import render

    scales = target.column("pixel_scale")
    # pictures with a darker sky than the viewer's: 13 of 255 levels subtracted
    images = np.stack([render(target.image(i), target.bands, "legacysurvey", pixel_scale=float(scales[i]),
                              black_point=13 / 255) for i in range(len(target))]).astype(np.float32)
    w = DatasetWriter(tmp_path / "pictures", "decals", images.shape[1:], n_shards=1,
                      extra_meta={"flux_unit": "display"})
    cols = {k: target.column(k) for k in ("id_str", "ra", "dec", "split", "votes_smooth", "votes_featured",
                                          "votes_artifact", "richness")}
    w.write_shard(0, images, {**cols, "survey": ["decals"] * len(target), "label": np.full(len(target), -1),
                              "label_name": [""] * len(target)})
    pictures = w.finalize()
    rep = simulate_like(pictures, tmp_path / "sim", n_objects=8, pilot=24, iterations=1, workers=2, progress=False)
    assert rep["pictures"] and rep["render"] == "legacysurvey"
    assert rep["statistics"]["target"]["mag_r"]["value"] is None  # pictures: no magnitudes
    assert rep["train_randomise"].startswith("black=")
    # the black point is found back, and the simulation as the model sees it has the target's black point
    assert rep["black_point"] == pytest.approx(13 / 255, abs=0.02)
    st = rep["statistics"]
    assert abs(st["after"]["black"]["value"] - st["target"]["black"]["value"]) < 0.02
    assert f"--black-point {rep['black_point']:.3f}" in (tmp_path / "sim" / "like.md").read_text()
    assert rep["settings"]["scaled_fov"] < 17.0  # the target's galaxies fill more of the frame than the default


def test_a_target_too_small_to_measure_is_refused(tmp_path):
    small = simulate_galaxies(tmp_path / "small", n_objects=6, surveys=["decals"], stamp_size=24, seed=1,
                              progress=False, workers=1)["decals"]
    with pytest.raises(SimulationError, match=r"only \d+ of 6 images.*at least 20"):
        simulate_like(small, tmp_path / "sim", n_objects=8)
    assert not (tmp_path / "sim").exists()
