"""Optical-wavelength-guided self-supervision: band-identity pretext and cluster-richness regression."""
