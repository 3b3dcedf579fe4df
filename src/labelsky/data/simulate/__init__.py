"""GalSim simulation of survey cutouts and galaxy-cluster fields (labelsky's embedded default data)."""

from labelsky.data.simulate.clusters import ClusterSimConfig, render_cluster, simulate_clusters
from labelsky.data.simulate.galaxies import CLASSES
from labelsky.data.simulate.randomise import Randomisation, parse_randomisation
from labelsky.data.simulate.runner import SimulationError
from labelsky.data.simulate.stamps import GalaxySimConfig, open_simulation, render_object, simulate_galaxies

__all__ = ["CLASSES", "GalaxySimConfig", "ClusterSimConfig", "SimulationError", "simulate_galaxies",
           "simulate_clusters", "open_simulation", "render_object", "render_cluster",
           "Randomisation", "parse_randomisation"]
