"""Layer kinds: full, bilinear (Yu et al.), low-rank SVD-trained (Yang et al.); their registry."""

from models.layers.bilinear import BilinearProjection, bilinear_projection
from models.layers.full import FullProjection
from models.layers.lowrank_conv import LowRankConv2d
from models.layers.lowrank_linear import LowRankLinear
from models.layers.registry import CONV_LAYERS, PROJECTION_LAYERS, make_layer
from models.layers.svd import SVDFactors

__all__ = [
    "CONV_LAYERS",
    "PROJECTION_LAYERS",
    "BilinearProjection",
    "FullProjection",
    "LowRankConv2d",
    "LowRankLinear",
    "SVDFactors",
    "bilinear_projection",
    "make_layer",
]
