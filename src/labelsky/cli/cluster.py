"""``labelsky cluster``: embed, map and cluster a run's penultimate features of a dataset."""

from __future__ import annotations

from pathlib import Path

from labelsky.cli.options import add_device, add_out, add_overwrite, add_seed, positive_float, positive_int


def add_cluster(sub):
    p = sub.add_parser("cluster", help="t-SNE (or UMAP) map and clusters of a run's embeddings of a dataset")
    p.add_argument("--run", required=True, type=Path, help="run folder of any method (clusters are named by its "
                   "classes when it predicts some)")
    p.add_argument("--data", required=True, type=Path, help="dataset, labelled or not")
    p.add_argument("--split", nargs="+", default=None, help="only rows of these splits (default: every row)")
    add_out(p, "output folder: clusters.parquet, summary.json, tsne.png (umap.png with --embed umap)")
    p.add_argument("--embed", choices=["tsne", "umap"], default="tsne",
                   help="map: tsne (openTSNE, default) or umap (needs umap-learn)")
    p.add_argument("--dim", type=int, choices=[2, 3], default=2, help="dimensions of the map (default 2)")
    p.add_argument("--perplexity", type=positive_float, default=30.0, help="t-SNE perplexity (default 30)")
    p.add_argument("--algorithm", choices=["kmeans", "hdbscan"], default="kmeans",
                   help="kmeans (default) or hdbscan (scikit-learn; noise points get cluster -1)")
    p.add_argument("--k", type=positive_int, default=None,
                   help="kmeans: number of clusters (default: the run's classes, else the dataset's, else 2)")
    p.add_argument("--min-cluster-size", type=positive_int, default=None,
                   help="hdbscan: smallest cluster (default: max(5, 1%% of the rows))")
    add_seed(p)
    add_device(p, workers=False)
    add_overwrite(p)
    p.set_defaults(func=cmd_cluster)


def cmd_cluster(a) -> int:
    from labelsky.data.io import open_dataset
    from labelsky.evaluate.clusters import NAMING, cluster_run

    ds = open_dataset(a.data)
    s = cluster_run(a.run, ds, a.out, split=a.split, embed=a.embed, dim=a.dim, perplexity=a.perplexity,
                    algorithm=a.algorithm, k=a.k, min_cluster_size=a.min_cluster_size, seed=a.seed,
                    device=a.device, overwrite=a.overwrite)
    sizes = ", ".join(f"{c} ({s['cluster_classes'][c]}): {n}" for c, n in s["sizes"].items())
    print(f"{s['n']} rows, {s['clusters']} cluster(s): {sizes}" + (f"; noise: {s['n_noise']}" if s["n_noise"]
                                                                      else ""))
    print(f"cluster names: {s['naming']} ({NAMING[s['naming']]})")
    for c, counts in s["cluster_predictions"].items():
        if not counts:  # a run without classes: nothing to compare the clusters with
            continue
        top = max(counts, key=counts.get)
        if top != s["cluster_classes"][c]:
            print(f"  cluster {c} is named {s['cluster_classes'][c]!r}, yet the classifier predicts {top!r} for "
                  f"{counts[top]} of its {s['sizes'][c]} galaxies")
    if s["cluster_purity"] is None:
        print(f"{s['note']}")
    else:
        print(f"{s['n_labelled']} labelled rows: purity {s['cluster_purity']:.4f}"
              + (f", cluster-label accuracy {s['cluster_label_accuracy']:.4f}"
                 if s["cluster_label_accuracy"] is not None else ""))
    print(f"-> {a.out / 'clusters.parquet'}, {a.out / 'summary.json'}, {a.out / s['figure']}")
    return 0
