"""GalSim simulation of survey cutouts and galaxy-cluster fields (labelsky's embedded default data)."""

from labelsky.data.simulate.galaxies import CLASSES
from labelsky.data.simulate.runner import SimulationError
from labelsky.data.simulate.stamps import GalaxySimConfig, open_simulation, render_object, simulate_galaxies

__all__ = ["CLASSES", "GalaxySimConfig", "SimulationError", "simulate_galaxies", "open_simulation", "render_object"]
