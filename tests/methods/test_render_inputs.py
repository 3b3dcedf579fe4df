"""Models on rendered pictures: flux datasets rendered like a viewer, 8-bit pictures taken as they are."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from conftest import make_columns
from labelsky.data.display import render
from labelsky.data.io import DatasetWriter, open_dataset
from labelsky.data.transforms import NuisanceRandomisation
from labelsky.errors import SettingsError
from labelsky.methods.settings import InputSettings, TrainSettings


@dataclasses.dataclass
class Inputs(TrainSettings, InputSettings):
    """Input and training settings as every method's config has them."""


def _dataset(path, unit: str, n: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    imgs = rng.uniform(0, 1, size=(n, 3, 16, 16)).astype(np.float32) if unit == "display" else \
        (rng.normal(0, 0.004, size=(n, 3, 16, 16)) + 0.05 * (np.arange(3)[None, :, None, None] + 1)).astype(np.float32)
    w = DatasetWriter(path, "decals", (3, 16, 16), classes=["smooth", "featured", "artifact"], n_shards=1,
                      config={"seed": seed}, extra_meta={"flux_unit": unit})
    w.write_shard(0, imgs, make_columns(n))
    w.finalize()
    return open_dataset(path), imgs


def test_flux_is_rendered_and_pictures_pass_unchanged(tmp_path):
    flux, fimgs = _dataset(tmp_path / "flux", "nanomaggy")
    pics, pimgs = _dataset(tmp_path / "pics", "display")
    cfg = InputSettings(render="legacysurvey")
    assert cfg.in_chans(flux) == 3
    x = cfg.preprocess(flux)(flux.image(2), 2)
    ref = render(fimgs[2], ["g", "r", "z"], "legacysurvey", pixel_scale=flux.survey.pixel_scale)
    assert torch.allclose(x, torch.from_numpy(ref))
    y = cfg.preprocess(pics)(pics.image(3))
    assert torch.allclose(y, torch.from_numpy(pimgs[3]))  # already a picture: R, G, B as stored
    # JPEG at the viewer's quality moves pixels; the evaluation preprocessing never randomises
    q = InputSettings(render="legacysurvey", jpeg_quality=20).preprocess(flux)(flux.image(2), 2)
    assert not torch.equal(q, x)
    rnd = InputSettings(render="legacysurvey", randomise={})
    assert torch.equal(rnd.preprocess(flux)(flux.image(2), 2), x)


def test_training_randomisation_varies_images_reproducibly(tmp_path):
    flux, _ = _dataset(tmp_path / "flux", "nanomaggy")
    cfg = Inputs(render="legacysurvey", randomise={"blur": 1.5}, seed=4)
    a, b = cfg.preprocess(flux, train=True), cfg.preprocess(flux, train=True)
    xa = [a(flux.image(0), 0) for _ in range(3)]
    xb = [b(flux.image(0), 0) for _ in range(3)]
    assert not torch.equal(xa[0], xa[1])  # every draw differs
    assert all(torch.equal(u, v) for u, v in zip(xa, xb))  # the same seed, the same draws
    assert all(float(t.min()) >= 0 and float(t.max()) <= 1 for t in xa)


def test_nuisances_act_as_documented():
    rng = np.random.default_rng(0)
    img = np.zeros((3, 21, 21))
    img[:, 10, 10] = 1.0
    r = NuisanceRandomisation(brightness=(1, 1), colour=0, blur=2.0, noise=0, sky=0, jpeg_probability=0)
    out, q = r.apply(img, np.ones(3), rng)
    assert q is None and out[:, 10, 10].max() < 1.0 and out.sum() == pytest.approx(3.0, rel=1e-6)  # blur keeps flux
    r = NuisanceRandomisation(brightness=(2, 2), colour=0, blur=0, noise=0, sky=0, jpeg_probability=1,
                              jpeg_quality=(70, 70))
    out, q = r.apply(img, np.ones(3), rng)
    assert q == 70 and out[:, 10, 10] == pytest.approx([2, 2, 2])
    r = NuisanceRandomisation(brightness=(1, 1), colour=0, blur=0, noise=1.0, sky=0, jpeg_probability=0)
    outs = [r.apply(np.zeros((3, 64, 64)), np.full(3, 0.5), np.random.default_rng(s))[0].std() for s in range(20)]
    assert 0 < np.mean(outs) < 0.5  # extra noise up to the band's noise
    with pytest.raises(SettingsError, match="brightness"):
        NuisanceRandomisation(brightness=(2, 1))
    with pytest.raises(SettingsError, match="jpeg_quality"):
        NuisanceRandomisation(jpeg_quality=(50, 101))


def test_render_settings_parse_and_refuse():
    """One grammar, parsed by the library (the command line passes the text on): ranges, fixed levels, checks."""
    from labelsky.cli import main

    assert NuisanceRandomisation.parse_overrides("") == {}
    got = NuisanceRandomisation.parse_overrides("blur=1.5,jpeg-quality=40:90,brightness=0.5:3,black=0.1")
    assert got == {"blur": 1.5, "jpeg_quality": [40, 90], "brightness": [0.5, 3.0], "black": [0.1, 0.1]}
    assert NuisanceRandomisation.from_dict(got).black == (0.1, 0.1)
    assert InputSettings(render="sdss", randomise={}).randomise == {}
    for bad, msg in (("wobble=1", "NAME=VALUE"), ("blur=x", "numbers"), ("blur=1:2", "one number"),
                     ("brightness=2:1", "brightness")):
        with pytest.raises(SettingsError, match=msg):
            NuisanceRandomisation.parse_overrides(bad)
    for kw, msg in (({"randomise": {}}, "needs --render"), ({"render": "nope"}, "expected one of"),
                    ({"jpeg_quality": 50}, "needs --render"), ({"black_point": 0.05}, "needs --render"),
                    ({"render": "sdss", "black_point": 1.2}, "0 <= LEVEL < 1")):
        with pytest.raises(SettingsError, match=msg):
            InputSettings(**kw)
    # the command line gives the text to the library's grammar: one error line, exit 2
    assert main(["train", "--data", "nowhere", "--out", "x", "--render", "sdss", "--randomise", "wobble=1"]) == 2


def test_adapt_from_rendered_simulation_to_pictures(tmp_path):
    """A flux source and a picture target meet as pictures: adaptation runs and the gap is measured."""
    import json

    from labelsky.cli import main
    from labelsky.data.simulate import simulate_galaxies

    sims = simulate_galaxies(tmp_path / "sim", n_objects=48, surveys=["decals"], stamp_size=24,
                             classes={"elliptical": 1, "spiral": 1}, workers=1, progress=False)
    pics, _ = _dataset(tmp_path / "pics", "display", n=24)
    run = tmp_path / "run"
    assert main(["adapt", "--source", str(sims["decals"].path), "--target", str(pics.path), "--out", str(run),
                 "--backbone", "resnet10t", "--epochs", "1", "--batch-size", "8", "--render", "legacysurvey",
                 "--randomise", "", "--known", "elliptical", "spiral"]) == 0
    rep = json.loads((run / "eval.json").read_text())
    assert rep["domain_gap"]["after"]["n_target"] >= 4
    record = json.loads((run / "config.json").read_text())
    cfg = record["config"]
    assert cfg["render"] == "legacysurvey" and cfg["randomise"] == {}
    defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(NuisanceRandomisation()).items()}
    assert record["randomise_resolved"] == defaults  # what {} stood for
    import pyarrow.parquet as pq

    cat = tmp_path / "pics.parquet"  # the catalog of the unlabelled pictures: classes, confidences, unknown flags
    assert main(["catalog", "--run", str(run), "--data", str(pics.path), "--out", str(cat)]) == 0
    t = pq.read_table(cat)
    assert t.num_rows == 24 and {"p_elliptical", "p_spiral", "confidence", "unknown"} <= set(t.column_names)


def test_randomisation_in_loader_workers_changes_every_epoch_and_replays(tmp_path):
    from labelsky.methods.training import make_loader

    flux, _ = _dataset(tmp_path / "flux", "nanomaggy", n=8)
    other, _ = _dataset(tmp_path / "other", "nanomaggy", n=8)
    cfg = Inputs(render="legacysurvey", randomise={}, seed=2, num_workers=2)
    cfg.batch_size = 8

    def epochs(ds):
        loader = make_loader([(ds, np.arange(8), None)], cfg, shuffle=True)
        return [torch.cat([x for x, _ in loader]) for _ in range(2)]

    a, b = epochs(flux), epochs(flux)
    assert not torch.allclose(a[0].sort(0).values, a[1].sort(0).values)  # new nuisances every epoch
    assert all(torch.equal(u, v) for u, v in zip(a, b))  # the same seed replays the same run
    c = epochs(other)  # another dataset of the run draws other nuisances (identical images, other draws)
    assert not torch.equal(a[0], c[0])
    with pytest.raises(SettingsError, match="needs bands"):
        InputSettings(render="sdss").preprocess(flux)  # g r z cannot make an SDSS (g r i) picture


def test_pictures_off_the_image_edge_get_the_sky_not_black():
    from labelsky.data.transforms import Preprocess

    img = np.full((3, 8, 8), 0.2, np.float32)
    img[:, :, 6:] = np.nan  # a cutout that ran over its image's edge
    img[1, 0, 0] = 0.9
    out = Preprocess([0, 1, 2], stretch="none", fill="median")(img).numpy()
    assert np.allclose(out[:, :, 6:], 0.2) and out[1, 0, 0] == pytest.approx(0.9)
    assert np.allclose(Preprocess([0, 1, 2], stretch="none")(img).numpy()[:, :, 6:], 0.0)


def test_display_nuisances_move_black_level_contrast_and_gamma(tmp_path):
    rgb = np.array([0.05, 0.3, 0.9])[:, None, None] * np.ones((3, 2, 2))
    r = NuisanceRandomisation(black=(0.1, 0.1), contrast=(2, 2))
    assert r.changes_display and not NuisanceRandomisation().changes_display
    out = r.apply_display(rgb, np.random.default_rng(0))
    assert np.allclose(out[:, 0, 0], np.round(np.array([0.0, 0.4, 1.0]) * 255) / 255)
    g = NuisanceRandomisation(gamma=0.5).apply_display(rgb, np.random.default_rng(1))
    assert not np.allclose(g, rgb, atol=2 / 255) and g[2, 0, 0] > g[1, 0, 0] > g[0, 0, 0]  # order kept
    with pytest.raises(SettingsError, match="contrast"):
        NuisanceRandomisation(contrast=(0, 1))
    flux, _ = _dataset(tmp_path / "flux", "nanomaggy")
    cfg = InputSettings(render="legacysurvey", randomise={"black": [0.1, 0.1], "contrast": [1, 1],
                                                          "jpeg_probability": 0, "brightness": [1, 1], "colour": 0,
                                                          "blur": 0, "noise": 0, "sky": 0})
    plain = InputSettings(render="legacysurvey").preprocess(flux)(flux.image(1), 1)
    dark = cfg.preprocess(flux, train=True)(flux.image(1), 1)
    assert torch.allclose(dark, (plain - 0.1).clamp(0, 1), atol=1.5 / 255)


def test_semisup_on_rendered_simulation_predicts_votes_of_pictures(tmp_path):
    """The ET-VAE trains on simulated votes rendered as viewer pictures (randomised) and reads 8-bit pictures."""
    import json

    import pyarrow.parquet as pq

    from labelsky.cli import main
    from labelsky.data.simulate import simulate_galaxies
    from labelsky.methods.semisup.module import VoteDataset

    sim = simulate_galaxies(tmp_path / "sim", n_objects=64, surveys=["decals"], stamp_size=16, workers=1,
                            progress=False)["decals"]
    cfg = Inputs(render="legacysurvey", randomise={}, seed=1)
    data = VoteDataset(sim, np.arange(4), cfg.preprocess(sim, train=True))
    x, counts = data[2]
    ref = render(sim.image(2), list(sim.bands), "legacysurvey", pixel_scale=sim.survey.pixel_scale)
    assert x.shape == (3, 16, 16) and not torch.allclose(x, torch.from_numpy(ref))  # randomised for training
    assert torch.allclose(VoteDataset(sim, np.arange(4), cfg.preprocess(sim))[2][0], torch.from_numpy(ref))
    from labelsky.methods.semisup import SemiSupConfig
    from labelsky.methods.semisup.module import _loader

    scfg = SemiSupConfig(render="legacysurvey", randomise={}, batch_size=4)
    assert torch.allclose(next(iter(_loader(sim, np.arange(4), scfg, shuffle=False)))[0][2], torch.from_numpy(ref))
    trained = next(iter(_loader(sim, np.full(4, 2), scfg, shuffle=True, steps=1)))[0]  # row 2 four times
    assert not any(torch.allclose(img, torch.from_numpy(ref)) for img in trained)  # training batches randomise
    run = tmp_path / "run"
    assert main(["semisup", "--data", str(sim.path), "--out", str(run), "--regime", "semi", "--epochs", "1",
                 "--latent-dim", "8", "--batch-size", "16", "--render", "legacysurvey", "--randomise", ""]) == 0
    saved = json.loads((run / "config.json").read_text())["config"]
    assert saved["render"] == "legacysurvey" and saved["randomise"] == {}
    pics, _ = _dataset(tmp_path / "pics", "display", n=12)
    assert main(["catalog", "--run", str(run), "--data", str(pics.path), "--out", str(tmp_path / "cat.parquet")]) == 0
    t = pq.read_table(tmp_path / "cat.parquet")
    frac = np.stack([t.column(f"p_{a}").to_numpy() for a in ("smooth", "featured", "artifact")], 1)
    assert t.num_rows == 12 and np.allclose(frac.sum(1), 1, atol=1e-5)
