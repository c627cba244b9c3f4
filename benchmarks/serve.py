"""`genlab serve` under load: requests per second and latency for 1, 4 and 8 concurrent clients.

Usage: python benchmarks/serve.py [--model NAME] [--methods mask,smc] [--requests 8] [--max-tokens 96]
                                  [--output docs/benchmarks/serve.md]

The server runs in this process (uvicorn on a loopback port) and the official `openai` client sends JSON Schema
extraction requests (benchmarks/drafts.py's ten paragraphs and Person model, chat template, temperature 1, seed i
for request i). Each configuration sends the same requests, so it does the same generation work (a seeded
request draws the same tokens alone or pooled: tests/test_shared_model.py): 1 client sends them one after
another (the baseline: one request at a time); c clients keep c requests in flight. Columns: wall time for all
requests, requests per second, latency p50 and p99, the pooled forwards and the rows and requests each served,
the mean time of a pooled forward, the time spent in prefills (each prompt runs alone, on the same forward thread)
and the rest of the wall time (the requests' own sampling work, HTTP, waiting).
The goal line: the wall time of the c = 8 wave (8 requests sent at once) over the mean latency of one request
alone (goal <= 2: batched forwards serve the 8 together), and over the longest request alone (the wave cannot end
before its longest request: the bound perfect batching would reach).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import uvicorn
from drafts import PARAGRAPHS, Person  # benchmarks/drafts.py, beside this script
from report import Printed, write_report

import genlab
from genlab.serve import Engine, Limits, create_app


def start(engine: Engine, port: int) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(create_app(engine), port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a known model name or folder (default: SmolLM2)")
    parser.add_argument("--methods", default="mask,smc")
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--clients", default="1,4,8")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--output", default="docs/benchmarks/serve.md")
    args = parser.parse_args()
    lm = genlab.load(args.model, device="cpu")
    engine = Engine(lm, name="bench", limits=Limits(max_tokens=args.max_tokens), concurrency=8)
    server = start(engine, args.port)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{args.port}/v1", api_key="none", max_retries=0, timeout=900)
    schema = Person.model_json_schema()
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
    shared = engine.shared

    def request(i: int, method: str) -> tuple[float, bool]:
        text = PARAGRAPHS[i % len(PARAGRAPHS)]
        messages = [
            {"role": "user", "content": f"Extract the person as JSON with keys name, age, city, email:\n{text}"}
        ]
        t0 = time.perf_counter()
        out = client.chat.completions.create(
            model="bench",
            messages=messages,
            response_format=fmt,
            max_tokens=args.max_tokens,
            seed=i,
            extra_body={"genlab": {"method": method, "n_particles": 4} if method == "smc" else {"method": method}},
        )
        choice = out.choices[0]
        valid = choice.finish_reason == "stop" and Person.model_validate_json(choice.message.content) is not None
        return time.perf_counter() - t0, valid

    out = Printed()
    out(
        "| method | clients | requests | valid | wall s | requests/s | p50 s | p99 s | forwards | rows/forward "
        "| requests/forward | ms/forward | prefills s | rest s |"
    )
    out("| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |")
    goals = []
    clients = [int(c) for c in args.clients.split(",")]
    for method in args.methods.split(","):
        request(0, method)  # compile the schema and warm the kernels
        alone = None
        for c in clients:
            forwards, rows, served = shared.forwards, shared.rows_forwarded, engine.served
            members = shared.most_members
            spent = shared.forward_seconds, shared.prefill_seconds
            t0 = time.perf_counter()
            with ThreadPoolExecutor(c) as pool:
                results = list(pool.map(lambda i, m=method: request(i, m), range(args.requests)))
            wall = time.perf_counter() - t0
            latencies = sorted(r[0] for r in results)
            n_forwards = shared.forwards - forwards
            p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
            forward_s, prefill_s = shared.forward_seconds - spent[0], shared.prefill_seconds - spent[1]
            out(
                f"| {method} | {c} | {args.requests} | {sum(r[1] for r in results)} | {wall:.2f} "
                f"| {args.requests / wall:.2f} | {statistics.median(latencies):.2f} | {p99:.2f} | {n_forwards} "
                f"| {(shared.rows_forwarded - rows) / max(n_forwards, 1):.1f} | up to {shared.most_members} "
                f"| {1000 * forward_s / max(n_forwards, 1):.0f} | {prefill_s:.2f} | {wall - forward_s - prefill_s:.2f} |"
            )
            assert engine.served - served == args.requests
            shared.most_members = members
            if c == 1:
                alone = (statistics.mean(latencies), max(latencies))
            if c == 8 and alone is not None and args.requests == 8:
                goals.append(
                    f"{method}: 8 concurrent requests in {wall:.2f} s; one alone {alone[0]:.2f} s on average: "
                    f"{wall / alone[0]:.2f}x (goal <= 2x); the longest alone {alone[1]:.2f} s: {wall / alone[1]:.2f}x"
                )
    out("")
    for line in goals:
        out(f"- {line}")
    server.should_exit = True
    engine.close()
    settings = (
        f"Model {args.model or 'SmolLM2-135M-Instruct'} on CPU, {args.requests} JSON Schema extraction requests "
        f"per row (max_tokens {args.max_tokens}, temperature 1, seed = request index), server and clients in one "
        "process over loopback HTTP; SMC is SMC-AWRS with N = 4. See the script's docstring for the columns."
    )
    write_report(args.output, "genlab serve under concurrent load", settings, out.text)


if __name__ == "__main__":
    main()
