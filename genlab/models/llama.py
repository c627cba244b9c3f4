"""`LlamaForward`: transformers' `LlamaForCausalLM` forward, the same arithmetic in far fewer Python calls.

A decoding step of a small model on a CPU is bound by reading the weights (about 20 ms for SmolLM2-135M on 2
cores) and, beside it, by Python: transformers runs each of the 30 layers through a tree of modules, hooks and
kernel-hub wrappers, about 450 module calls and 10-15 ms a forward. This forward keeps every tensor operation of
transformers' own, in the same order and on the same operands (the embedding, the rotary module, the causal mask
from `create_causal_mask`, the cache's `update`, the `sdpa` attention function, each `Linear`'s forward, which is
genlab's kernel where `cpu_linear` is installed), and writes out in place only the layers' glue: the RMS norms,
the rotation, the residual sums and the MLP. Its logits are bitwise those of `model(...)`
(tests/test_llama_forward.py). Taken only for the plain Llama architecture it was checked on (`supports`);
anything else runs through transformers as before.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import create_causal_mask
from transformers.models.llama.modeling_llama import LlamaAttention, LlamaDecoderLayer, LlamaForCausalLM

from genlab.models import cpu_linear


def supports(model) -> bool:
    """Whether `model` is a plain `LlamaForCausalLM` whose forward `LlamaForward` reproduces (in eval mode: it
    has no dropout; `HFModel` sends a model in training mode through transformers)."""
    if type(model) is not LlamaForCausalLM or not _MASK_TAKES_CACHE:  # transformers 4 names its arguments otherwise
        return False
    config = model.config
    rope = getattr(config, "rope_parameters", None) or {}
    return (
        config._attn_implementation == "sdpa"
        and config.hidden_act == "silu"
        and not getattr(config, "attention_bias", False)
        and not getattr(config, "mlp_bias", False)
        and getattr(config, "pretraining_tp", 1) == 1
        and rope.get("rope_type", "default") == "default"
        and all(
            type(layer).forward is LlamaDecoderLayer.forward and type(layer.self_attn).forward is LlamaAttention.forward
            for layer in model.model.layers
        )
    )


_MASK_TAKES_CACHE = {"cache", "inputs_embeds"} <= set(inspect.signature(create_causal_mask).parameters)


class LlamaForward:
    """`model(input_ids, attention_mask, position_ids, cache, logits_to_keep=keep).logits`, for a model that
    `supports` takes."""

    def __init__(self, model):
        inner = model.model
        self.config = model.config
        self.embed = inner.embed_tokens
        self.rotary = inner.rotary_emb
        self.norm = inner.norm
        self.lm_head = model.lm_head
        self.layers = list(inner.layers[: self.config.num_hidden_layers])
        kernel = cpu_linear.installed(model)
        self.qkv = [_fuse(a.q_proj, a.k_proj, a.v_proj) if kernel else None for a in (x.self_attn for x in self.layers)]
        self.gate_up = [_fuse(m.gate_proj, m.up_proj) if kernel else None for m in (x.mlp for x in self.layers)]

    @torch.inference_mode()
    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        cache,
        keep: int,
    ) -> torch.Tensor:
        """The logits [batch, keep, vocab] after the last `keep` slots; the cache grows by the input's width."""
        hidden = self.embed(input_ids)
        if position_ids is None:
            start = cache.get_seq_length()
            position_ids = (torch.arange(hidden.shape[1], device=hidden.device) + start).unsqueeze(0)
        mask = create_causal_mask(
            config=self.config,
            inputs_embeds=hidden,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=position_ids,
        )
        cos, sin = self.rotary(hidden, position_ids=position_ids)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        batch, width = hidden.shape[:2]
        for layer, qkv, gate_up in zip(self.layers, self.qkv, self.gate_up):
            attention, mlp = layer.self_attn, layer.mlp
            shape = (batch, width, -1, attention.head_dim)
            residual = hidden
            hidden = _rms_norm(hidden, layer.input_layernorm)
            projected = _fused(hidden, qkv)
            if projected is None:
                projected = [p.forward(hidden) for p in (attention.q_proj, attention.k_proj, attention.v_proj)]
            query, key, value = (p.view(shape).transpose(1, 2) for p in projected)
            query = (query * cos) + (_rotate_half(query) * sin)
            key = (key * cos) + (_rotate_half(key) * sin)
            key, value = cache.update(key, value, attention.layer_idx)
            out, _ = sdpa_attention_forward(attention, query, key, value, mask, dropout=0.0, scaling=attention.scaling)
            out = out.reshape(batch, width, -1).contiguous()
            hidden = residual + attention.o_proj.forward(out)
            residual = hidden
            hidden = _rms_norm(hidden, layer.post_attention_layernorm)
            pair = _fused(hidden, gate_up)
            gate, up = pair if pair is not None else (mlp.gate_proj.forward(hidden), mlp.up_proj.forward(hidden))
            gated = F.silu(gate) * up
            hidden = residual + mlp.down_proj.forward(gated)
        hidden = _rms_norm(hidden, self.norm)
        return self.lm_head.forward(hidden[:, -keep:, :])


Fused = tuple[torch.Tensor, list[int], torch.nn.Linear]  # the weight, its parts' sizes, the first projection


def _fuse(*projections: torch.nn.Linear) -> Fused | None:
    """One weight for several bias-free projections of the same input, which then become views of it (no copy is
    kept), so that a decoding step reads it in one kernel call; None where a part is not a whole number of the
    kernel's 8-row blocks (then its outputs would come from other code than alone, and differ in the last bits)."""
    weights = [p.weight for p in projections]
    sizes = [int(w.shape[0]) for w in weights]
    if any(p.bias is not None for p in projections) or any(size % 8 for size in sizes):
        return None
    if len({(w.shape[1], w.dtype, w.device) for w in weights}) != 1:
        return None
    with torch.no_grad():
        fused = torch.cat([w.detach() for w in weights]).contiguous()
        start = 0
        for p, w, size in zip(projections, weights, sizes):
            p.weight = torch.nn.Parameter(fused[start : start + size], requires_grad=w.requires_grad)
            start += size
    return fused, sizes, projections[0]


def _fused(hidden: torch.Tensor, fused: Fused | None) -> list[torch.Tensor] | None:
    """The projections of `hidden` by one kernel call on the fused weight, or None where the kernel does not take
    it or is no longer installed (then each projection runs its own forward, as transformers does)."""
    if fused is None or not cpu_linear.has_kernel(fused[2]):
        return None
    weight, sizes, _ = fused
    out = cpu_linear.product(hidden, weight)
    return None if out is None else list(out.split(sizes, dim=-1))


def _rms_norm(hidden: torch.Tensor, norm) -> torch.Tensor:
    """`LlamaRMSNorm.forward`."""
    dtype = hidden.dtype
    hidden = hidden.to(torch.float32)
    variance = hidden.pow(2).mean(-1, keepdim=True)
    hidden = hidden * torch.rsqrt(variance + norm.variance_epsilon)
    return norm.weight * hidden.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)
