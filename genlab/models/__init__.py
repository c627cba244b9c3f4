"""Language models behind one small interface: batched next-token log-probs for many sequences sharing a prompt."""

# loading first: it switches the Hugging Face libraries offline before anything imports them.
from genlab.models.loading import load, path  # isort: skip
from genlab.models.base import BatchState, LanguageModel
from genlab.models.hf import HFModel, KVBatch
from genlab.models.shared import SharedModel, SharedRows

__all__ = ["BatchState", "HFModel", "KVBatch", "LanguageModel", "SharedModel", "SharedRows", "load", "path"]
