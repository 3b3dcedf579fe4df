"""Galaxy-cluster fields with redMaPPer-like richness labels.

:func:`simulate_clusters` draws ``n_clusters`` clusters and images each one
(``views_per_cluster`` times, each view with its own centring offset and
noise) with every survey of the run: a square field of ``field_mpc``
physical Mpc around the cluster centre (1 Mpc, as the SDSS ugriz cutouts of
Liang et al., "Optical wavelength guided self-supervised feature learning for
galaxy cluster richness estimate", that regress the redMaPPer richness
``lambda``). The output
folder has the layout of :func:`~labelsky.data.simulate.stamps.simulate_galaxies`::

    OUT/simulation.json
    OUT/sdss/   (labelsky dataset: richness column = lambda_true)

Physics (every number is a module constant with its source):

* **Cosmology**: flat LambdaCDM, H0 = 70 km/s/Mpc, Omega_m = 0.3 (astropy
  ``FlatLambdaCDM``); ``h = 0.7`` wherever a quantity is quoted in
  ``h^-1`` units. Physical (not comoving) distances throughout, as redMaPPer.
* **Cluster population**: redshift drawn uniformly in comoving volume within
  ``z_range`` (constant comoving abundance, a fair description of massive
  haloes at z < 0.4); richness ``lambda_target`` from ``dN/dlambda ∝
  lambda^-2`` in ``lambda_range`` (``lambda_slope``). The real abundance is
  steeper (a halo mass function dn/dM ∝ M^-2...-3 with M ∝ lambda^1.33 gives
  lambda^-2.3...-3.7); the shallower law keeps enough rich clusters to learn
  from, as a training set selected to span the richness range would.
* **Members** are red-sequence galaxies (the population redMaPPer counts):
  the E template of Coleman, Wu & Weedman (via
  :func:`labelsky.data.photometry.galaxy_colour`) at the cluster redshift,
  plus a Gaussian scatter of ``RED_SEQUENCE_SCATTER`` = 0.05 mag on every
  adjacent colour (u-g, g-r, r-i, i-z, z-y), the intrinsic red-sequence width
  of redMaPPer's colour model (Rykoff et al. 2014, ApJ 785, 104). Colour
  offsets are anchored at the SDSS effective wavelengths and interpolated for
  other surveys' filters. (No colour-magnitude tilt and no blue members:
  redMaPPer counts red-sequence galaxies only.)
* **Radial profile**: projected NFW with ``r_s = 0.15 h^-1 Mpc`` (the redMaPPer
  radial filter, Rykoff et al. 2012, ApJ 746, 178), truncated at
  ``R200m`` of the halo of mass ``M200m = 10^14.34 (lambda/40)^1.33 h^-1 Msun``
  (Simet et al. 2017, MNRAS 466, 3103). Radii come from the inverse CDF of
  the projected (cylinder) NFW mass ``g(x) = ln(x/2) + arccosh(1/x)/sqrt(1-x^2)``
  (Bartelmann 1996), position angles uniformly.
* **Luminosities**: Schechter function with ``alpha = -1`` (the redMaPPer
  luminosity filter) from ``0.1 L*`` up, by inverse CDF
  (``N(>L) ∝ E1(L/L*)``). ``L*`` is ``M*_r = -21.4`` at z = 0.1 (h = 0.7):
  0.2 mag brighter than the field value of Blanton et al. 2003 (ApJ 592,
  819; M* - 5 log10 h = -20.44, i.e. -21.2), as cluster red-sequence
  luminosity functions have brighter M* than the field (e.g. Hansen et al.
  2009, ApJ 699, 1333); passive brightening ``Q = 1.62`` mag per unit
  redshift (Blanton et al. 2003). ``m*_r(z) = M*_r - Q (z - 0.1) + DM(z) +
  K_E(z)`` gives r = 17.0 at z = 0.1 and 20.1 at z = 0.35, where 0.2 L* has
  i = 21.2: near the limit to which the SDSS DR8 redMaPPer catalogue is
  volume-limited (z ~ 0.35, i ~ 21).
* **Central galaxy (BCG)** at the cluster centre:
  ``L = 3.2 L* (lambda/40)^0.35 x 10^N(0, 0.1)`` clipped to [2.5, 5] L*:
  L_BCG ∝ M^0.26 (Lin & Mohr 2004, ApJ 617, 879) with M ∝ lambda^1.33.
* **Sizes and shapes**: de Vaucouleurs profiles (Sersic n = 4, truncated at 8
  half-light radii as the field ellipticals of :mod:`scene`), half-light
  radius ``2.85 kpc (L/L*)^0.65 x 10^N(0, 0.1)`` (early types, Shen et al.
  2003, MNRAS 343, 978: log R50 = -0.26 M_r - 5.06), twice that for the BCG
  (BCGs lie above the early-type size-luminosity relation, Bernardi et al.
  2007, AJ 133, 1741); axis ratios uniform in [0.6, 1], random orientation.
* **Richness label** ``lambda_true`` (:func:`richness`): the number of
  members brighter than 0.2 L* within ``R_lambda = 1.0 h^-1 Mpc
  (lambda/100)^0.2`` (Rykoff et al. 2014), solved self-consistently by
  iteration from ``lambda_target`` (the count is monotone in lambda, so the
  iteration reaches a fixed point in a few steps). The membership is exact
  (p_mem = 1, no background subtraction), so the label is the noise-free
  richness of the simulated cluster; the number of bright members generated
  is Poisson with mean ``lambda_target - 1`` inside ``R_lambda(lambda_target)``
  plus the BCG, so ``E[lambda_true] ≈ lambda_target``. ``R_lambda`` is larger
  than the 1 Mpc field (as for the real SDSS cutouts): the image shows only
  the inner part of the members that define the label.
* **Foreground/background**: stars and field galaxies from
  :func:`labelsky.data.simulate.scene.sample_field` down to the survey's
  r-band depth + 0.5 (shared by every view of a cluster: same sky), sky
  residuals, sky and source noise for the pixel scale of the image.

Pixel scale: the image is drawn at ``max(native pixel, field_arcsec /
npix)``, so the 1 Mpc field fills ``npix`` pixels unless that would be finer
than the survey's pixels; the noise is the survey noise of pixels of that
size (:meth:`~labelsky.data.surveys.Survey.noise_sigma`).

Rendering: a field has tens to hundreds of objects (thousands for deep
surveys at low redshift), so they are not summed into one GalSim profile and
one FFT. Each object is drawn on its own small stamp and added into the
image (:class:`BandPainter`, :func:`draw_sources`):

* compact (half-light radius below 0.3 x max(PSF FWHM, pixel)) objects
  fainter than 100 pixel sigmas come from kernel banks: the unit-flux round
  profile (point, de Vaucouleurs or exponential on a log grid of sizes)
  convolved with the band PSF, drawn by GalSim on a grid finer than the
  pixels and binned at sub-pixel offsets of at most FWHM / 4, interpolated
  linearly in offset and log size, and added by one vectorised scatter-add;
* everything else (extended or bright) is drawn by GalSim on its own stamp on
  a fine grid (``K x K`` sub-pixels per image pixel, fine pixels no larger
  than the survey pixel or a third of the PSF FWHM) and binned; this
  integrates exactly over the image pixels and is 20-50x faster than letting
  GalSim draw onto pixels much coarser than the PSF. Stamps reach out to where
  the PSF wing of the object falls below 0.02 of the pixel noise.

Against one GalSim FFT of the whole scene the images agree to a few tenths
of the pixel noise at worst (kernel-bank interpolation), total fluxes to
0.1 %. One core draws a
128 x 128 SDSS ugriz field in about 0.3-0.8 s.

Catalog: one row per (cluster, view). ``ra``/``dec`` are the cluster centre
(the BCG); the image centre is offset from it by the view's centring offset:
the cluster centre lies at ``(true_center_dx_arcsec, true_center_dy_arcsec)``
from the image centre (x along columns, y along rows), each component
uniform within ``max_offset`` (default 10 %) of the field side.
``richness`` = ``lambda_true``; extra columns ``cluster_id``, ``view``,
``true_redshift``, ``true_lambda_target``, ``n_members`` (all members out to
R200m), ``n_members_in_image``, ``true_m_star_r``, ``true_bcg_mag_r``,
``true_r_lambda_mpc``, ``true_r_lambda_arcsec``, ``true_r200m_mpc``,
``pixel_scale``, ``field_arcsec``, ``field_mpc`` (the image side actually
drawn), ``true_center_offset_kpc``, ``n_neighbour_stars``,
``n_neighbour_galaxies``. Labels, label names and votes are empty (-1, "").
The split is drawn per cluster, so all views of a cluster share it.

Not modelled: saturation and bleed trails of bright stars, blue cluster
members, intracluster light, miscentred BCGs (the centre is the BCG),
projection effects (the label is the true member count).
"""

from labelsky.data.simulate.clusters.cosmology import (
    HUBBLE_H,
    LUM_CUT,
    LUM_MIN,
    MSTAR_R_Z01,
    Q_EVOLUTION,
    RED_SEQUENCE_SCATTER,
    RS_NFW_MPC_H,
    _sample_powerlaw,
    arcsec_per_mpc,
    m_star_r,
    r_lambda_mpc,
)
from labelsky.data.simulate.clusters.painter import BandPainter, Source, SourceSet, draw_sources
from labelsky.data.simulate.clusters.population import (
    ClusterMembers,
    MemberComponent,
    band_fluxes,
    member_components,
    richness,
    sample_members,
)
from labelsky.data.simulate.clusters.runner import (
    _STATE,
    ClusterSimConfig,
    cluster_truth,
    pixel_scale_for,
    render_cluster,
    simulate_clusters,
    source_pixels,
)

__all__ = [
    "ClusterSimConfig", "ClusterMembers", "MemberComponent", "simulate_clusters", "render_cluster",
    "sample_members", "richness", "r_lambda_mpc", "m_star_r", "arcsec_per_mpc", "draw_sources", "Source",
    "SourceSet", "BandPainter", "band_fluxes", "member_components", "cluster_truth", "pixel_scale_for",
    "source_pixels", "HUBBLE_H", "RS_NFW_MPC_H", "RED_SEQUENCE_SCATTER", "MSTAR_R_Z01", "Q_EVOLUTION", "LUM_MIN",
    "LUM_CUT", "_STATE", "_sample_powerlaw",
]
