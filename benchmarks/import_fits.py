"""Benchmark: ``labelsky import fits-cutouts`` rate and peak memory at two data-set sizes.

Writes N synthetic FITS cutouts (3 bands, one HDU per band with WCS, 64x64, a Gaussian galaxy plus noise, 2 % of
them with a masked corner) and a CSV catalog, then imports them in a child process and records objects per second
and the child's peak resident memory. Memory should stay flat as N grows (the importer streams shard by shard).
Writes benchmarks/results/import_fits.json and .md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402


def make_files(folder: Path, n: int, size: int = 64) -> Path:
    import numpy as np
    from astropy.io import fits
    from astropy.table import Table
    from astropy.wcs import WCS

    (folder / "cutouts").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    rows = []
    for i in range(n):
        ra, dec = 10.0 + 0.001 * i, -5.0
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = [ra, dec]
        w.wcs.crpix = [(size + 1) / 2] * 2
        w.wcs.cdelt = [-0.262 / 3600, 0.262 / 3600]
        s = rng.uniform(2, 6)
        g = np.exp(-0.5 * (xx ** 2 + yy ** 2) / s ** 2)
        hdus = [fits.PrimaryHDU()]
        for b in "grz":
            plane = (rng.uniform(5, 50) * g / g.sum() + rng.normal(0, 0.005, g.shape)).astype(np.float32)
            if i % 50 == 0:
                plane[:30, :30] = np.nan  # 22 % of the band: above the 20 % flag
            h = fits.ImageHDU(plane, header=w.to_header())
            h.header["FILTER"] = b
            hdus.append(h)
        fits.HDUList(hdus).writeto(folder / "cutouts" / f"g{i}.fits", overwrite=True)
        rows.append((f"g{i}", ra, dec, f"cutouts/g{i}.fits", "spiral" if i % 2 else "elliptical"))
    cat = folder / "catalog.csv"
    Table(rows=rows, names=["id_str", "ra", "dec", "file", "label"]).write(cat, format="ascii.csv", overwrite=True)
    return cat


def measure(cat: Path, out: Path) -> dict:
    """Import in a child process; its wall time and peak RSS (os.wait4 rusage of that child only)."""
    cmd = [sys.executable, "-m", "labelsky.cli", "import", "fits-cutouts", str(cat), "--survey", "decals", "--size",
           "64", "--out", str(out), "--overwrite"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return {"seconds": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/labelsky_bench/import_fits"))
    a = ap.parse_args(argv)
    from labelsky import open_dataset

    results = []
    for n in a.sizes:
        folder = a.work_dir / f"n{n}"
        cat = make_files(folder, n)
        m = measure(cat, folder / "dataset")
        ds = open_dataset(folder / "dataset")
        m.update(n=n, written=len(ds), flagged=int(ds.column("flag_masked").sum()),
                 objects_per_s=round(n / m["seconds"], 1))
        results.append(m)
    rows = "\n".join(f"| {r['n']} | {r['written']} | {r['flagged']} | {r['seconds']} | {r['objects_per_s']} | "
                     f"{r['peak_rss_mb']} |" for r in results)
    md = ("### `labelsky import fits-cutouts`: 64x64x3 cutouts, one FITS file per object, in a child process "
          "(start-up included)\n\n| objects | written | flagged (masked corner) | seconds | objects/s | "
          "peak RSS (MB) |\n|---|---|---|---|---|---|\n" + rows + "\n")
    write_results("import_fits", {"runs": results}, md)


if __name__ == "__main__":
    main()
