"""Samplers, all returning `GenerationResult`: token masking (baseline), AWRS steps inside SMC, sample-rerank,
and exact enumeration of small problems (the ground truth)."""

from genlab.samplers.awrs import AWRS, AWRSStep
from genlab.samplers.exact import ExactPosterior, exact_posterior
from genlab.samplers.masking import masked_sampling
from genlab.samplers.rerank import sample_rerank
from genlab.samplers.result import Counts, GenerationResult, Sample
from genlab.samplers.smc import smc

__all__ = [
    "AWRS",
    "AWRSStep",
    "Counts",
    "ExactPosterior",
    "GenerationResult",
    "Sample",
    "exact_posterior",
    "masked_sampling",
    "sample_rerank",
    "smc",
]
