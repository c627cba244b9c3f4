"""`ConstraintLogitsProcessor`: constrain any Hugging Face model's `generate` with one line.

    model.generate(ids, logits_processor=[ConstraintLogitsProcessor(Regex(r"\\d{3}"), tokenizer)], ...)

Works with greedy decoding, sampling and batches (one matcher state per row). This is token masking, so the
outputs are valid but distributed as masking distributes them; `genlab`'s samplers give the true conditional.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch
from transformers import LogitsProcessor

from genlab.constraints.base import Constraint, Matcher
from genlab.errors import GenlabError
from genlab.vocab import TokenVocabulary


class ConstraintLogitsProcessor(LogitsProcessor):
    """Masks each row's scores to the tokens its matcher allows (EOS exactly where the text is complete).

    The first call fixes where generation starts (the prompt length); a processor serves one `generate` call.
    After a row emits EOS, only EOS stays allowed for it, so the row stays finished whatever ids `generate` uses
    to stop or pad. Pass `vocab` to reuse a vocabulary built already (its size must equal the logits width).
    """

    def __init__(self, constraint: Constraint, tokenizer, vocab: TokenVocabulary | None = None) -> None:
        self.constraint = constraint
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.matcher: Matcher | None = None
        self._prompt_length: int | None = None
        self._seen = 0
        self._states: list = []
        self._finished: list[int | None] = []

    def _bind(self, input_ids: torch.Tensor, width: int) -> tuple[Matcher, TokenVocabulary]:
        if self.vocab is None or self.vocab.size != width:
            self.vocab = TokenVocabulary.from_tokenizer(self.tokenizer, model_vocab_size=width)
        self.matcher = self.constraint.compile(self.vocab)
        self._prompt_length = self._seen = input_ids.shape[1]
        self._states = [self.matcher.start()] * input_ids.shape[0]
        self._finished = [None] * input_ids.shape[0]
        return self.matcher, self.vocab

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.matcher is None or self.vocab is None or self._prompt_length is None:
            matcher, vocab = self._bind(input_ids, scores.shape[-1])
        else:
            matcher, vocab = self.matcher, self.vocab
        if input_ids.shape[0] != len(self._states):
            raise GenlabError(
                f"ConstraintLogitsProcessor tracks {len(self._states)} rows but got {input_ids.shape[0]}: beam "
                "search reorders rows, which this processor does not follow; use greedy decoding or sampling"
            )
        new = input_ids[:, self._seen :].tolist()
        self._seen = input_ids.shape[1]
        eos = vocab.eos_ids
        masks = []
        for row, tokens in enumerate(new):
            for token in tokens:
                if self._finished[row] is not None:
                    break
                if token in eos:
                    self._finished[row] = token
                    break
                state = matcher.advance(self._states[row], token)
                if state is None:
                    text = vocab.decode(input_ids[row, self._prompt_length :].tolist())
                    raise GenlabError(
                        f"row {row} left the constraint after {text!r}: another processor or a "
                        "forced token chose a token the constraint does not allow"
                    )
                self._states[row] = state
            if self._finished[row] is not None:
                only = np.zeros(vocab.size, np.bool_)
                only[self._finished[row]] = True
                masks.append(only)
            else:
                mask = matcher.mask(self._states[row])
                if not mask.any():
                    raise GenlabError(
                        f"row {row}: no token of this vocabulary continues the constraint here "
                        "(it needs a byte sequence no token spells)"
                    )
                masks.append(mask)
        allowed = torch.from_numpy(np.stack(masks)).to(scores.device)
        # a float tensor like `scores`; torch types masked_fill as returning a plain Tensor
        return cast(torch.FloatTensor, scores.masked_fill(~allowed, -torch.inf))
