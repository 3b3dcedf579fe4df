"""Surveys, simulation, dataset input/output and PyTorch datasets."""
