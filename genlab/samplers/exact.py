"""The exact posterior p(x | x in L) by enumerating every allowed token sequence: the ground truth for small problems.

For a language that is finite within `max_tokens` tokens, every token sequence the matcher allows is enumerated
breadth-first, one depth at a time. All prefixes of a depth are the rows of one `KVBatch`: the rows that continue
are selected (forked once per allowed next token) and extended by one batched forward pass, so the whole tree
costs one forward per depth. A sequence x scores

    log p(x, EOS | prompt) = sum_t log p(x_t | prompt, x_<t) + log sum_{e in EOS ids} p(e | prompt, x),

all EOS ids counting as one outcome. The log marginal log P(x in L) is the logsumexp over sequences, and
p(x | x in L) = p(x, EOS) / P(x in L). The enumeration never truncates: a prefix that could still grow at
`max_tokens`, or a frontier larger than `max_sequences`, is an error, so a result is always exact.

Constraints without masks (`Predicate`, `Pattern`) are enumerated through their matcher's `allowed_tokens` (one
check per candidate token), and tokens that start a character no completion of which is allowed are pruned with
`live`: exact, but slow (up to ~10^6 checks per prefix); for small problems.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from genlab.constraints.base import Constraint, Matcher
from genlab.errors import ConstraintError, GenlabError
from genlab.models.base import LanguageModel
from genlab.samplers.prompt import Prompt, prepare

_CHUNK = 256  # rows converted to float64 at once


@dataclass
class ExactPosterior:
    """Every complete allowed token sequence (without EOS) with log p(x, EOS | prompt), and their log-sum."""

    sequences: list[tuple[tuple[int, ...], float]]
    log_marginal: float
    healed: bytes = b""  # token healing: the bytes every sequence starts with, left out of `text_posterior`

    def posterior(self) -> dict[tuple[int, ...], float]:
        """p(x | x in L) for each token sequence (empty when the language has no probability)."""
        if self.log_marginal == -math.inf:
            return {}
        return {ids: math.exp(lp - self.log_marginal) for ids, lp in self.sequences}

    def text_posterior(self, vocab) -> dict[str, float]:
        """p(text | x in L), summed over the tokenizations of each text.

        `vocab` is a `TokenVocabulary` (or anything with a `.vocab`, such as the model). Texts are the UTF-8
        decoding of the token bytes after the healed ones; invalid bytes become surrogate escapes, so distinct byte
        strings stay apart.
        """
        vocab = getattr(vocab, "vocab", vocab)
        out: dict[str, float] = {}
        for ids, p in self.posterior().items():
            text = vocab.decode(ids)[len(self.healed) :].decode("utf-8", errors="surrogateescape")
            out[text] = out.get(text, 0.0) + p
        return out


def _allowed_tokens(matcher: Matcher, state, text_ids: np.ndarray, eos: set[int]) -> list[int]:
    """Non-EOS token ids the matcher allows after `state`: from its mask, or, for matchers without masks
    (`Predicate`, `Pattern`), from their `allowed_tokens` or `allows` over every text token (small problems only)."""
    try:
        mask = matcher.mask(state)
    except ConstraintError:
        allowed_tokens = getattr(matcher, "allowed_tokens", None)
        if allowed_tokens is not None:
            return [int(t) for t in allowed_tokens(state)]
        return [int(t) for t in text_ids if matcher.allows(state, int(t))]
    return [int(t) for t in np.flatnonzero(mask) if int(t) not in eos]


def exact_posterior(
    lm: LanguageModel,
    prompt: Prompt,
    constraint: Constraint,
    max_tokens: int,
    *,
    temperature: float = 1.0,
    max_sequences: int = 200_000,
    heal: bool | None = False,
) -> ExactPosterior:
    """Enumerate every token sequence of at most `max_tokens` tokens that `constraint` allows after `prompt`.

    `temperature` tempers each next-token distribution (log_softmax(log p / T)) before scoring. Raises
    `GenlabError` when some allowed prefix is still unfinished at `max_tokens` (the language is not finite within
    that many tokens) or when a depth would need more than `max_sequences` rows.

    `heal` (`genlab.samplers.prompt`): the prompt is backed off by the tokens a vocabulary token could cross, and
    every sequence starts with their bytes, in every tokenization: the target over text that healed samplers
    converge to. `max_tokens` then grows by the number of tokens backed off.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
    vocab = lm.vocab
    begin = prepare(lm, prompt, heal)
    matcher = begin.matcher(constraint.compile(vocab))
    max_tokens += begin.removed
    eos_ids = sorted(t for t in vocab.eos_ids if t < lm.vocab_size)
    eos = set(eos_ids)
    text_ids = np.flatnonzero(vocab.is_text)
    live = getattr(matcher, "live", None)

    batch = lm.prefill(begin.ids, 1)
    # One entry per batch row: (tokens so far, matcher state, log p(tokens | prompt) in float64).
    frontier: list[tuple[tuple[int, ...], object, float]] = [((), matcher.start(), 0.0)]
    sequences: list[tuple[tuple[int, ...], float]] = []
    depth = 0
    while frontier:
        parents: list[int] = []
        children: list[tuple[tuple[int, ...], object, float]] = []
        all_logp = batch.logprobs()
        for start in range(0, len(frontier), _CHUNK):  # float64 copies a chunk of rows at a time
            with torch.inference_mode():
                logp = all_logp[start : start + _CHUNK].double()
                if temperature != 1.0:
                    logp = torch.log_softmax(logp / temperature, dim=-1)
                end = torch.logsumexp(logp[:, eos_ids], dim=-1).tolist() if eos_ids else [-math.inf] * len(logp)
            for k, (ids, state, lp) in enumerate(frontier[start : start + _CHUNK]):
                if matcher.is_final(state):
                    sequences.append((ids, lp + end[k]))
                allowed = _allowed_tokens(matcher, state, text_ids, eos)
                if not allowed:
                    continue
                if live is not None:  # a maskless matcher allows lead bytes of characters that cannot follow
                    allowed = [t for t in allowed if live(matcher.advance(state, t))]
                    if not allowed:
                        continue
                if depth == max_tokens:
                    text = vocab.decode(ids).decode("utf-8", errors="replace")
                    raise GenlabError(
                        f"exact enumeration: the prefix {text!r} ({len(ids)} tokens) can still be extended at "
                        f"max_tokens={max_tokens}, so the language is not finite within {max_tokens} tokens; "
                        "raise max_tokens or bound the constraint's length (the enumeration never truncates)"
                    )
                if len(children) + len(allowed) > max_sequences:
                    raise GenlabError(
                        f"exact enumeration: depth {depth + 1} needs more than max_sequences={max_sequences} "
                        "prefixes; the language has too many tokenizations to enumerate (raise max_sequences if "
                        "memory allows)"
                    )
                for token, token_lp in zip(allowed, logp[k, allowed].tolist()):
                    nxt = matcher.advance(state, token)
                    if nxt is None:  # cannot happen for a matcher that keeps its contract
                        raise GenlabError(f"the matcher allowed token {token} but its advance refused it")
                    parents.append(start + k)
                    children.append((ids + (token,), nxt, lp + token_lp))
        if not children:
            break
        batch.select(parents)
        batch.extend([ids[-1] for ids, _, _ in children])
        frontier = children
        depth += 1
    if sequences:
        log_marginal = float(np.logaddexp.reduce(np.array([lp for _, lp in sequences], dtype=np.float64)))
    else:
        log_marginal = -math.inf
    return ExactPosterior(sequences, log_marginal, begin.healed)
