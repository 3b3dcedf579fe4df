"""The samples the papers drew, as simulator settings: ``labelsky simulate --sample NAME``.

A method can only show what its sample lets it see: a bar or a spiral arm
is invisible in a faint galaxy smaller than the PSF. Each entry below
follows the data section of one paper (``../shared/seeds/``) and gives the
settings of :class:`~labelsky.data.simulate.GalaxySimConfig` (or
:class:`~labelsky.data.simulate.clusters.ClusterSimConfig`) that select a
sample the same way: the magnitude limits, the framing of the cutouts and the
surveys. Settings a caller passes explicitly win over the sample's.

==================== ==========================================================================================
``khan2019``         SDSS main galaxy sample (Petrosian r < 17.77, Strauss et al. 2002), which Galaxy Zoo 1
                     classified (Lintott et al. 2011, Khan et al.'s ref. 17), observed by SDSS and DES;
                     the paper does not state its cutouts' size: each survey's own (native pixels)
``deepastrouda``     Ciprijanovic et al. 2023, sections 4.2.1 and 4.3: GZ2 SDSS r < 17.0 (source) and GZ DECaLS
                     r < 17.77 (target), the Galaxy Zoo images cropped to 256 x 256 around the galaxy:
                     Galaxy-Zoo framing, 12 half-light radii on a side (see :data:`GALAXY_ZOO_CROP_FOV`)
``etvae``            Nishikawa-Toomey et al.: "the brightest galaxies from SDSS" of Galaxy Zoo (GZ2, r < 17.0),
                     Galaxy-Zoo framing
``owg``              Liang et al.: SDSS redMaPPer clusters (Rykoff et al. 2014: lambda >= 20, the
                     volume-limited 0.08 < z < 0.33), images 1 Mpc (physical) on a side
==================== ==========================================================================================

The bright end (r = 14) stands for the SDSS spectroscopic targets' bright
limit (r > 14.5 after deblending; Strauss et al. 2002) with a little margin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PaperSample", "PAPER_SAMPLES", "GALAXY_ZOO_CROP_FOV", "get_sample", "sample_settings"]

#: Side, in half-light radii, of a 256 x 256 crop of a Galaxy Zoo image (Ciprijanovic et al. 2023, section
#: 4.3). GZ2 images are 424 pixels at 0.02 R90 per pixel (Willett et al. 2013), so 256 pixels span 5.1 R90,
#: 12-15 half-light radii for R90/R50 = 2.3 (exponential disc) to 3 (de Vaucouleurs); GZ DECaLS images are
#: 424 pixels at 0.04 R50 per pixel (Walmsley et al. 2022), 256 pixels = 10.2 R50. 12 lies between.
GALAXY_ZOO_CROP_FOV = 12.0


@dataclass(frozen=True)
class PaperSample:
    """One paper's selection: simulator settings and where each comes from."""

    name: str
    kind: str  # "galaxies" or "clusters"
    paper: str
    selection: str  # the paper's words (or the catalog's definition) behind the settings
    settings: dict = field(default_factory=dict)


PAPER_SAMPLES = {
    "khan2019": PaperSample(
        "khan2019", "galaxies", "Khan et al. 2019 (seed 000), section II.A",
        "Galaxy Zoo 1 debiased probabilities (Lintott et al. 2011) of the SDSS DR7 main galaxy sample, "
        "Petrosian r < 17.77; galaxies in both the SDSS and DES footprints",
        {"surveys": ["sdss", "des"], "mag_range": (14.0, 17.77), "cutout": "fixed"}),
    "deepastrouda": PaperSample(
        "deepastrouda", "galaxies", "Ciprijanovic et al. 2023 (seed 001), sections 4.2.1 and 4.3",
        "GZ2 SDSS: Petrosian r < 17.0; GZ DECaLS: r < 17.77; the Galaxy Zoo images (scaled to each galaxy's "
        "size) cropped to 256 x 256 pixels around the SExtractor centre, keeping the galaxy whole; two catalogs "
        "of their own (GZ2 21,784 and GZ DECaLS 19,840 images), so each galaxy is in one survey's sample with "
        "that survey's limit",
        {"surveys": ["sdss", "decals"], "mag_range": (14.0, 17.77), "mag_limits": {"sdss": 17.0, "decals": 17.77},
         "cutout": "scaled", "scaled_fov": GALAXY_ZOO_CROP_FOV, "overlap": 0.0}),
    "etvae": PaperSample(
        "etvae", "galaxies", "Nishikawa-Toomey, Smith & Gal (seed 002), section 3",
        "Galaxy Zoo: 'the brightest galaxies from the Sloan Digital Sky Survey' (GZ2: r < 17.0)",
        {"surveys": ["sdss"], "mag_range": (14.0, 17.0), "cutout": "scaled"}),
    "owg": PaperSample(
        "owg", "clusters", "Liang et al. (seed 003), section 3.1",
        "SDSS redMaPPer clusters (DR8 catalog: lambda >= 20; volume-limited to z = 0.33), 1 Mpc physical "
        "around each centre",
        {"surveys": ["sdss"], "lambda_range": (20.0, 150.0), "z_range": (0.08, 0.33), "field_mpc": 1.0}),
}


def get_sample(name: str) -> PaperSample:
    try:
        return PAPER_SAMPLES[name]
    except KeyError:
        from labelsky.data.simulate.runner import SimulationError

        raise SimulationError(f"unknown sample {name!r}; samples are {sorted(PAPER_SAMPLES)}") from None


def sample_settings(name: str, kind: str = "galaxies", **explicit) -> dict:
    """The sample's simulator settings with ``explicit`` ones (not None) on top."""
    sample = get_sample(name)
    if sample.kind != kind:
        from labelsky.data.simulate.runner import SimulationError

        raise SimulationError(f"sample {name!r} is a {sample.kind} sample; simulate it with --kind {sample.kind}")
    out = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
           for k, v in sample.settings.items()}
    given = {k: v for k, v in explicit.items() if v is not None}
    if given.get("field_of_view") and "cutout" not in given and "scaled_fov" not in given:  # fixed framing
        out["cutout"] = "fixed"
        out.pop("scaled_fov", None)
    out.update(given)
    return out
