"""The rule registry. One module per concern; importing this package registers them all.

Codes are grouped by concern:

======  ===============================================
ML1xx   normalization
ML2xx   activation
ML3xx   output head and loss
ML4xx   receptive field and spatial layout
ML5xx   capacity against the data
ML6xx   optimizer and learning rate
ML7xx   initialization
ML8xx   regularization
ML90x   input
ML95x   efficiency
ML96x   weights: what the trained weights say (need the weights; ML97x: their spectra)
ML0xx   data checks (ML00x–ML01x) and probe measurements (ML02x–ML09x): need ``modellint probe``
======  ===============================================
"""

from .base import CATEGORIES, REGISTRY, SEVERITIES, Finding, Rule, register  # noqa: F401
from . import (activation, capacity, data, efficiency, initialization, input, normalization,  # noqa: F401,E402
               optimizer, output_head, probes, receptive_field, regularization, sequence, spectral, weights)


def all_rules() -> list:
    return [REGISTRY[code] for code in sorted(REGISTRY)]


def get_rule(code: str):
    return REGISTRY.get(code.upper())
