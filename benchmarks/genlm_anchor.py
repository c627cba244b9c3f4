"""genlm-control 0.4.1's SMC with AWRS on posterior_quality.py's problems: the anchor that genlab's SMC is compared to.

Not imported by genlab and never run with genlab's interpreter: `benchmarks/posterior_quality.py` starts it with the
interpreter of a separate virtual environment that holds genlm-control (default `.venv-genlm/bin/python` in the
repository root: `python3 -m venv .venv-genlm && .venv-genlm/bin/pip install torch==2.13.0 genlm-control==0.4.1`).
It reads one JSON object on stdin:

    {"model": "<local HF folder>", "threads": 1, "eos_ids": [...], "n_particles": 64, "ess_threshold": 0.5,
     "seeds": [0, 1, ...], "problems": [{"name": ..., "prompt_ids": [...], "regex": ..., "max_tokens": ...}, ...]}

and prints one JSON object as the last line of stdout (progress goes to stderr):

    {"load_s": ..., "problems": [{"name": ..., "setup_s": ..., "runs": [{"seed": ..., "wall_s": ..., "smc_s": ...,
      "log_marginal": ..., "posterior": {text: p}, "n_complete": ...}, ...]}, ...]}
    or {"error": "..."} when genlm-control cannot run at all.

Nothing is downloaded: the model is the local folder genlab itself uses (SmolLM2, converted by `genlab.models.load`),
loaded by genlm-backend's `AsyncTransformer.from_name` with `local_files_only` and the hub switched off; float32 on
the CPU like genlab. Each run (one problem, one seed) builds its potentials afresh and starts from an empty
backend cache, as each genlab run compiles its own constraint and prefills its own prompt:

    llm = PromptedLLM(backend, prompt_ids=..., eos_byte_strings=<bytes of genlab's EOS ids>)
    condition = BoolFSA.from_regex(regex).coerce(llm, f=b"".join)
    sequences = await AWRS(llm, condition, seed=seed).smc(n_particles, ess_threshold, max_tokens)

`wall_s` is that whole block (potentials built, SMC run), `smc_s` the `smc` call alone. `max_tokens` counts the EOS
token in genlm-control as in genlab (a sequence longer is cut and given EOS with the model's EOS weight, so the
target is p(x | x in L, |x| < max_tokens)). The posterior is `Sequences.decoded_posterior` (complete sequences,
normalised weights summed by text) and `log_marginal` is `Sequences.log_ml`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main() -> None:
    job = json.loads(sys.stdin.read())
    try:
        import numpy as np
        import torch
        from genlm.backend.llm import AsyncTransformer
        from genlm.control import AWRS, BoolFSA, PromptedLLM
    except Exception as e:  # noqa: BLE001 - reported to the caller as the column's reason
        print(json.dumps({"error": f"cannot import genlm-control: {type(e).__name__}: {e}"}))
        return
    # per-problem notices (the condition's vocabulary is a small part of the model's; a transformers deprecation)
    warnings.filterwarnings("ignore", message="Common vocabulary")
    warnings.filterwarnings("ignore", category=FutureWarning)
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    t0 = time.perf_counter()
    backend = AsyncTransformer.from_name(
        job["model"], hf_opts={"dtype": torch.float32, "device_map": None, "local_files_only": True}
    )
    eos = [backend.byte_vocab[i].byte_string for i in job["eos_ids"]]
    load_s = time.perf_counter() - t0
    print(f"genlm-control: model loaded in {load_s:.1f} s", file=sys.stderr, flush=True)

    out = []
    for prob in job["problems"]:
        t = time.perf_counter()
        # a first build outside the timed runs: imports and one-off tables, not counted against any run
        PromptedLLM(backend, prompt_ids=list(prob["prompt_ids"]), eos_byte_strings=eos)
        setup_s = time.perf_counter() - t
        runs = []
        for seed in job["seeds"]:
            backend.clear_cache()
            torch.manual_seed(seed)
            np.random.seed(seed)
            t = time.perf_counter()
            llm = PromptedLLM(backend, prompt_ids=list(prob["prompt_ids"]), eos_byte_strings=eos)
            condition = BoolFSA.from_regex(prob["regex"]).coerce(llm, f=b"".join)
            sampler = AWRS(llm, condition, seed=seed)
            t_smc = time.perf_counter()
            seqs = asyncio.run(
                sampler.smc(
                    n_particles=job["n_particles"], ess_threshold=job["ess_threshold"], max_tokens=prob["max_tokens"]
                )
            )
            end = time.perf_counter()
            posterior = {k: float(v) for k, v in dict(seqs.decoded_posterior).items()}
            runs.append(
                {
                    "seed": seed,
                    "wall_s": end - t,
                    "smc_s": end - t_smc,
                    "log_marginal": float(seqs.log_ml),
                    "posterior": posterior,
                    "n_complete": len(posterior),
                }
            )
            print(
                f"genlm-control {prob['name']} seed {seed}: {end - t:.1f} s, log Z {seqs.log_ml:.3f}, "
                f"{len(posterior)} texts",
                file=sys.stderr,
                flush=True,
            )
        out.append({"name": prob["name"], "setup_s": setup_s, "runs": runs})
    print(json.dumps({"load_s": load_s, "problems": out}))


if __name__ == "__main__":
    main()
