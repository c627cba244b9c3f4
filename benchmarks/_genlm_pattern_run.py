"""Helper for benchmarks/patterns.py: genlm-control's SMC-AWRS with a `regex` partial-match potential, in
genlm-control's own venv (never imported by genlab; started with that venv's interpreter).

One JSON argument: {"model": folder, "eos_ids": [...], "threads": n, "n_particles": N, "max_tokens": T,
"tasks": [{"name", "pattern", "prompt_ids"}]}. Prints one JSON object on the last line of stdout:
{"setup_s": ..., "results": {name: {"wall_s", "texts", "checks", "tokens"}}}.

The potential is the nearest genlm-control equivalent of genlab's `Pattern`: over bytes, `prefix` is
`regex.fullmatch(pattern, text, partial=True)` on the text so far (an unfinished last character left out) and
`complete` is `regex.fullmatch(pattern, text)`; coerced to the LLM's tokens with `f=b"".join`, as the regex
example of genlm-control's README coerces its `BoolFSA`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main() -> None:
    job = json.loads(sys.argv[1])
    import numpy as np
    import regex
    import torch
    from genlm.backend.llm import AsyncTransformer
    from genlm.control import AWRS, PromptedLLM
    from genlm.control.potential.base import Potential

    class RegexPotential(Potential):
        def __init__(self, pattern: str):
            super().__init__(vocabulary=list(range(256)))
            self.rx = regex.compile(pattern)

        async def prefix(self, context):
            text = bytes(context).decode("utf-8", errors="ignore")
            return 0.0 if self.rx.fullmatch(text, partial=True) is not None else float("-inf")

        async def complete(self, context):
            try:
                text = bytes(context).decode("utf-8")
            except UnicodeDecodeError:
                return float("-inf")
            return 0.0 if self.rx.fullmatch(text) is not None else float("-inf")

    torch.set_num_threads(int(job.get("threads", 2)))
    t0 = time.perf_counter()
    backend = AsyncTransformer.from_name(
        job["model"], hf_opts={"dtype": torch.float32, "device_map": None, "local_files_only": True}
    )
    eos = [backend.byte_vocab[i].byte_string for i in job["eos_ids"]]
    setup_s = time.perf_counter() - t0

    tally = {"checks": 0}
    accept = AWRS._accept

    async def counted_accept(self, *a, **k):
        tally["checks"] += 1
        return await accept(self, *a, **k)

    AWRS._accept = counted_accept
    results = {}
    for task in job["tasks"]:
        llm = PromptedLLM(backend, prompt_ids=list(task["prompt_ids"]), eos_byte_strings=eos)
        condition = RegexPotential(task["pattern"]).coerce(llm, f=b"".join)
        torch.manual_seed(0)
        np.random.seed(0)
        sampler = AWRS(llm, condition, seed=0)
        tally["checks"] = 0
        t = time.perf_counter()
        seqs = asyncio.run(sampler.smc(n_particles=job["n_particles"], ess_threshold=0.5, max_tokens=job["max_tokens"]))
        wall = time.perf_counter() - t
        texts = [b"".join(x for x in ctx if isinstance(x, bytes)).decode("utf-8", "replace") for ctx in seqs.contexts]
        tokens = sum(len(ctx) for ctx in seqs.contexts)
        results[task["name"]] = {"wall_s": wall, "texts": texts, "checks": tally["checks"], "tokens": tokens}
        print(f"genlm-control {task['name']}: {wall:.1f} s", file=sys.stderr, flush=True)
    print(json.dumps({"setup_s": setup_s, "results": results}))


if __name__ == "__main__":
    main()
