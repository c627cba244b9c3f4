"""Samplers: token masking (the baseline) and, in later issues, AWRS and SMC; all return `GenerationResult`."""

from genlab.samplers.masking import masked_sampling
from genlab.samplers.result import Counts, GenerationResult, Sample

__all__ = ["Counts", "GenerationResult", "Sample", "masked_sampling"]
