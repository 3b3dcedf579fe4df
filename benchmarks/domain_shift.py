"""Domain-shift sanity check of the galaxy simulator: train on SDSS, test on DES.

The same simulated galaxies (ellipticals vs spirals) are observed by SDSS and
DES (``overlap=1``: every galaxy in both). A small CNN is trained on the SDSS
train split and evaluated, without any adaptation, on

* the SDSS test split (held-out galaxies, same survey), and
* the DES test split (the *same* held-out galaxies, seen by DES).

A realistic simulator should make DES accuracy clearly lower than SDSS
accuracy (different pixel scale, PSF, depth, filters and field of view), but
well above chance.

Fixed protocol (decided before any result was seen):

* bands: the four the surveys share, g, r, i, z, selected by name;
* preprocessing (``--norm noise``, the default): each band divided by its own
  survey's sky-noise sigma ``survey.noise_sigma(band)`` (so pixels are in
  units of that survey's noise), then ``asinh``. ``--norm fixed`` instead
  uses ``asinh(x / s_b)`` with ``s_b`` the SDSS noise sigma of band b for
  *both* surveys (a fixed softening in nanomaggies);
* augmentation: random horizontal flips and random 90-degree rotations;
* model: 4 conv blocks (16-32-64-128 channels, BatchNorm, ReLU, max-pool),
  global average pooling, dropout 0.2, linear (about 100k parameters);
* training: AdamW (lr 2e-3, weight decay 1e-4), cosine schedule, batch 64,
  ``--epochs`` epochs, cross-entropy; the model after the last epoch is the
  one evaluated (no early stopping, no use of DES data at any point);
* repeated for ``--seeds`` (model init and batch order); the simulation is
  the same for every seed.

Run ``python benchmarks/domain_shift.py`` (full) or ``--quick`` (smoke test).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CpuMonitor, md_table, wait_for_idle, write_results  # noqa: E402

BANDS = ("g", "r", "i", "z")
CLASSES = {"elliptical": 1, "spiral": 1}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny smoke run (120 objects, 2 epochs, 2 seeds)")
    p.add_argument("--n-objects", type=int, default=3000)
    p.add_argument("--stamp-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--sim-seed", type=int, default=0, help="seed of the simulation")
    p.add_argument("--workers", type=int, default=2, help="simulation worker processes")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--norm", choices=("noise", "fixed"), default="noise",
                   help="preprocessing: 'noise' = asinh(x / own survey noise sigma) (default); "
                        "'fixed' = asinh(x / SDSS noise sigma) for both surveys")
    p.add_argument("--include-barred", action="store_true",
                   help="also simulate barred_spiral and count it as spiral (default: off)")
    p.add_argument("--work-dir", default="/tmp/labelsky_bench/domain_shift",
                   help="where the simulation is written")
    p.add_argument("--reuse-sim", action="store_true",
                   help="reuse a finished simulation in --work-dir made with the same settings "
                        "(its time is then not part of the run)")
    p.add_argument("--max-wait-idle", type=float, default=180.0,
                   help="before starting, wait up to this many seconds for other programs to leave the CPUs "
                        "(not counted in the run time; contention is measured and recorded either way)")
    p.add_argument("--name", default=None, help="result file stem (default domain_shift, or domain_shift_quick)")
    args = p.parse_args(argv)
    if args.quick:
        args.n_objects, args.epochs, args.seeds = 120, 2, [0, 1]
        if args.work_dir == p.get_default("work_dir"):
            args.work_dir += "_quick"
    if args.name is None:
        args.name = "domain_shift_quick" if args.quick else "domain_shift"
    return args


# --------------------------------------------------------------------------- data
def simulate(args) -> tuple[dict, float, bool]:
    from labelsky.data.simulate.stamps import open_simulation, simulate_galaxies

    classes = dict(CLASSES)
    if args.include_barred:
        classes["barred_spiral"] = 0.5
        classes["spiral"] = 0.5
    kw = dict(n_objects=args.n_objects, surveys=["sdss", "des"], classes=classes, overlap=1.0,
              stamp_size=args.stamp_size, seed=args.sim_seed, shard_size=64)
    out = Path(args.work_dir)
    if args.reuse_sim and (out / "simulation.json").exists():
        meta = json.loads((out / "simulation.json").read_text())
        cfg = meta.get("config", {})
        same = meta.get("complete") and all(cfg.get(k) == (list(v) if isinstance(v, tuple) else v)
                                            for k, v in kw.items())
        if same:
            return open_simulation(out), 0.0, True
        print(f"{out}: existing simulation has other settings; simulating again", file=sys.stderr)
    t0 = time.perf_counter()
    ds = simulate_galaxies(out, workers=args.workers, overwrite=True, progress=True, **kw)
    return ds, time.perf_counter() - t0, False


def load_arrays(ds, norm: str) -> dict:
    """Images of the shared bands, preprocessed; labels (spiral classes -> 1), splits, ids."""
    from labelsky.data.surveys import get_survey

    sdss = get_survey("sdss")
    idx = [ds.bands.index(b) for b in BANDS]  # select by band name
    x = ds.images()[:, idx].astype(np.float64)
    scale = ds.column("pixel_scale")
    for j, b in enumerate(BANDS):
        if norm == "noise":
            sig = np.array([ds.survey.noise_sigma(b, s) for s in scale])
        else:
            sig = np.full(len(x), sdss.noise_sigma(b))
        x[:, j] /= sig[:, None, None]
    x = np.arcsinh(x).astype(np.float32)
    names = ds.column("label_name")
    y = np.array([0 if n == "elliptical" else 1 for n in names], dtype=np.int64)
    return {"x": x, "y": y, "split": ds.column("split"), "id": ds.column("id_str"),
            "sigma": {b: (ds.survey.noise_sigma(b) if norm == "noise" else sdss.noise_sigma(b)) for b in BANDS}}


# --------------------------------------------------------------------------- model
def make_model(n_in: int, n_out: int = 2):
    import torch.nn as nn

    def block(ci, co, pool=True):
        layers = [nn.Conv2d(ci, co, 3, padding=1, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        return layers

    return nn.Sequential(*block(n_in, 16), *block(16, 32), *block(32, 64), *block(64, 128, pool=False),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(128, n_out))


def augment(xb, gen):
    import torch

    n = xb.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
    k = torch.randint(0, 4, (n,), generator=gen)
    out = xb.clone()
    for r in (1, 2, 3):
        sel = k == r
        if sel.any():
            out[sel] = torch.rot90(xb[sel], r, dims=(-2, -1))
    return out


def predict(model, x, batch=256):
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(torch.from_numpy(x[i:i + batch])).argmax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def train_one(seed, xtr, ytr, args):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = make_model(xtr.shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = args.epochs * math.ceil(len(xtr) / args.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    losses = []
    for ep in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        tot, nb = 0.0, 0
        for i in range(0, len(xt), args.batch_size):
            b = perm[i:i + args.batch_size]
            if len(b) < 2:  # BatchNorm needs two samples
                continue
            loss = F.cross_entropy(model(augment(xt[b], gen)), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item()
            nb += 1
        losses.append(tot / max(nb, 1))
        print(f"  seed {seed} epoch {ep + 1}/{args.epochs} loss {losses[-1]:.4f}", file=sys.stderr, flush=True)
    return model, losses


def per_class_recall(y, p):
    return {name: (float((p[y == c] == c).mean()) if (y == c).any() else float("nan"))
            for c, name in enumerate(("elliptical", "spiral"))}


def main(argv=None):
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    idle = wait_for_idle(args.max_wait_idle)
    t_start = time.perf_counter()
    with CpuMonitor() as mon_sim:
        ds, t_sim, reused = simulate(args)
    t1 = time.perf_counter()
    sd, de = load_arrays(ds["sdss"], args.norm), load_arrays(ds["des"], args.norm)
    t_load = time.perf_counter() - t1

    tr = sd["split"] == "train"
    va = sd["split"] == "val"
    te_s = sd["split"] == "test"
    test_ids = set(sd["id"][te_s])
    te_d = np.array([i in test_ids for i in de["id"]])
    # same galaxies: the split is drawn per object, so DES' test split must be SDSS' test split
    if set(de["id"][de["split"] == "test"]) != test_ids:
        raise RuntimeError("DES and SDSS test splits hold different objects")
    order_s = np.argsort(sd["id"][te_s])
    order_d = np.argsort(de["id"][te_d])
    if not (np.array_equal(sd["id"][te_s][order_s], de["id"][te_d][order_d])
            and np.array_equal(sd["y"][te_s][order_s], de["y"][te_d][order_d])):
        raise RuntimeError("DES and SDSS test objects/labels differ")

    per_seed = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        with CpuMonitor() as mon:
            model, losses = train_one(seed, sd["x"][tr], sd["y"][tr], args)
        t_train = time.perf_counter() - t0
        p_s, p_v, p_d = predict(model, sd["x"][te_s]), predict(model, sd["x"][va]), predict(model, de["x"][te_d])
        # paired comparison: the same galaxies
        both = p_s[order_s] == sd["y"][te_s][order_s]
        both_d = p_d[order_d] == de["y"][te_d][order_d]
        r = {
            "seed": seed,
            "sdss_test_acc": float((p_s == sd["y"][te_s]).mean()),
            "des_test_acc": float((p_d == de["y"][te_d]).mean()),
            "sdss_val_acc": float((p_v == sd["y"][va]).mean()) if va.any() else float("nan"),
            "sdss_test_recall": per_class_recall(sd["y"][te_s], p_s),
            "des_test_recall": per_class_recall(de["y"][te_d], p_d),
            "des_pred_spiral_frac": float((p_d == 1).mean()),
            "n_right_sdss_wrong_des": int((both & ~both_d).sum()),
            "n_wrong_sdss_right_des": int((~both & both_d).sum()),
            "final_train_loss": losses[-1],
            "train_time_s": t_train,
            "train_other_processes_cpu_frac": mon.as_dict()["other_processes_cpu_frac"],
        }
        r["drop"] = r["sdss_test_acc"] - r["des_test_acc"]
        per_seed.append(r)
        print(f"seed {seed}: SDSS test {r['sdss_test_acc']:.3f}  DES test {r['des_test_acc']:.3f}  "
              f"({t_train:.0f} s)", file=sys.stderr, flush=True)

    def ms(key):
        v = np.array([r[key] for r in per_seed], float)
        return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else float("nan")}

    n_params = sum(p.numel() for p in make_model(len(BANDS)).parameters())
    total = time.perf_counter() - t_start
    metrics = {
        "sdss_test_acc": ms("sdss_test_acc"),
        "des_test_acc": ms("des_test_acc"),
        "drop": ms("drop"),
        "sdss_val_acc": ms("sdss_val_acc"),
        "chance_acc": float(max(np.mean(sd["y"][te_s]), 1 - np.mean(sd["y"][te_s]))),
        "per_seed": per_seed,
        "n_train": int(tr.sum()), "n_val": int(va.sum()), "n_test": int(te_s.sum()),
        "n_test_spiral": int(sd["y"][te_s].sum()),
        "setup": {
            "n_objects": args.n_objects, "stamp_size": args.stamp_size, "surveys": ["sdss", "des"], "overlap": 1.0,
            "classes": {"elliptical": 0, "spiral": 1, "barred_spiral": 1} if args.include_barred
            else {"elliptical": 0, "spiral": 1},
            "sim_seed": args.sim_seed, "bands": list(BANDS), "norm": args.norm,
            "preprocessing": ("asinh(x / noise_sigma_b of the image's own survey)" if args.norm == "noise"
                              else "asinh(x / noise_sigma_b of SDSS) for both surveys"),
            "softening_nmgy": {"sdss": sd["sigma"], "des": de["sigma"]},
            "augmentation": "random horizontal flip + random 90-degree rotation",
            "model": "4 conv blocks 16-32-64-128 (BN, ReLU, maxpool), GAP, dropout 0.2, linear",
            "n_params": int(n_params), "optimizer": "AdamW lr 2e-3 wd 1e-4, cosine", "epochs": args.epochs,
            "batch_size": args.batch_size, "seeds": list(args.seeds), "torch_threads": args.threads,
            "sim_workers": args.workers, "model_selection": "last epoch (no early stopping)",
        },
        "time_s": {"simulation": t_sim, "simulation_reused": reused, "load_preprocess": t_load,
                   "train_eval_total": total - t_sim - t_load, "total": total,
                   "waited_for_idle_before_start": idle["waited_s"], "cpu_busy_before_start": idle["busy_before"],
                   "simulation_cpu": mon_sim.as_dict(),
                   "max_other_processes_cpu_frac": max([mon_sim.as_dict()["other_processes_cpu_frac"]]
                                                       + [r["train_other_processes_cpu_frac"] for r in per_seed])},
    }
    f3 = lambda d: f"{d['mean']:.3f} ± {d['std']:.3f}"  # noqa: E731
    rows = [[r["seed"], f"{r['sdss_test_acc']:.3f}", f"{r['des_test_acc']:.3f}", f"{r['drop']:+.3f}",
             f"{r['train_time_s']:.0f}"] for r in per_seed]
    rows.append(["mean ± std", f3(metrics["sdss_test_acc"]), f3(metrics["des_test_acc"]), f3(metrics["drop"]), ""])
    md = (f"### Domain shift: train on SDSS, test on DES (no adaptation)\n\n"
          f"{args.n_objects} simulated galaxies ({' vs '.join(metrics['setup']['classes'])}), "
          f"{args.stamp_size}x{args.stamp_size}, bands {','.join(BANDS)}, preprocessing "
          f"{metrics['setup']['preprocessing']}; CNN with {n_params} parameters, {args.epochs} epochs; "
          f"train/val/test = {metrics['n_train']}/{metrics['n_val']}/{metrics['n_test']} "
          f"(test: {metrics['n_test_spiral']} spirals; majority-class accuracy {metrics['chance_acc']:.3f}).\n\n"
          + md_table(["seed", "SDSS test acc", "DES test acc (same galaxies)", "drop", "train s"], rows)
          + f"\n\nTime: simulation {t_sim:.0f} s{' (reused)' if reused else ''}, load {t_load:.0f} s, "
            f"training + evaluation {metrics['time_s']['train_eval_total']:.0f} s, total {total:.0f} s "
            f"({total / 60:.1f} min); other programs took up to "
            f"{metrics['time_s']['max_other_processes_cpu_frac']:.0%} of the CPUs during a timed phase.\n")
    j, m = write_results(args.name, metrics, md)
    print(md)
    print(f"wrote {j} and {m}", file=sys.stderr)


if __name__ == "__main__":
    main()
