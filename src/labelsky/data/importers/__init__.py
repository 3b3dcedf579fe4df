"""Importers of real survey data into labelsky datasets (FITS cutouts and images, Galaxy10, Galaxy Zoo, pictures)."""
