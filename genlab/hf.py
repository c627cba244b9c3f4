"""`ConstraintLogitsProcessor`: constrain any Hugging Face model's `generate` with one line.

    model.generate(ids, logits_processor=[ConstraintLogitsProcessor(Regex(r"\\d{3}"), tokenizer)], ...)

Works with greedy decoding, sampling and batches (one matcher state per row). This is token masking, so the
outputs are valid but distributed as masking distributes them; `genlab`'s samplers give the true conditional.

Token healing (a prompt that ends in a space or mid-word):

    ids, prefix = heal(tokenizer, "Visit https://exa")
    processor = ConstraintLogitsProcessor(Regex(r"mple\\.com/\\w+"), tokenizer, prefix=prefix)
    out = model.generate(torch.tensor([ids]), logits_processor=[processor], ...)
    processor.texts(out)  # the outputs after the healed bytes
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch
from transformers import LogitsProcessor

from genlab.constraints.base import Constraint, Matcher
from genlab.constraints.prefixed import PrefixedMatcher
from genlab.errors import GenlabError
from genlab.samplers.prompt import heal as heal_ids
from genlab.samplers.prompt import start_id
from genlab.vocab import TokenVocabulary


class ConstraintLogitsProcessor(LogitsProcessor):
    """Masks each row's scores to the tokens its matcher allows (EOS exactly where the text is complete).

    The first call fixes where generation starts (the prompt length); a processor serves one `generate` call.
    After a row emits EOS, only EOS stays allowed for it, so the row stays finished whatever ids `generate` uses
    to stop or pad. Pass `vocab` to reuse a vocabulary built already (its size must equal the logits width), and
    `prefix`, the bytes `heal` backed off the prompt, to make every row start with them.
    """

    def __init__(
        self, constraint: Constraint, tokenizer, vocab: TokenVocabulary | None = None, prefix: bytes = b""
    ) -> None:
        self.constraint = constraint
        self.prefix = bytes(prefix)
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
        if self.prefix:
            self.matcher = PrefixedMatcher(self.matcher, self.prefix)
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

    def texts(self, sequences) -> list[str]:
        """Each row of `generate`'s output as text: the tokens after the prompt up to EOS, without the healed prefix
        (an unfinished UTF-8 character shows as U+FFFD)."""
        if self.vocab is None or self._prompt_length is None:
            raise GenlabError("texts() reads a generate() output: call it after generate ran with this processor")
        out = []
        for row in sequences.tolist() if isinstance(sequences, torch.Tensor) else sequences:
            tokens = []
            for token in row[self._prompt_length :]:
                if token in self.vocab.eos_ids:
                    break
                tokens.append(token)
            out.append(self.vocab.decode(tokens)[len(self.prefix) :].decode("utf-8", errors="replace"))
        return out


def heal(tokenizer, text: str, vocab: TokenVocabulary | None = None) -> tuple[list[int], bytes]:
    """Token healing for `model.generate`: the ids of `text` backed off by the last tokens a vocabulary token could
    run past (a trailing space, a cut word), and the bytes they spelled, which the output must start with (pass them
    as `ConstraintLogitsProcessor(..., prefix=...)`). b"" when nothing needed healing. A prompt healed to nothing
    starts from the tokenizer's BOS (else its EOS)."""
    vocab = vocab or TokenVocabulary.from_tokenizer(tokenizer)
    return heal_ids(vocab, tokenizer(text)["input_ids"], start_id(tokenizer, vocab))
