"""``labelsky browse``: every link of the static site resolves, listings paginate and sort, thumbnails are written
once (resumably), bad inputs are refused by name, and a real browser renders it."""

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelsky.catalog.browse import BrowseSettings, build_site, galaxy_key
from labelsky.data.io import DatasetError, open_dataset
from labelsky.data.vote_trees import DECALS_DR5
from labelsky.errors import OutputError


def _catalog(ds, path, tree=False):
    """A catalog of every row of ``ds``, as labelsky catalog writes one (classes, confidence, entropy, unknown)."""
    rng = np.random.default_rng(0)
    n = len(ds)
    p = rng.dirichlet(np.ones(3), n).astype(np.float32)
    names = ["smooth", "featured", "artifact"]
    cols = {"id_str": ds.column("id_str").astype(str), "ra": ds.column("ra"), "dec": ds.column("dec"),
            "survey": [ds.survey.name] * n, **{f"p_{c}": p[:, k] for k, c in enumerate(names)},
            "pred_label": p.argmax(1).astype(np.int16), "pred_class": [names[k] for k in p.argmax(1)],
            "confidence": p.max(1), "entropy": -(p * np.log(p)).sum(1), "unknown": p.max(1) < 0.5}
    if tree:
        f = np.concatenate([rng.dirichlet(np.ones(len(q.answers)), n) for q in DECALS_DR5.questions], 1)
        u = DECALS_DR5.unconditional(f)
        for k, name in enumerate(DECALS_DR5.names()):
            cols[f"p_{name}"], cols[f"p_{name}_unconditional"] = f[:, k], u[:, k]
    pq.write_table(pa.table(cols), path)
    return cols


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("href", "src") and v:
                self.links.append(v)


def _broken_links(site: Path) -> list:
    bad = []
    for page in site.rglob("*.html"):
        parser = _Links()
        parser.feed(page.read_text())
        for link in parser.links:
            if not (page.parent / link).resolve().exists():
                bad.append((str(page.relative_to(site)), link))
    return bad


def test_every_link_resolves_and_listings_sort_and_paginate(tmp_path, tiny_dataset):
    ds = open_dataset(tiny_dataset[0])
    cols = _catalog(ds, tmp_path / "cat.parquet", tree=True)
    res = build_site(tmp_path / "cat.parquet", ds, tmp_path / "site", settings=BrowseSettings(per_page=2),
                     progress=False)
    site = tmp_path / "site"
    assert res["n"] == len(ds) == 12 and res["thumbnails_written"] == 12
    assert _broken_links(site) == []
    assert (site / "tree.html").exists() and "spiral-winding" in (site / "tree.html").read_text()
    for c in set(cols["pred_class"]):  # each class's pages: confidence falls from tile to tile, 2 per page
        members = sorted((float(v) for v, k in zip(cols["confidence"], cols["pred_class"]) if k == c), reverse=True)
        pages = sorted(site.glob(f"class-{c}-*.html"))
        assert len(pages) == -(-len(members) // 2)
        shown = [float(x) for p in pages for x in
                 __import__("re").findall(r'data-confidence="([0-9.]+)"', p.read_text())]
        np.testing.assert_allclose(shown, members, rtol=1e-6)
    unknown = sum(len(__import__("re").findall(r'class="tile"', p.read_text())) for p in site.glob("unknown-*.html"))
    assert unknown == int(np.sum(cols["unknown"]))
    k = galaxy_key(cols["id_str"][3])
    page = (site / "galaxy" / k[:2] / f"{k}.html").read_text()
    assert cols["id_str"][3] in page and "bar: strong" in page and "p_bar_strong" not in page
    for p in site.glob("*-0*.html"):  # listing pages stay small: a bounded number of tiles each
        assert p.stat().st_size < 8000, p


def test_thumbnails_are_written_once_and_an_interrupted_site_resumes(tmp_path, tiny_dataset):
    ds = open_dataset(tiny_dataset[0])
    cat = tmp_path / "cat.parquet"
    _catalog(ds, cat)
    site = tmp_path / "site"
    build_site(cat, ds, site, progress=False)
    thumbs = sorted(site.glob("thumbs/*/*.png"))
    before = {t: t.stat().st_mtime_ns for t in thumbs}
    with pytest.raises(OutputError, match="complete already"):
        build_site(cat, ds, site, progress=False)
    # an interrupted build: not complete, one thumbnail missing -> only that one is drawn again
    rec = json.loads((site / "site.json").read_text())
    (site / "site.json").write_text(json.dumps({**rec, "complete": False}))
    thumbs[0].unlink()
    res = build_site(cat, ds, site, progress=False)
    assert res["thumbnails_written"] == 1
    assert all(t.stat().st_mtime_ns == before[t] for t in thumbs[1:])
    # other settings are refused without --overwrite, replaced with it
    with pytest.raises(OutputError, match="other inputs or settings"):
        build_site(cat, ds, site, settings=BrowseSettings(per_page=3), progress=False)
    assert build_site(cat, ds, site, settings=BrowseSettings(per_page=3), overwrite=True,
                      progress=False)["thumbnails_written"] == 12


def test_bad_inputs_are_refused_by_name(tmp_path, tiny_dataset):
    ds = open_dataset(tiny_dataset[0])
    cols = _catalog(ds, tmp_path / "cat.parquet")
    t = pq.read_table(tmp_path / "cat.parquet")
    ids = t.column("id_str").to_pylist()
    ids[5] = "nowhere-5"
    pq.write_table(t.set_column(0, "id_str", pa.array(ids)), tmp_path / "other.parquet")
    with pytest.raises(DatasetError, match=r"row 5: id_str='nowhere-5' is not in the dataset"):
        build_site(tmp_path / "other.parquet", ds, tmp_path / "s1", progress=False)
    with pytest.raises(DatasetError, match="no such catalog"):
        build_site(tmp_path / "missing.parquet", ds, tmp_path / "s2", progress=False)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(OutputError, match="not made by labelsky"):
        build_site(tmp_path / "cat.parquet", ds, mine, progress=False)
    assert (mine / "notes.txt").read_text() == "keep"
    assert len(cols["id_str"]) == 12


def _chromium():
    return next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed (Debian: apt-get install chromium); the "
                                                "site is checked without a browser by the tests above")
def test_a_real_browser_renders_the_index_and_a_galaxy_page(tmp_path, tiny_dataset):
    from PIL import Image

    from labelsky.cli import main

    ds = open_dataset(tiny_dataset[0])
    cols = _catalog(ds, tmp_path / "cat.parquet")
    assert main(["browse", str(tmp_path / "cat.parquet"), "--data", str(ds.path), "--out", str(tmp_path / "site")]) == 0
    k = galaxy_key(cols["id_str"][0])
    for name, page in (("index", tmp_path / "site" / "index.html"),
                       ("galaxy", tmp_path / "site" / "galaxy" / k[:2] / f"{k}.html")):
        png = tmp_path / f"{name}.png"
        r = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            f"--screenshot={png}", "--window-size=1000,700", page.resolve().as_uri()],
                           capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
        assert png.exists(), r.stderr[-500:]
        img = np.asarray(Image.open(png).convert("L"), dtype=float)
        assert img.shape == (700, 1000) and img.std() > 5  # text and pictures drawn, not a blank page


def test_a_partitioned_catalog_folder_is_read_whole(tmp_path, tiny_dataset):
    ds = open_dataset(tiny_dataset[0])
    _catalog(ds, tmp_path / "cat.parquet")
    t = pq.read_table(tmp_path / "cat.parquet")
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(t.slice(0, 5), folder / "part-00000.parquet")
    pq.write_table(t.slice(5), folder / "part-00001.parquet")
    (folder / "_job.json").write_text("{}")  # the writer's bookkeeping is not a part
    res = build_site(folder, ds, tmp_path / "site", settings=BrowseSettings(galaxy_pages=False), progress=False)
    assert res["n"] == 12 and not (tmp_path / "site" / "galaxy").exists()
    assert _broken_links(tmp_path / "site") == []
