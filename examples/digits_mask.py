"""The foundation layers together: the default model's next-token distribution, restricted with a trie walk.

Walks the vocabulary trie with a one-state DFA that accepts only ASCII digits, masks the model's log-probs to
those tokens, and prints the most likely digit tokens and the probability mass they hold. The mass is small
because the model wants " 5" (space first): a digits-only mask renormalises that tiny mass into a confident
choice, which is the distortion genlab's weighted samplers account for.

    python examples/digits_mask.py "Count: 1, 2, 3, 4,"
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from genlab import TokenTrie
from genlab.models import load


def main(prompt: str) -> None:
    lm = load()
    trie = TokenTrie.from_vocab(lm.vocab)
    digits = np.full((1, 256), -1, np.int32)
    digits[0, ord("0") : ord("9") + 1] = 0
    allowed = torch.from_numpy(trie.walk_table(digits, 0) >= 0)
    logp = lm.prefill(lm.encode(prompt)).logprobs()[0]
    mass = torch.logsumexp(logp[allowed], 0).exp().item()
    masked = logp.masked_fill(~allowed, float("-inf"))
    top = torch.topk(masked, 5)
    print(f"{int(allowed.sum())} digit-only tokens hold {mass:.2e} of the next-token probability")
    for lp, i in zip(top.values.tolist(), top.indices.tolist()):
        print(f"  {lm.vocab.token_bytes[i]!r:>10}  p={np.exp(lp):.2e}  p(.|digits)={np.exp(lp) / mass:.4f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Count: 1, 2, 3, 4,")
