"""JSON Schema `format` names as regular expressions over the decoded string value, plus exact checkers.

`FORMATS[name]` (also `format_regex(name)`) is a Python `re` pattern for `re.fullmatch` over the characters of
the string (not its JSON-escaped spelling). The patterns use only what `genlab.automata.regex.compile_regex`
translates to a byte DFA: no lookarounds, backreferences or conditionals, and ASCII classes spelled out
(`[0-9]`, never the Unicode `\\d`). They are meant to constrain generation, so each compiles to a small DFA.

Where an exact rule is costly or impossible for a regex, the regex over-approximates and `check_format(name,
value)` is exact (used after generation):

* `date` / `date-time`: the regex knows each month's length but accepts Feb 29 in every year; the checker
  accepts it only in Gregorian leap years (proleptic, so year 0000 is one).
* `time` / `date-time`: the regex accepts second 60 at any time (RFC 3339 leap seconds); the checker accepts
  it only when the time, moved to UTC by its offset, is 23:59:60.
* `hostname`: the regex enforces the label rules but not the 253-character total (counting both the position
  in the label and in the name would multiply the DFA's states); the checker enforces it.
* `email`: the regex does not count the local part (at most 64 characters, RFC 5321 4.5.3.1.1), the domain
  (hostname rule, at most 253) or the whole address (at most 254, RFC 5321 4.5.3.1.3); the checker does.

Sources: RFC 3339 (section 5.6 and appendix A), RFC 5321/5322 (dot-atom, address literals), RFC 1123 (2.1)
and RFC 952 (host names), RFC 4291 (2.2) and RFC 3986 (3, 3.2.2, 4.1, 4.2) for addresses and URIs.
"""

from __future__ import annotations

import re

__all__ = ["CHECK_ONLY", "FORMATS", "check_format", "format_regex"]


def _alt(*parts: str) -> str:
    return "(?:" + "|".join(parts) + ")"


# ---------------------------------------------------------------------------------------------------- dates, times
_YEAR = "[0-9]{4}"
_DAY_31 = "(?:0[1-9]|[12][0-9]|3[01])"
_DAY_30 = "(?:0[1-9]|[12][0-9]|30)"
_DAY_29 = "(?:0[1-9]|1[0-9]|2[0-9])"
# Month and day together: 31-day months, 30-day months, February up to 29 (leap years: check_format).
_MONTH_DAY = _alt(f"(?:0[13578]|1[02])-{_DAY_31}", f"(?:0[469]|11)-{_DAY_30}", f"02-{_DAY_29}")
_FULL_DATE = f"{_YEAR}-{_MONTH_DAY}"

_HOUR = "(?:[01][0-9]|2[0-3])"
_MINUTE = "[0-5][0-9]"
_SECOND = "(?:[0-5][0-9]|60)"  # 60: a leap second (which ones are real: check_format)
_SECFRAC = r"(?:\.[0-9]+)"
_NUMOFFSET = f"[+-]{_HOUR}:{_MINUTE}"
_OFFSET = _alt("[Zz]", _NUMOFFSET)
_PARTIAL_TIME = f"{_HOUR}:{_MINUTE}:{_SECOND}{_SECFRAC}?"
_FULL_TIME = f"{_PARTIAL_TIME}{_OFFSET}"
_DATE_TIME = f"{_FULL_DATE}[Tt]{_FULL_TIME}"

# ISO 8601 durations (RFC 3339 appendix A): P, then a week count alone, or date components in the order Y M D
# followed optionally by T and time components in the order H M S. Each component is optional, but at least one
# must appear before T and after T (if T appears at all). Fractions are not allowed (not in RFC 3339's grammar).
_N = "[0-9]+"
_DUR_DATE = _alt(f"{_N}Y(?:{_N}M)?(?:{_N}D)?", f"{_N}M(?:{_N}D)?", f"{_N}D")
_DUR_TIME = "T" + _alt(f"{_N}H(?:{_N}M)?(?:{_N}S)?", f"{_N}M(?:{_N}S)?", f"{_N}S")
_DURATION = "P" + _alt(f"{_DUR_DATE}(?:{_DUR_TIME})?", _DUR_TIME, f"{_N}W")

# ------------------------------------------------------------------------------------------------------ addresses
_DEC_OCTET = _alt("25[0-5]", "2[0-4][0-9]", "1[0-9][0-9]", "[1-9][0-9]", "[0-9]")  # 0-255, no leading zero
_IPV4 = rf"{_DEC_OCTET}(?:\.{_DEC_OCTET}){{3}}"

_H16 = "[0-9A-Fa-f]{1,4}"


def _ipv6() -> str:
    """RFC 4291 2.2 text forms: eight 16-bit groups, the last two optionally as a dotted IPv4 address; a single
    "::" stands for one or more zero groups. Built by the number of 16-bit units written after "::"."""

    def tail(units: int) -> str:
        # exactly `units` 16-bit units, written as groups, or as groups then an IPv4 address (two units)
        forms = [f"(?:{_H16}:){{{units - 1}}}{_H16}"]
        if units >= 2:
            forms.append(f"(?:{_H16}:){{{units - 2}}}{_IPV4}")
        return _alt(*forms)

    forms = [tail(8)]  # no compression
    for right in range(8):  # units after "::"; "::" is at least one group, so at most 7 - right before it
        left_max = 7 - right
        left = f"(?:{_H16}(?::{_H16}){{0,{left_max - 1}}})?" if left_max > 0 else ""
        forms.append(left + "::" + (tail(right) if right else ""))
    return _alt(*forms)


_IPV6 = _ipv6()
_UUID = "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"

# RFC 1123 labels: 1-63 letters, digits and hyphens, not starting or ending with a hyphen. No trailing dot.
# The 253-character limit on the whole name is NOT in the regex (it would multiply the DFA): check_format has it.
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = rf"{_LABEL}(?:\.{_LABEL})*"

# Email (practical RFC 5321 subset): dot-atom local part, "@", a host name or a bracketed IPv4 literal.
# Quoted local parts, comments and IPv6/general address literals are not accepted. Lengths: check_format.
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_EMAIL = rf"{_DOT_ATOM}@" + _alt(_HOSTNAME, rf"\[{_IPV4}\]")

# ------------------------------------------------------------------------------------------------- URIs (RFC 3986)
_UNRESERVED = r"A-Za-z0-9._~\-"  # class bodies (hyphen escaped), combined below
_SUB_DELIMS = "!$&'()*+,;="
_PCT = "%[0-9A-Fa-f]{2}"


def _uri_patterns(unreserved: str) -> tuple[str, str]:
    """(URI, URI-reference) over the given unreserved characters: RFC 3986's, or RFC 3987's wider set for IRIs."""

    def chars(extra: str = "") -> str:
        """unreserved / pct-encoded / sub-delims / the characters in `extra`."""
        return _alt(f"[{unreserved}{_SUB_DELIMS}{extra}]", _PCT)

    pchar = chars(":@")
    scheme = "[A-Za-z][A-Za-z0-9+.-]*"
    userinfo = f"{chars(':')}*"
    # host = IP-literal / IPv4address / reg-name; every IPv4address is also a reg-name, so it needs no branch.
    ip_literal = r"\[" + _alt(_IPV6, f"[Vv][0-9A-Fa-f]+\\.[{_UNRESERVED}{_SUB_DELIMS}:]+") + r"\]"
    host = _alt(ip_literal, f"{chars()}*")
    authority = f"(?:{userinfo}@)?{host}(?::[0-9]*)?"
    segment = f"{pchar}*"
    segment_nz = f"{pchar}+"
    segment_nz_nc = f"{chars('@')}+"  # no ":" in a relative path's first segment
    path_abempty = f"(?:/{segment})*"
    path_absolute = f"/(?:{segment_nz}(?:/{segment})*)?"
    path_rootless = f"{segment_nz}(?:/{segment})*"
    path_noscheme = f"{segment_nz_nc}(?:/{segment})*"
    query_or_fragment = _alt(pchar, "[/?]") + "*"
    tail = f"(?:\\?{query_or_fragment})?(?:#{query_or_fragment})?"
    # path-empty is the empty alternative of each hier-part / relative-part.
    hier_part = _alt(f"//{authority}{path_abempty}", path_absolute, path_rootless, "")
    relative_part = _alt(f"//{authority}{path_abempty}", path_absolute, path_noscheme, "")
    uri = f"{scheme}:{hier_part}{tail}"
    return uri, _alt(uri, f"{relative_part}{tail}")


_URI, _URI_REFERENCE = _uri_patterns(_UNRESERVED)
# RFC 3987 ucschar (the planes' last two code points, non-characters, are not told apart: over-approximation)
_IRI, _IRI_REFERENCE = _uri_patterns(_UNRESERVED + r"\u00a0-\ud7ff\uf900-\ufdcf\ufdf0-\uffef\U00010000-\U000efffd")

# RFC 6901 / draft-handrews-relative-json-pointer-01
_JSON_POINTER = "(?:/(?:[^~/]|~[01])*)*"
_RELATIVE_JSON_POINTER = f"(?:0|[1-9][0-9]*)(?:#|{_JSON_POINTER})"
# RFC 6570 (levels 1-4): literals, and expressions of an optional operator and variables with modifiers
_VARSPEC = "(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})(?:\\.?(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2}))*(?::[1-9][0-9]{0,3}|\\*)?"
_URI_TEMPLATE = (
    "(?:[^\\x00-\\x20\"'%<>\\\\^`{|}]|%[0-9A-Fa-f]{2}|\\{[+#./;?&=,!@|]?" + _VARSPEC + "(?:," + _VARSPEC + ")*\\})*"
)


FORMATS: dict[str, str] = {
    "date-time": _DATE_TIME,
    "date": _FULL_DATE,
    "time": _FULL_TIME,
    "duration": _DURATION,
    "email": _EMAIL,
    "hostname": _HOSTNAME,
    "ipv4": _IPV4,
    "ipv6": _IPV6,
    "uuid": _UUID,
    "uri": _URI,
    "uri-reference": _URI_REFERENCE,
    "iri": _IRI,
    "iri-reference": _IRI_REFERENCE,
    "json-pointer": _JSON_POINTER,
    "relative-json-pointer": _RELATIVE_JSON_POINTER,
    "uri-template": _URI_TEMPLATE,
    # any string in the grammar; check_format compiles it with Python's `re` (what jsonschema asserts)
    "regex": "(?s:.*)",
}


def format_regex(name: str) -> str:
    """The regex (for `re.fullmatch` over the decoded string) of a JSON Schema format; KeyError if unknown."""
    try:
        return FORMATS[name]
    except KeyError:
        raise KeyError(f"unknown JSON Schema format {name!r} (known: {', '.join(FORMATS)})") from None


# ------------------------------------------------------------------------------------------------- exact checking
_COMPILED = {name: re.compile(pattern) for name, pattern in FORMATS.items()}
_OFFSET_RE = re.compile(r"([+-])([0-9]{2}):([0-9]{2})")


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _date_ok(date: str) -> bool:
    year, month, day = int(date[0:4]), int(date[5:7]), int(date[8:10])
    return not (month == 2 and day == 29 and not _is_leap(year))  # the regex has every other month length


def _time_ok(time: str) -> bool:
    """A leap second (second 60) must be 23:59:60 in UTC; `time` is a full-time the regex accepted."""
    if time[6:8] != "60":
        return True
    minutes = int(time[0:2]) * 60 + int(time[3:5])
    offset = _OFFSET_RE.search(time)  # absent for "Z"
    if offset is not None:
        sign = 1 if offset.group(1) == "+" else -1
        minutes -= sign * (int(offset.group(2)) * 60 + int(offset.group(3)))
    return minutes % (24 * 60) == 23 * 60 + 59


def _hostname_ok(value: str) -> bool:
    return len(value) <= 253


def _email_ok(value: str) -> bool:
    local, _, domain = value.rpartition("@")  # the regex allows no "@" outside the local part's last one
    if len(local) > 64 or len(value) > 254:
        return False
    return domain.startswith("[") or _hostname_ok(domain)


def _regex_ok(value: str) -> bool:
    try:
        re.compile(value)
    except (re.error, RecursionError, OverflowError):
        return False
    return True


# formats whose regex accepts every string: the grammar leaves them to the end check
CHECK_ONLY = frozenset({"regex"})

_EXTRA_CHECKS = {
    "regex": _regex_ok,
    "date": _date_ok,
    "date-time": lambda v: _date_ok(v[:10]) and _time_ok(v[11:]),
    "time": _time_ok,
    "hostname": _hostname_ok,
    "email": _email_ok,
}


def check_format(name: str, value: str) -> bool:
    """Whether `value` is exactly a valid `name` (regex plus the rules the regex leaves out); KeyError if unknown."""
    if not isinstance(value, str):
        raise TypeError(f"check_format takes a str value, not {type(value).__name__}")
    if name not in _COMPILED:
        format_regex(name)  # raises the KeyError
    pattern = _COMPILED[name]
    if pattern.fullmatch(value) is None:
        return False
    extra = _EXTRA_CHECKS.get(name)
    return extra is None or extra(value)
