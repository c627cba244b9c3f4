"""Helper for benchmarks/awrs_cost.py: time genlm-control's AWRS + SMC on one regex task, in genlm-control's own venv.

Not imported by genlab and never run with genlab's interpreter: `awrs_cost.py` starts it with the interpreter of a
separate virtual environment holding genlm-control (see that script's docstring), passes the task as one JSON
argument and reads one JSON object from the last line of stdout:

    {"setup_s": ..., "runs": [{"wall_s": ..., "texts": [...], "log_weights": [...], "posterior": {...},
                               "checks": ..., "draws": ...}, ...]}

`checks` counts the condition checks of genlm-control's AWRS (`AWRS._accept` calls), `draws` its token draws
(`AWRS.sample` calls), wrapped in this process only.

The task: the same prompt token ids, EOS ids, model folder (float32, CPU), regex, particle count, ESS threshold and
token limit that genlab uses. genlm-control's closest equivalent of genlab's SMC-AWRS is
`AWRS(PromptedLLM, BoolFSA.from_regex(p).coerce(llm, f=b"".join)).smc(...)`, the regex example of its README.
`setup_s` is loading the model and building the potentials and the sampler; the first run is cold (the FSA's and the
coercion's caches fill), later runs are warm.
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
    task = json.loads(sys.argv[1])
    import numpy as np
    import torch
    from genlm.backend.llm import AsyncTransformer
    from genlm.control import AWRS, BoolFSA, PromptedLLM

    if task.get("threads"):
        torch.set_num_threads(int(task["threads"]))
    t0 = time.perf_counter()
    backend = AsyncTransformer.from_name(
        task["model"], hf_opts={"dtype": torch.float32, "device_map": None, "local_files_only": True}
    )
    eos = [backend.byte_vocab[i].byte_string for i in task["eos_ids"]]
    llm = PromptedLLM(backend, prompt_ids=list(task["prompt_ids"]), eos_byte_strings=eos)
    fsa = BoolFSA.from_regex(task["regex"])
    condition = fsa.coerce(llm, f=b"".join)
    setup_s = time.perf_counter() - t0

    # count condition checks (AWRS._accept calls) and token draws (AWRS.sample calls), as genlab's counts do
    tally = {"checks": 0, "draws": 0}
    accept, sample = AWRS._accept, AWRS.sample

    async def counted_accept(self, *a, **k):
        tally["checks"] += 1
        return await accept(self, *a, **k)

    async def counted_sample(self, *a, **k):
        tally["draws"] += 1
        return await sample(self, *a, **k)

    AWRS._accept, AWRS.sample = counted_accept, counted_sample

    runs = []
    for r in range(task["repeats"]):
        seed = task.get("seed", 0) + r
        torch.manual_seed(seed)
        np.random.seed(seed)
        sampler = AWRS(llm, condition, seed=seed)
        tally.update(checks=0, draws=0)
        t = time.perf_counter()
        seqs = asyncio.run(
            sampler.smc(
                n_particles=task["n_particles"], ess_threshold=task["ess_threshold"], max_tokens=task["max_tokens"]
            )
        )
        wall = time.perf_counter() - t
        texts = []
        for ctx in seqs.contexts:
            parts = [x for x in ctx if isinstance(x, bytes)]
            texts.append(b"".join(parts).decode("utf-8", errors="replace"))
        runs.append(
            {
                "wall_s": wall,
                "texts": texts,
                "log_weights": [float(w) for w in seqs.log_weights],
                "posterior": {k: float(v) for k, v in dict(seqs.decoded_posterior).items()},
                "tokens": sum(len(ctx) for ctx in seqs.contexts),
                "checks": tally["checks"],
                "draws": tally["draws"],
            }
        )
        print(f"genlm-control run {r}: {wall:.1f} s {texts}", file=sys.stderr, flush=True)
    print(json.dumps({"setup_s": setup_s, "runs": runs}))


if __name__ == "__main__":
    main()
