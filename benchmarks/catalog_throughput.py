"""Benchmark: catalog throughput against the compute limit (`labelsky catalog`, local and Ray engines).

Measures on this machine, for one trained run (ResNet-18, 3 bands, 64 px):

(a) the model's pure forward rate on an in-memory batch (inference mode, channels-last): the compute limit;
(b) `labelsky catalog` end to end from the dataset on disk to Parquet parts, each engine, in a child process:
    the rate over the whole job and in steady state (from the first part written to the last, i.e. without
    interpreter start-up, model loading and, for Ray, starting the cluster and its actors), with the peak memory
    of all the job's processes, at two dataset sizes;
(c) a naive loop: one image at a time read, preprocessed, predicted, rows collected and written at the end.

Reports (b)/(a) and (b)/(c), the Ray engine's scaling from 1 to 2 actors, and a cProfile of the local engine.
Writes benchmarks/results/catalog_throughput.json and .md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402

from _common import md_table, write_results  # noqa: E402


def make_dataset(path: Path, n: int, size: int, shard: int, seed: int = 0):
    """Noise + one elliptical blob per image (class by blob shape); written shard by shard."""
    from labelsky.data.io import DatasetWriter, open_dataset

    if (path / "dataset.json").exists():
        return open_dataset(path)
    rng = np.random.default_rng(seed)
    n_shards = (n + shard - 1) // shard
    w = DatasetWriter(path, "decals", (3, size, size), classes=["round", "elongated"], n_shards=n_shards)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    for s in range(n_shards):
        m = min(shard, n - s * shard)
        lab = rng.integers(0, 2, m)
        q = np.where(lab == 1, 0.3, 1.0)[:, None, None]
        blob = np.exp(-0.5 * ((xx[None] / 4) ** 2 + (yy[None] / (4 * q)) ** 2))
        imgs = rng.normal(0, 0.01, (m, 3, size, size)) + 0.5 * blob[:, None]
        ids = s * shard + np.arange(m)
        w.write_shard(s, imgs.astype(np.float32), {
            "id_str": [f"b{i:07d}" for i in ids], "ra": rng.uniform(0, 360, m), "dec": rng.uniform(-60, 30, m),
            "survey": ["decals"] * m, "split": np.where(ids % 10 == 0, "val", "train"), "label": lab,
            "label_name": np.array(["round", "elongated"])[lab], "votes_smooth": np.full(m, -1),
            "votes_featured": np.full(m, -1), "votes_artifact": np.full(m, -1), "richness": np.full(m, np.nan)})
    return w.finalize()


def train_run(run: Path, ds, backbone: str, device: str = "cpu"):
    from labelsky.methods.parts import Part
    from labelsky.methods.transfer import TransferConfig, fit

    if (run / "checkpoints" / "best.ckpt").exists():
        return
    split = ds.column("split")
    tr, va = np.flatnonzero(split == "train")[:512], np.flatnonzero(split == "val")[:128]
    cfg = TransferConfig(backbone=backbone, max_epochs=1, batch_size=64, device=device)
    fit(run, {"train": [Part(ds, tr)], "val": [Part(ds, va)]}, cfg, progress=False)


def forward_rate(run: Path, batch: int, size: int, seconds: float = 20.0, channels_last: bool = True,
                 device: str = "cpu") -> float:
    """Images/s of the model alone on one batch already on the device (repeated), as the catalog calls it
    (outputs copied back to the host, which also waits for a GPU to finish)."""
    import torch

    from labelsky.methods.predict import Predictor

    pred = Predictor(run, device=device, channels_last=channels_last)
    x = torch.randn(batch, 3, size, size, device=device)
    for _ in range(3):
        pred(x)  # warm-up (cuDNN picks its kernels)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pred(x)
        n += batch
    return n / (time.perf_counter() - t0)


class TreeMemory:
    """Peak resident memory of a process and all its descendants (and, for Ray, the cluster's processes)."""

    def __init__(self, pid: int, include_ray: bool):
        self.pid, self.include_ray, self.peak = pid, include_ray, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _procs():
        out = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                    with open(f"/proc/{d}/cmdline", "rb") as f:
                        cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
                    with open(f"/proc/{d}/statm") as f:
                        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
                    out[int(d)] = (ppid, cmd, rss)
                except (OSError, IndexError, ValueError):
                    pass
        return out

    def _sample(self) -> int:
        procs = self._procs()
        tree, frontier = {self.pid}, [self.pid]
        while frontier:
            p = frontier.pop()
            kids = [c for c, (pp, _, _) in procs.items() if pp == p and c not in tree]
            tree.update(kids)
            frontier += kids
        if self.include_ray:
            tree.update(c for c, (_, cmd, _) in procs.items() if "ray" in cmd and ("ray::" in cmd or "raylet" in cmd
                                                                                   or "gcs_server" in cmd
                                                                                   or "default_worker" in cmd))
        return sum(procs[p][2] for p in tree if p in procs)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(0.2)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def catalog_job(run: Path, data: Path, out: Path, engine: str, batch: int, workers: int | None = None,
                device: str = "cpu") -> dict:
    """`labelsky catalog` in a child process; wall time, steady-state rate from the parts' times, peak memory."""
    import shutil

    import pyarrow.parquet as pq

    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "labelsky", "catalog", "--run", str(run), "--data", str(data), "--out", str(out),
           "--batch-size", str(batch), "--engine", engine, "--device", device]
    if engine == "ray":
        cmd += ["--ray-workers", str(workers), "--cpus-per-worker", str(max(1, (os.cpu_count() or 2) // workers))]
        if device != "cpu":
            cmd += ["--gpus-per-worker", str(1 / workers)]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    with TreeMemory(proc.pid, include_ray=engine == "ray") as mem:
        _, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err.decode()[-3000:]}")
    parts = sorted(out.glob("part-*.parquet"), key=lambda p: p.stat().st_mtime)
    rows = [pq.ParquetFile(p).metadata.num_rows for p in parts]
    times = [p.stat().st_mtime for p in parts]
    steady = (sum(rows) - rows[0]) / max(times[-1] - times[0], 1e-9) if len(parts) > 1 else float("nan")
    return {"engine": engine, "workers": workers, "rows": int(sum(rows)), "wall_s": round(wall, 2),
            "rate_total": sum(rows) / wall, "rate_steady": steady, "peak_rss_mb": round(mem.peak / 2 ** 20, 1)}


def naive_rate(run: Path, data: Path, n: int, device: str = "cpu") -> float:
    """One image at a time: read, preprocess, forward, collect; Parquet written at the end."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from labelsky.data.io import open_dataset
    from labelsky.methods.run import load_run

    ds = open_dataset(data)
    model = load_run(run).eval().to(device)
    pre = model.preprocess(ds)
    rows = []
    t0 = time.perf_counter()
    for i in range(n):
        x = pre(ds.image(i))[None].to(device)
        with torch.no_grad():
            p = model.predict_step(x, 0)["probs"][0].cpu().numpy()
        rows.append({"id_str": str(ds.column("id_str")[i]), **{f"p_{c}": float(v) for c, v in zip(ds.classes, p)}})
    pq.write_table(pa.Table.from_pylist(rows), data.parent / "naive.parquet")
    return n / (time.perf_counter() - t0)


def profile_local(run: Path, data: Path, out: Path, batch: int, top: int = 14, device: str = "cpu") -> str:
    import shutil

    from labelsky.catalog.writer import write_catalog
    from labelsky.data.io import open_dataset
    from labelsky.methods.predict import Predictor

    shutil.rmtree(out, ignore_errors=True)
    ds = open_dataset(data)
    pred = Predictor(run, device=device, channels_last=True)
    prof = cProfile.Profile()
    prof.enable()
    write_catalog(ds, out, pred, batch_size=batch, progress=False)
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(top)
    return s.getvalue()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs=2, default=[4096, 16384], help="two dataset sizes (memory)")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--shard-size", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--naive-n", type=int, default=1000)
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/labelsky_bench/catalog"))
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...: the model's device in every measurement")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads of this process")
    ap.add_argument("--goal", type=float, default=None,
                    help="images/s the local engine's steady rate should reach (e.g. 20000 for ResNet-18 at 64 px "
                         "on one H100); recorded with whether it was met, and the goal of >= 0.8 of the forward rate")
    ap.add_argument("--name", default=None, help="result name (default catalog_throughput[_quick])")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check the script (results *_quick)")
    a = ap.parse_args(argv)
    if a.quick:
        a.sizes, a.shard_size, a.naive_n, a.image_size = [256, 512], 128, 50, 32
        a.work_dir = a.work_dir.with_name(a.work_dir.name + "_quick")
    import torch

    torch.set_num_threads(a.threads)
    work = a.work_dir
    work.mkdir(parents=True, exist_ok=True)
    small, big = (make_dataset(work / f"ds{n}", n, a.image_size, a.shard_size) for n in a.sizes)
    run = work / "run"
    train_run(run, small, a.backbone, a.device)

    res = {"config": vars(a) | {"work_dir": str(a.work_dir)}}
    dev = a.device
    res["forward_rate"] = forward_rate(run, a.batch_size, a.image_size, device=dev)
    res["forward_rate_contiguous"] = forward_rate(run, a.batch_size, a.image_size, seconds=10, channels_last=False,
                                                  device=dev)
    res["naive_rate"] = naive_rate(run, small.path, a.naive_n, dev)
    jobs = []
    for ds in (small, big):
        jobs.append(catalog_job(run, ds.path, work / f"cat_local_{len(ds)}", "local", a.batch_size, device=dev))
    for w in (1, 2):
        jobs.append(catalog_job(run, big.path, work / f"cat_ray{w}_{len(big)}", "ray", a.batch_size, w, dev))
    jobs.append(catalog_job(run, small.path, work / f"cat_ray2_{len(small)}", "ray", a.batch_size, 2, dev))
    res["jobs"] = jobs
    res["profile_local"] = profile_local(run, big.path, work / "cat_profile", a.batch_size, device=dev)
    fwd = res["forward_rate"]
    for j in jobs:
        j["steady_over_forward"] = j["rate_steady"] / fwd
        j["total_over_forward"] = j["rate_total"] / fwd
        j["steady_over_naive"] = j["rate_steady"] / res["naive_rate"]
    ray = {j["workers"]: j for j in jobs if j["engine"] == "ray" and j["rows"] == len(big)}
    res["ray_scaling_1_to_2"] = ray[2]["rate_steady"] / ray[1]["rate_steady"]
    local_big = next(j for j in jobs if j["engine"] == "local" and j["rows"] == len(big))
    res["goal"] = {"images_per_s": a.goal, "local_steady_rate": local_big["rate_steady"],
                   "met_rate": None if a.goal is None else bool(local_big["rate_steady"] >= a.goal),
                   "over_forward": local_big["steady_over_forward"],
                   "met_over_forward_0.8": bool(local_big["steady_over_forward"] >= 0.8)}

    rows = [[j["engine"] + (f" ({j['workers']} actor{'s' if j['workers'] > 1 else ''})" if j["workers"] else ""),
             j["rows"], f"{j['wall_s']:.1f}", f"{j['rate_total']:.0f}", f"{j['rate_steady']:.0f}",
             f"{j['steady_over_forward']:.2f}", f"{j['steady_over_naive']:.1f}", f"{j['peak_rss_mb']:.0f}"]
            for j in jobs]
    g = res["goal"]
    md = [f"### `labelsky catalog` throughput: {a.backbone}, 3 x {a.image_size} px, batch {a.batch_size}, "
          f"shards of {a.shard_size}, device {a.device}\n",
          f"Goal: local engine steady rate {g['local_steady_rate']:.0f} images/s"
          + (f" against {g['images_per_s']:.0f} (met: {g['met_rate']})" if g["images_per_s"] else "")
          + f"; {g['over_forward']:.2f} of the forward rate against 0.8 (met: {g['met_over_forward_0.8']}).\n",
          f"(a) forward rate on an in-memory batch (inference mode, channels-last): **{fwd:.0f} images/s** "
          f"(contiguous memory format: {res['forward_rate_contiguous']:.0f}/s).  ",
          f"(c) naive per-image loop: **{res['naive_rate']:.0f} images/s** ({a.naive_n} images).\n",
          md_table(["engine", "rows", "wall (s)", "rate, whole job (/s)", "(b) rate, steady (/s)", "(b)/(a)",
                    "(b)/(c)", "peak RSS, all processes (MB)"], rows),
          "\nSteady state: from the first Parquet part written to the last (without interpreter start-up, model "
          "loading, and for Ray the cluster and actor start). Whole job: rows / wall time of the child process.",
          f"\nRay engine scaling from 1 to 2 actors (steady rate): x{res['ray_scaling_1_to_2']:.2f}.",
          "\nProfile of the local engine (cProfile, by own time; the model's compute is in torch's C++ "
          f"calls):\n\n```\n{res['profile_local'].strip()[:3500]}\n```"]
    write_results(a.name or ("catalog_throughput_quick" if a.quick else "catalog_throughput"), res, "\n".join(md))
    print(json.dumps({k: v for k, v in res.items() if k != "profile_local"}, indent=1, default=float))


if __name__ == "__main__":
    main()
