"""Simulator throughput: labelsky ``simulate_galaxies`` versus a naive GalSim loop.

Stamps of 64 x 64 pixels in the three bands g, r, z of the ``decals`` survey.

labelsky
    ``simulate_galaxies(surveys=["decals"], stamp_size=64)`` with the default
    class proportions (all eight classes) and the default realism switches
    (neighbouring stars and galaxies, sky residuals, source noise,
    saturation), end to end: truth sampling, rendering, noise, catalog
    validation and writing the HDF5 / Parquet shards. Timed with 2 worker
    processes and with 1, each in a fresh Python process (imports are timed
    separately and not counted).

naive GalSim loop (does *less* work per stamp)
    One process; per stamp a ``galsim.Sersic`` bulge with a continuous random
    index n ~ U(0.5, 6) (no quantisation, so GalSim's per-n caches rarely
    hit) plus a ``galsim.Exponential`` disk, both sheared, default GSParams,
    per band: fixed colours, convolved with the band's Moffat PSF
    (``survey.psf(b)``), ``drawImage`` on 64 x 64 pixels, noise with
    ``galsim.GaussianNoise`` at the survey's sky sigma. No neighbours, no
    spectral templates, no spiral arms / knots / lensing / artifacts, no
    saturation, no catalog; the stamps are kept in memory and written once
    with ``np.save`` at the end.

Stamps/s = objects / wall time of the whole call (median of ``--repeats``
fresh-process runs). Run
``python benchmarks/sim_throughput.py`` or ``--quick``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CpuMonitor, md_table, wait_for_idle, write_results  # noqa: E402

SURVEY = "decals"
STAMP = 64


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny smoke run (24 labelsky objects, 8 naive stamps)")
    p.add_argument("--n-labelsky", type=int, default=400, help="objects simulated by labelsky per run")
    p.add_argument("--n-naive", type=int, default=100, help="stamps drawn by the naive GalSim loop")
    p.add_argument("--shard-size", type=int, default=25,
                   help="labelsky shard size (shards are the unit of parallel work; small enough that "
                        "2 workers get balanced work)")
    p.add_argument("--default-shard-run", action=argparse.BooleanOptionalAction, default=True,
                   help="also time 2 workers with the library's default shard size (256)")
    p.add_argument("--repeats", type=int, default=3, help="fresh-process runs per measurement; the median is reported")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-wait-idle", type=float, default=180.0,
                   help="before each run wait up to this many seconds for other programs to leave the CPUs "
                        "(contention during each run is measured and recorded either way)")
    p.add_argument("--work-dir", default="/tmp/labelsky_bench/sim_throughput")
    p.add_argument("--name", default=None)
    p.add_argument("--_child", choices=("labelsky", "naive"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--_workers", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--_shard", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.n_labelsky, args.n_naive, args.shard_size = 24, 8, 6
        if args.repeats == p.get_default("repeats"):
            args.repeats = 1
        if args.work_dir == p.get_default("work_dir"):
            args.work_dir += "_quick"
    if args.name is None:
        args.name = "sim_throughput_quick" if args.quick else "sim_throughput"
    return args


# --------------------------------------------------------------------------- children (fresh processes)
def child_labelsky(args) -> dict:
    t0 = time.perf_counter()
    import galsim  # noqa: F401 - imported by labelsky lazily; import it here so both sides exclude it
    import numpy as np

    from labelsky.data.simulate.stamps import GalaxySimConfig, simulate_galaxies

    t_import = time.perf_counter() - t0
    out = Path(args.work_dir) / f"labelsky_w{args._workers}_s{args._shard}"
    cfg = GalaxySimConfig()  # default classes and realism switches
    t0 = time.perf_counter()
    ds = simulate_galaxies(out, cfg, workers=args._workers, overwrite=True, progress=False, surveys=[SURVEY],
                           n_objects=args.n_labelsky, stamp_size=STAMP, shard_size=args._shard, seed=args.seed)
    wall = time.perf_counter() - t0
    d = ds[SURVEY]
    assert len(d) == args.n_labelsky and d.image_shape == (3, STAMP, STAMP), (len(d), d.image_shape)
    names = d.column("label_name")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return {"wall_s": wall, "import_s": t_import, "n": len(d), "bands": d.bands,
            "class_counts": {c: int((names == c).sum()) for c in sorted(set(names))},
            "mean_neighbour_stars": float(np.mean(d.column("n_neighbour_stars"))),
            "mean_neighbour_galaxies": float(np.mean(d.column("n_neighbour_galaxies"))),
            "frac_saturated": float(np.mean(d.column("saturated"))),
            "bytes_written": int(size), "n_shards": int(d.n_shards)}


def child_naive(args) -> dict:
    t0 = time.perf_counter()
    import galsim
    import numpy as np

    from labelsky.data.surveys import get_survey

    t_import = time.perf_counter() - t0
    survey = get_survey(SURVEY)
    colours = {"g": 0.7, "r": 0.0, "z": -0.6}  # fixed band - r colours (AB mag), no SED templates
    out = Path(args.work_dir) / "naive"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    stamps = np.empty((args.n_naive, survey.n_bands, STAMP, STAMP), np.float32)
    ns = []
    for i in range(args.n_naive):
        mag_r = rng.uniform(15.0, 19.0)
        flux_r = 10 ** (-0.4 * (mag_r - 22.5))  # nanomaggies
        hlr = float(np.clip(10 ** (0.45 - 0.2 * (mag_r - 17.0) + rng.normal(0, 0.12)), 0.4, 15.0))
        n = float(rng.uniform(0.5, 6.0))  # continuous Sersic index
        ns.append(n)
        bt = rng.uniform(0.1, 0.9)
        q = rng.uniform(0.3, 1.0)
        beta = rng.uniform(0, math.pi) * galsim.radians
        e = (1 - q) / (1 + q)
        bulge = galsim.Sersic(n=n, half_light_radius=max(0.3 * hlr, 0.15)).shear(e=min(e, 0.2), beta=beta)
        disk = galsim.Exponential(half_light_radius=hlr).shear(e=e, beta=beta)
        noise_dev = galsim.BaseDeviate(int(rng.integers(1, 2**31)))
        for b, band in enumerate(survey.bands):
            f = flux_r * 10 ** (-0.4 * colours[band])
            gal = galsim.Add([bulge.withFlux(bt * f), disk.withFlux((1 - bt) * f)])
            img = galsim.Convolve(gal, survey.psf(b)).drawImage(nx=STAMP, ny=STAMP, scale=survey.pixel_scale)
            img.addNoise(galsim.GaussianNoise(noise_dev, sigma=survey.noise_sigma(b)))
            stamps[i, b] = img.array
    np.save(out / "stamps.npy", stamps)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "import_s": t_import, "n": args.n_naive, "bands": list(survey.bands),
            "sersic_n_range": [float(min(ns)), float(max(ns))],
            "bytes_written": int((out / "stamps.npy").stat().st_size)}


def run_child(kind: str, args, workers: int = 1, shard: int | None = None) -> dict:
    """Run one measurement ``args.repeats`` times, each in a fresh process; report the median."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", kind, "--_workers", str(workers),
           "--n-labelsky", str(args.n_labelsky), "--n-naive", str(args.n_naive), "--seed", str(args.seed),
           "--work-dir", args.work_dir]
    if shard is not None:
        cmd += ["--_shard", str(shard)]
    results = []
    for rep in range(args.repeats):
        print(f"running {kind} (workers={workers}, shard_size={shard}), repeat {rep + 1}/{args.repeats} ...",
              file=sys.stderr, flush=True)
        idle = wait_for_idle(args.max_wait_idle)
        with CpuMonitor() as mon:
            res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            sys.stderr.write(res.stdout + res.stderr)
            raise RuntimeError(f"{kind} run failed (exit {res.returncode})")
        r = json.loads(res.stdout.strip().splitlines()[-1])
        r["cpu"] = dict(mon.as_dict(), busy_before=idle["busy_before"], waited_for_idle_s=idle["waited_s"])
        print(f"  {r['n']} stamps in {r['wall_s']:.1f} s: {r['n'] / r['wall_s']:.2f} stamps/s "
              f"(other programs used {r['cpu']['other_processes_cpu_frac']:.0%} of the CPUs)",
              file=sys.stderr, flush=True)
        results.append(r)
    walls = sorted(r["wall_s"] for r in results)
    out = dict(results[0])  # same seed: identical content in every repeat
    out["wall_s_all"] = [r["wall_s"] for r in results]
    out["wall_s"] = walls[len(walls) // 2] if len(walls) % 2 else 0.5 * (walls[len(walls) // 2 - 1]
                                                                          + walls[len(walls) // 2])
    out["stamps_per_s"] = out["n"] / out["wall_s"]
    out["stamps_per_s_all"] = [out["n"] / w for w in out["wall_s_all"]]
    out["cpu"] = [r["cpu"] for r in results]
    out["max_other_processes_cpu_frac"] = max(c["other_processes_cpu_frac"] for c in out["cpu"])
    return out


def main(argv=None):
    args = parse_args(argv)
    if args._child:
        r = child_labelsky(args) if args._child == "labelsky" else child_naive(args)
        print(json.dumps(r))
        return
    t_start = time.perf_counter()
    runs = {
        "labelsky_2_workers": run_child("labelsky", args, workers=2, shard=args.shard_size),
        "labelsky_1_worker": run_child("labelsky", args, workers=1, shard=args.shard_size),
    }
    if args.default_shard_run:
        runs["labelsky_2_workers_default_shard"] = run_child("labelsky", args, workers=2, shard=256)
    runs["naive_galsim_1_process"] = run_child("naive", args)
    naive = runs["naive_galsim_1_process"]["stamps_per_s"]
    metrics = {k: v for k, v in runs.items()}
    metrics["speedup_vs_naive"] = {k: runs[k]["stamps_per_s"] / naive for k in runs if k.startswith("labelsky")}
    metrics["parallel_speedup_2_vs_1_worker"] = (runs["labelsky_2_workers"]["stamps_per_s"]
                                                 / runs["labelsky_1_worker"]["stamps_per_s"])
    metrics["setup"] = {"survey": SURVEY, "bands": ["g", "r", "z"], "stamp_size": STAMP,
                        "n_labelsky": args.n_labelsky, "n_naive": args.n_naive, "shard_size": args.shard_size,
                        "repeats": args.repeats, "statistic": "median wall time over repeats",
                        "labelsky": "default classes and realism switches, end to end incl. writing",
                        "naive": "Sersic(continuous n)+Exponential, default GSParams, Moffat PSF, GaussianNoise, "
                                 "no neighbours (less work per stamp)"}
    metrics["total_time_s"] = time.perf_counter() - t_start
    shutil.rmtree(args.work_dir, ignore_errors=True)

    labels = {"labelsky_2_workers": f"labelsky, 2 workers (shard_size {args.shard_size})",
              "labelsky_1_worker": f"labelsky, 1 worker (shard_size {args.shard_size})",
              "labelsky_2_workers_default_shard": "labelsky, 2 workers (default shard_size 256)",
              "naive_galsim_1_process": "naive GalSim loop, 1 process (less work)"}
    rows = [[labels[k], r["n"], f"{r['wall_s']:.1f}", f"{r['stamps_per_s']:.2f}",
             ", ".join(f"{v:.1f}" for v in r["stamps_per_s_all"]), f"{r['max_other_processes_cpu_frac']:.0%}",
             f"{metrics['speedup_vs_naive'][k]:.2f}x" if k in metrics["speedup_vs_naive"] else "1.00x"]
            for k, r in runs.items()]
    md = (f"### Simulator throughput: {SURVEY} g,r,z, {STAMP}x{STAMP} stamps\n\n"
          + md_table(["method", "stamps", "wall s (median)", "stamps/s (median)", "stamps/s (each run)",
                      "CPU taken by other programs (max)", "vs naive"],
                     rows)
          + f"\n\nlabelsky: default classes and realism (neighbours, sky residuals, source noise, saturation), "
            f"end to end including writing; each run in a fresh process, imports not counted; "
            f"median of {args.repeats} runs. "
            f"2 vs 1 worker: {metrics['parallel_speedup_2_vs_1_worker']:.2f}x. "
            f"The naive loop does less work per stamp (bulge + disk only, no neighbours, fixed colours).\n")
    j, m = write_results(args.name, metrics, md)
    print(md)
    print(f"wrote {j} and {m}", file=sys.stderr)


if __name__ == "__main__":
    main()
