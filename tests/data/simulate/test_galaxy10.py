"""Galaxy10-style labels from simulation truth."""

import numpy as np

from labelsky.data.simulate.galaxy10 import GALAXY10_CLASSES, dataset_galaxy10_labels, galaxy10_labels

nan = float("nan")


def test_hand_cases():
    rows = [  # class, q, pitch, bulge fraction, flux ratio -> label
        ("merger", 0.8, nan, 0.3, 3.0, 0), ("merger", 0.8, nan, 0.3, 1.5, 1),
        ("elliptical", 0.9, nan, nan, nan, 2), ("smooth_disk", 0.5, nan, 0.5, nan, 3),
        ("elliptical", 0.35, nan, nan, nan, 4), ("barred_spiral", 0.8, 25.0, 0.1, nan, 5),
        ("spiral", 0.8, 12.0, 0.1, nan, 6), ("spiral", 0.8, 30.0, 0.1, nan, 7),
        ("edge_on", 0.1, nan, 0.0, nan, 8), ("edge_on", 0.1, nan, 0.2, nan, 9),
        ("lens", 0.8, nan, nan, nan, -1), ("artifact", nan, nan, nan, nan, -1),
    ]
    cls, q, pitch, bulge, ratio, expected = (list(c) for c in zip(*rows))
    assert galaxy10_labels(cls, q, pitch, bulge, ratio).tolist() == expected
    assert len(GALAXY10_CLASSES) == 10


def test_every_class_from_a_simulation(tmp_path):
    from labelsky.data.simulate import simulate_galaxies

    ds = simulate_galaxies(tmp_path / "s", n_objects=160, surveys=["decals"], stamp_size=16, workers=2,
                           progress=False, noise=False, stars=False, field_galaxies=False)["decals"]
    lab = dataset_galaxy10_labels(ds)
    cls = ds.column("true_class")
    assert set(lab[np.isin(cls, ["lens", "artifact"])]) == {-1}
    assert (lab[~np.isin(cls, ["lens", "artifact"])] >= 0).all()
    assert len(set(lab[lab >= 0])) >= 8  # nearly every Galaxy10 class appears in 160 galaxies
