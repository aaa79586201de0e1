"""Analyses of a graph: receptive field, cost. Pure functions of the graph."""

from .cost import Cost, node_costs, total_macs
from .receptive_field import ReceptiveField, last_spatial, receptive_fields

__all__ = ["Cost", "node_costs", "total_macs", "ReceptiveField", "receptive_fields", "last_spatial"]
