"""User-facing constraints and the matcher contract they compile to."""

from genlab.constraints.base import Constraint, Matcher
from genlab.constraints.grammar import Grammar, GrammarMatcher
from genlab.constraints.json_schema import JsonSchema
from genlab.constraints.pattern import Pattern
from genlab.constraints.predicate import Predicate, PredicateMatcher
from genlab.constraints.regex import DFAMatcher, Regex
from genlab.constraints.sql import SQL

__all__ = [
    "Constraint",
    "DFAMatcher",
    "Grammar",
    "GrammarMatcher",
    "JsonSchema",
    "Matcher",
    "Pattern",
    "Predicate",
    "PredicateMatcher",
    "Regex",
    "SQL",
]
