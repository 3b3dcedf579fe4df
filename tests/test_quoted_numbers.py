"""Numbers the README and docs quote are the numbers in their benchmark result files: each quote below is
formatted from its file and must appear, character for character, where it is quoted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _metrics(name: str) -> dict:
    return json.loads((ROOT / "benchmarks" / "results" / f"{name}.json").read_text())["metrics"]


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _acc_se(cell: dict, n: int) -> str:
    p = cell["closed_set_accuracy"]["mean"]
    return f"{p:.3f} ± {(p * (1 - p) / n) ** 0.5:.3f}"


def _signed(x: float) -> str:
    return f"{x:+.2f}".replace("-", "−")


def demo_quotes():
    m = _metrics("demo")
    t = m["table_ii"]
    return [f"{m['wall_s'] / 60:.1f} min", _pct(t["FO DES"]["accuracy"]), _pct(t["FO SDSS"]["accuracy"]),
            _pct(t["HP DES"]["accuracy"]), _pct(m["fo_des_by_round"][-1])]


def samples_quotes():
    out = []
    for when in ("before", "after"):
        e = _metrics("samples")["source_only"][when]
        cell = e["results"]["methods"]["source_only"]["summary"]
        out += [_acc_se(cell["source_test"], e["test_sets"]["source"]["n"]),
                _acc_se(cell["target_test"], e["test_sets"]["target"]["n"])]
    return out


def sim_to_real_quotes():
    r = _metrics("sim_to_real")["results"]["gz"]
    return [f"{_signed(r[s]['spearman_smooth']['rho'])} (p = {r[s]['spearman_smooth']['p_value']:.2f})"
            for s in ("like", "default")] + [f"{r['like']['gap_after']:.3f}"]


def owg_quotes():
    m = _metrics("owg")
    paired = m["paired"]["finetune"]
    later = ("0.1", "0.2", "0.4", "0.7", "1.0")
    z = [paired[f]["mae"]["mean"] / paired[f]["mae"]["sem"] for f in later]
    diff = [paired[f]["mae"]["mean"] for f in later]
    s = m["richness_summary"]
    return [f"{max(z):.1f} to {min(z):.1f} standard errors".replace("-", "−"),
            f"{max(diff):.3f} to {min(diff):.3f}".replace("-", "−"),
            f"{s['base']['1.0']['mae']['mean']:.3f} against the mean's "
            f"{m['reference']['by_fraction']['constant']['1.0']['mae']['mean']:.3f}",
            f"{m['reference']['statistics']['mae']['mean']:.3f}", f"{m['pretext']['cnn_test_accuracy']:.3f}"]


def pretext_init_quotes():
    s = _metrics("pretext_init")["summary"]
    return [f"{s[k]['accuracy_mean']:.3f} ± {s[k]['accuracy_std']:.3f}" for k in ("pretext", "random")] + [
        f"{s[k]['accuracy_mean']:.3f}" for k in ("pretext, progressive", "random file, progressive")]


def uda_lsst_quotes():
    summary = _metrics("deepastrouda_lsst")["lsst-y1-y10"]["summary"]
    out = []
    for variant in ("source_only", "deepastrouda", "deepastrouda_ordered", "deepastrouda_no_ac",
                    "deepastrouda_no_source_pairs"):
        t = summary[variant]["target_test"]["accuracy"]
        out.append(f"{t['mean']:.3f} ± {t['std']:.3f}")
    a = summary["deepastrouda"]["target_test"]["auroc"]
    return out + [f"{a['mean']:.3f} ± {a['std']:.3f}"]


def uda_ablation_quotes():
    summary = _metrics("deepastrouda_lsst_ablations")["lsst-y1-y10"]["summary"]
    out = []
    for variant in ("dance", "dance_dsbn", "deepastrouda_no_es", "deepastrouda_no_dsbn", "deepastrouda_no_cross"):
        t = summary[variant]["target_test"]["accuracy"]
        out.append(f"{t['mean']:.3f} ± {t['std']:.3f}")
    return out + [f"{summary['deepastrouda_features']['target_test']['accuracy']['mean']:.3f}",
                  f"{summary['deepastrouda_no_es']['target_test']['auroc']['mean']:.3f}",
                  f"{summary['dance_dsbn']['target_test']['unknown_accuracy']['mean']:.3f}"]


def _target_accuracies(name: str, variants) -> list[str]:
    summary = _metrics(name)["sdss-decals"]["summary"]
    return [f"{summary[v]['target_test']['accuracy']['mean']:.3f} ± {summary[v]['target_test']['accuracy']['std']:.3f}"
            for v in variants]


def uda_sdss_quotes():
    return _target_accuracies("deepastrouda_sdss_decals",
                              ("source_only", "deepastrouda", "deepastrouda_ordered", "deepastrouda_no_ac"))


def uda_sdss_ablation_quotes():
    return _target_accuracies("deepastrouda_sdss_decals_ablations",
                              ("deepastrouda", "dance", "dance_dsbn", "deepastrouda_no_es", "deepastrouda_no_dsbn"))


def etvae_quotes():
    m = _metrics("etvae")
    s = m["summary"]
    out = [f"{s[k][n]['mean']:.3f} ± {s[k][n]['std']:.3f}" for k in s for n in ("100", "300", "800", "1200")]
    return out + [f"{m['claims']['semi_minus_supervised'][n]:+.3f}".replace("-", "−") for n in ("100", "300")]


def vote_tree_quotes():
    m = _metrics("vote_tree")

    def f(c):
        return f"{c['mean']:.4f} ± {c['std']:.4f}"

    out = [f(m["summary"][arm][n]) for arm in ("first", "decals-dr5") for n in ("300", "1000")]
    return out + [f(m["tree_minus_first"][n]) for n in ("300", "1000")] + [
        f(m["mean_predictor_questions"]["300"]["smooth-or-featured"])]


def pretext_statistics_quotes():
    m = _metrics("pretext_statistics")
    return [f"{m['stats_accuracy'][s]:.3f}" for s in ("khan", "robust_asinh", "standardize", "equalize")] + [
        f"{m['cnn']['test_accuracy']:.3f}"]


def khan_none_quotes():
    s = _metrics("khan2019_pretrain_none")["pretraining"]["none"]["summary"]
    fo = s["round0/FO DES/accuracy"]
    return [f"{100 * fo['mean']:.1f} ± {100 * fo['std']:.1f} %",
            f"{100 * s['round0/FO DES/spiral_accuracy']['mean']:.2f} %"]


def khan_quotes():
    pre = _metrics("khan2019")["pretraining"]
    out = []
    for p, keys in (("selfsup", ("FO DES", "HP SDSS", "HP DES")), ("selfsup_equalize", ("FO DES",)),
                    ("labelled", ("FO DES",))):
        for k in keys:
            c = pre[p]["summary"][f"round0/{k}/accuracy"]
            out.append(f"{100 * c['mean']:.1f} ± {100 * c['std']:.1f} %")
    g = pre["selfsup"]["summary"]["recursion_gain_fo_des"]
    pt = pre["selfsup_equalize"]["per_seed"][0]["pretraining"]["pretext"]
    return out + [f"{100 * g['mean']:+.1f} ± {100 * g['std']:.1f}", f"{pt['test_accuracy']:.3f}"]


def throughput_quotes():
    c = _metrics("catalog_throughput")
    local = next(j for j in c["jobs"] if j["engine"] == "local" and j["rows"] == max(k["rows"] for k in c["jobs"]))
    ray = {j["workers"]: j for j in c["jobs"] if j["engine"] == "ray" and j["rows"] == local["rows"]}
    f = _metrics("import_fits")["runs"]
    st = _metrics("sim_throughput")
    return [f"writes {local['rate_steady']:.0f} images/s", f"{100 * local['steady_over_forward']:.0f} % of the model's",
            f"({c['forward_rate']:.0f}/s)", f"{local['steady_over_naive']:.1f}× a naive", f"({c['naive_rate']:.0f}/s)",
            f"{ray[1]['rate_steady']:.0f} / {ray[2]['rate_steady']:.0f} images/s",
            f"at {f[0]['objects_per_s']:.0f} objects/s", f"and {f[1]['objects_per_s']:.0f} objects/s",
            f"({f[0]['peak_rss_mb']:.0f} MB and {f[1]['peak_rss_mb']:.0f} MB",
            f"{st['labelsky_2_workers']['stamps_per_s']:.0f} stamps/s",
            f"{st['labelsky_1_worker']['stamps_per_s']:.0f} stamps/s on one",
            f"{st['naive_galsim_1_process']['stamps_per_s']:.0f} stamps/s for a naive"]


QUOTES = [
    ("README.md", throughput_quotes),
    ("README.md", khan_quotes),
    ("docs/transfer.md", khan_quotes),
    ("README.md", khan_none_quotes),
    ("docs/transfer.md", khan_none_quotes),
    ("docs/transfer.md", pretext_statistics_quotes),
    ("README.md", uda_sdss_quotes),
    ("docs/uda.md", uda_sdss_quotes),
    ("README.md", uda_sdss_ablation_quotes),
    ("docs/uda.md", uda_sdss_ablation_quotes),
    ("README.md", uda_lsst_quotes),
    ("README.md", uda_ablation_quotes),
    ("docs/uda.md", uda_ablation_quotes),
    ("docs/uda.md", uda_lsst_quotes),
    ("README.md", demo_quotes),
    ("docs/semisup.md", vote_tree_quotes),
    ("docs/semisup.md", etvae_quotes),
    ("README.md", samples_quotes),
    ("docs/samples.md", samples_quotes),
    ("README.md", sim_to_real_quotes),
    ("README.md", owg_quotes),
    ("docs/selfsup.md", owg_quotes),
    ("README.md", pretext_init_quotes),
    ("docs/selfsup.md", pretext_init_quotes),
]


@pytest.mark.parametrize("doc, quotes", QUOTES, ids=[f"{d}:{q.__name__}" for d, q in QUOTES])
def test_a_quoted_number_is_its_result_file_s(doc, quotes):
    text = " ".join((ROOT / doc).read_text().split())  # line breaks inside a quote do not matter
    missing = [q for q in quotes() if q not in text]
    assert not missing, f"{doc} does not quote these numbers of its result file: {missing}"
