"""The model: selective scan, Mamba block, quantisers, part VQ-VAEs, generator, GranuMamba."""

from .granumamba import GranuMamba, GranuMambaConfig, ModelLoadError
from .mamba import Mamba, MambaLayer, MambaStack, cuda_kernels_available
from .quantizer import LEVELS, MultiRateQuantizer, VectorQuantizer, combine
from .scan import selective_scan, selective_scan_reference
from .vqvae import PartVQVAE, prior_loss

__all__ = [
    "LEVELS",
    "GranuMamba",
    "GranuMambaConfig",
    "Mamba",
    "MambaLayer",
    "MambaStack",
    "ModelLoadError",
    "MultiRateQuantizer",
    "PartVQVAE",
    "VectorQuantizer",
    "combine",
    "cuda_kernels_available",
    "prior_loss",
    "selective_scan",
    "selective_scan_reference",
]
