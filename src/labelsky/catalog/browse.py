"""``labelsky browse``: a static web site of a catalog, to look at the galaxies before trusting it.

The site opens from ``file://`` with no server and no network (plain HTML, one
CSS file and one small script, made with Jinja2 templates):

* ``index.html``: the catalog in numbers, its classes with their counts, links to every listing;
* per-class mosaics sorted by confidence (``class-<name>-<page>.html``), paginated;
* the least certain galaxies (highest entropy first, ``uncertain-<page>.html``);
* the galaxies flagged ``unknown`` (``unknown-<page>.html``), when the catalog has that column;
* the vote-tree answers (``tree.html``), when the catalog holds every answer of a Galaxy Zoo decision tree: the
  galaxies most likely to have each answer (unconditional probability);
* a page per galaxy (``galaxy/<xx>/<key>.html``): its picture in the chosen rendering, probabilities, the
  dataset's vote counts, id, position, survey.

Every listing page filters its tiles by confidence (a slider) and jumps between classes. Pages stay small on
10^6-row catalogs: listings are paginated (``per_page`` tiles), and galaxy pages and thumbnails live in 256
sub-folders named by their key (a hash of ``id_str``, safe for any identifier). Thumbnails are PNGs written once:
a run that stops resumes where it was, skipping the files already written (each written atomically); the inputs
it was built from are recorded in ``site.json``, and a site of other inputs is refused (``overwrite`` replaces
it). The site is a labelsky output folder (kind ``site``): it never writes into a folder labelsky did not make.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelsky.data.io import VOTE_COLUMNS, DatasetError, LabelskyDataset
from labelsky.data.vote_trees import tree_of_columns
from labelsky.errors import OutputError
from labelsky.outputs import prepare_output
from labelsky.utils import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["BrowseSettings", "build_site", "galaxy_key"]

TEMPLATES = Path(__file__).with_name("templates")


@dataclass
class BrowseSettings:
    """``per_page``: tiles per listing page; ``n_uncertain``: galaxies in the least-certain listing;
    ``per_answer``: galaxies shown per vote-tree answer; ``rendering``: how flux images become pictures
    (``auto``, a survey viewer such as ``legacysurvey`` / ``sdss`` / ``hsc``, or ``lupton`` / ``desi``);
    ``galaxy_pages``: write a page per galaxy."""

    per_page: int = 120
    n_uncertain: int = 600
    per_answer: int = 12
    rendering: str = "auto"
    galaxy_pages: bool = True


def galaxy_key(id_str: str) -> str:
    """A file-name-safe key of an identifier (16 hex digits of its SHA-1)."""
    return hashlib.sha1(str(id_str).encode()).hexdigest()[:16]


def _read_catalog(path: Path):
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such catalog (a Parquet file or folder written by labelsky catalog)")
    try:
        schema = pq.read_schema(path) if path.is_file() else pq.ParquetDataset(path).schema
        cols = [n for n in schema.names if n != "embedding"]
        table = pq.read_table(path, columns=cols)
    except Exception as err:  # noqa: BLE001 - any unreadable file: one line naming it
        raise DatasetError(f"{path}: cannot read it as a Parquet catalog: {err}") from None
    if "id_str" not in table.column_names:
        raise DatasetError(f"{path}: no 'id_str' column; expected a catalog written by labelsky catalog")
    return {n: table.column(n).to_numpy(zero_copy_only=False) for n in table.column_names}


def _fingerprint(path: Path) -> dict:
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {"path": str(path.resolve()), "bytes": int(sum(f.stat().st_size for f in files)),
            "mtime_ns": int(max((f.stat().st_mtime_ns for f in files), default=0))}


def _env():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = lambda v, d=3: "" if v is None or (isinstance(v, float) and not np.isfinite(v)) \
        else f"{v:.{d}f}"
    return env


def _slug(name: str) -> str:
    s = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(name))
    return s or "none"


class _Site:
    def __init__(self, out: Path, cat: dict, ds: LabelskyDataset, rows: np.ndarray, st: BrowseSettings):
        self.out, self.cat, self.ds, self.rows, self.st = out, cat, ds, rows, st
        self.env = _env()
        self.n = len(rows)
        self.keys = [galaxy_key(i) for i in cat["id_str"]]
        self.conf = np.asarray(cat["confidence"], float) if "confidence" in cat else np.full(self.n, np.nan)
        self.pred = np.asarray(cat["pred_class"]).astype(str) if "pred_class" in cat else np.full(self.n, "all")
        self.classes = sorted(set(self.pred.tolist()))
        self.tree = tree_of_columns([c[2:] for c in cat if c.startswith("p_")])
        self.listings: list[dict] = []

    def tile(self, i: int, depth: int = 0) -> dict:
        up = "../" * depth
        k = self.keys[i]
        return {"id": str(self.cat["id_str"][i]), "thumb": f"{up}thumbs/{k[:2]}/{k}.png",
                "page": f"{up}galaxy/{k[:2]}/{k}.html" if self.st.galaxy_pages else None,
                "cls": str(self.pred[i]), "conf": float(self.conf[i]) if np.isfinite(self.conf[i]) else None}

    def write(self, rel: str, template: str, up: str = "", **ctx) -> None:
        html = self.env.get_template(template).render(classes=self.classes, listings=self.listings,
                                                      tree=self.tree is not None, up=up, **ctx)
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, html)

    def listing(self, name: str, title: str, order: np.ndarray, what: str) -> dict:
        pages = max(1, -(-len(order) // self.st.per_page))
        entry = {"name": name, "title": title, "n": int(len(order)), "pages": pages, "href": f"{name}-0001.html",
                 "what": what}
        self.listings.append(entry)
        return {**entry, "order": order}

    def write_listing(self, entry: dict) -> None:
        order, per = entry["order"], self.st.per_page
        for p in range(entry["pages"]):
            tiles = [self.tile(int(i)) for i in order[p * per:(p + 1) * per]]
            nav = {"prev": f"{entry['name']}-{p:04d}.html" if p > 0 else None,
                   "next": f"{entry['name']}-{p + 2:04d}.html" if p + 1 < entry["pages"] else None,
                   "page": p + 1, "pages": entry["pages"]}
            self.write(f"{entry['name']}-{p + 1:04d}.html", "listing.html", title=entry["title"], what=entry["what"],
                       tiles=tiles, nav=nav, n=entry["n"])

    def thumbnails(self, progress: bool) -> int:
        from PIL import Image
        from tqdm.auto import tqdm

        from labelsky.data.display import picture_of

        made = 0
        for i in tqdm(range(self.n), desc="thumbnails", unit="gal", disable=not progress):
            k = self.keys[i]
            path = self.out / "thumbs" / k[:2] / f"{k}.png"
            if path.exists():  # written by an earlier run of this site: resume
                continue
            rgb, origin = picture_of(self.ds, int(self.rows[i]), self.st.rendering)
            rgb = rgb[::-1] if origin == "lower" else rgb  # north up on screen
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)).save(tmp, format="PNG")
            made += 1
        return made

    def galaxy_pages(self, progress: bool) -> None:
        from tqdm.auto import tqdm

        probs = [c for c in self.cat if c.startswith("p_") and not c.endswith("_unconditional")]
        votes = [c for c in self.ds.catalog.column_names if c.startswith("votes_") and c not in VOTE_COLUMNS]
        votes = list(VOTE_COLUMNS) * all(c in self.ds.catalog.column_names for c in VOTE_COLUMNS) + votes
        vote_values = {c: self.ds.column(c) for c in votes}
        fields = [c for c in ("ra", "dec", "survey", "pred_class", "confidence", "entropy", "unknown") if c in self.cat]
        truth = self.ds.column("label_name") if "label_name" in self.ds.catalog.column_names else None
        for i in tqdm(range(self.n), desc="galaxy pages", unit="gal", disable=not progress):
            k = self.keys[i]
            rel = f"galaxy/{k[:2]}/{k}.html"
            if (self.out / rel).exists():
                continue
            if self.tree is not None:  # grouped by question, in the tree's order
                p = [(f"{q.name}: {a}", float(self.cat[f"p_{q.name}_{a}"][i])) for q in self.tree.questions
                     for a in q.answers]
            else:
                p = sorted(((c[2:], float(self.cat[c][i])) for c in probs), key=lambda t: -t[1])
            row = int(self.rows[i])
            v = [(c.removeprefix("votes_"), int(vote_values[c][row])) for c in votes if vote_values[c][row] >= 0]
            info = [(f, self.cat[f][i].item() if hasattr(self.cat[f][i], "item") else self.cat[f][i]) for f in fields]
            if truth is not None and str(truth[row]):
                info.append(("label in the dataset", str(truth[row])))
            self.write(rel, "galaxy.html", up="../../", title=str(self.cat["id_str"][i]), g=self.tile(i, depth=2),
                       info=info, probs=p, votes=v,
                       row=row, dataset=str(self.ds.path))

    def tree_page(self) -> None:
        tree, per = self.tree, self.st.per_answer
        questions = []
        for q in tree.questions:
            answers = []
            for a in q.answers:
                col = f"p_{q.name}_{a}_unconditional"
                col = col if col in self.cat else f"p_{q.name}_{a}"
                score = np.asarray(self.cat[col], float)
                top = np.argsort(-score, kind="stable")[:per]
                answers.append({"name": a, "column": col, "mean": float(score.mean()),
                                "tiles": [{**self.tile(int(i)), "conf": float(score[i])} for i in top]})
            questions.append({"name": q.name, "parents": [f"{pq}: {pa}" for pq, pa in q.parents], "answers": answers})
        self.write("tree.html", "tree.html", title=f"Galaxy Zoo {tree.name} answers", questions=questions)


def build_site(catalog, dataset: LabelskyDataset | str | Path, out, *, settings: BrowseSettings | None = None,
               overwrite: bool = False, progress: bool = True) -> dict:
    """Write the static site of ``catalog`` (a Parquet catalog file or folder) over the images of ``dataset``
    into ``out``; returns a summary (``index``: the path to open). See the module docstring."""
    from labelsky.data.io import open_dataset

    st = settings or BrowseSettings()
    if st.per_page < 1 or st.n_uncertain < 0 or st.per_answer < 1:
        raise ValueError("per_page and per_answer must be at least 1, n_uncertain at least 0")
    catalog = Path(catalog)
    ds = dataset if isinstance(dataset, LabelskyDataset) else open_dataset(dataset)
    cat = _read_catalog(catalog)
    index = {s: r for r, s in enumerate(ds.column("id_str").astype(str))}
    ids = np.asarray(cat["id_str"]).astype(str)
    rows = np.array([index.get(s, -1) for s in ids], dtype=np.int64)
    if (rows < 0).any():
        bad = int(np.flatnonzero(rows < 0)[0])
        raise DatasetError(f"{catalog}: row {bad}: id_str={str(ids[bad])!r} is not in the dataset {ds.path} "
                           f"({int((rows < 0).sum())} of {len(ids)} catalog rows are not); --data must be the "
                           f"dataset the catalog was made from")
    out = Path(out)
    inputs = {"catalog": _fingerprint(catalog), "dataset": str(Path(ds.path).resolve()), "settings": vars(st)}
    record = out / "site.json"
    if record.exists() and not overwrite:
        import json

        old = json.loads(record.read_text())
        if old.get("inputs") != inputs:
            raise OutputError(f"{out} is a site of other inputs or settings ({old.get('inputs', {}).get('catalog')}); "
                              f"--overwrite replaces it")
        if old.get("complete"):
            raise OutputError(f"{out} is complete already; --overwrite writes it again")
    prepare_output(out, overwrite=overwrite, inputs=[catalog, ds.path], kind="site")
    atomic_write_json(record, {"inputs": inputs, "complete": False})
    site = _Site(out, cat, ds, rows, st)
    made = site.thumbnails(progress)
    # listings: each class by confidence, the least certain, the unknown-flagged
    conf = np.where(np.isfinite(site.conf), site.conf, -np.inf)
    entries = []
    for c in site.classes:
        members = np.flatnonzero(site.pred == c)
        order = members[np.argsort(-conf[members], kind="stable")]
        entries.append(site.listing(f"class-{_slug(c)}", f"{c}: most confident first", order,
                                    f"galaxies predicted '{c}'"))
    if "entropy" in cat and st.n_uncertain:
        order = np.argsort(-np.asarray(cat["entropy"], float), kind="stable")[:st.n_uncertain]
        entries.append(site.listing("uncertain", "least certain first", order,
                                    f"the {len(order)} galaxies of highest entropy"))
    if "unknown" in cat:
        flagged = np.flatnonzero(np.asarray(cat["unknown"]).astype(bool))
        score = np.asarray(cat["entropy"], float) if "entropy" in cat else -conf  # least certain first
        order = flagged[np.argsort(-score[flagged], kind="stable")]
        entries.append(site.listing("unknown", "flagged unknown", order, "galaxies flagged 'unknown' (no known class)"))
    for e in entries:
        site.write_listing(e)
    if site.tree is not None:
        site.tree_page()
    if st.galaxy_pages:
        site.galaxy_pages(progress)
    for name in ("style.css", "filter.js"):
        atomic_write_text(out / name, (TEMPLATES / name).read_text())
    stats = {"n": site.n, "classes": {c: int((site.pred == c).sum()) for c in site.classes},
             "mean_confidence": float(np.nanmean(site.conf)) if np.isfinite(site.conf).any() else None}
    site.write("index.html", "index.html", title="labelsky catalog", catalog=str(catalog), dataset=str(ds.path),
               survey=ds.survey.name, stats=stats)
    atomic_write_json(record, {"inputs": inputs, "complete": True, "n": site.n, "thumbnails_written": made})
    return {"index": str(out / "index.html"), "n": site.n, "thumbnails_written": made,
            "listings": [{k: e[k] for k in ("name", "n", "pages")} for e in site.listings],
            "files": sum(len(f) for _, _, f in os.walk(out))}
