"""JSON Schema formats (`genlab.constraints.json_schema.formats`): examples, oracles, and regex/DFA agreement."""

from __future__ import annotations

import datetime
import functools
import ipaddress
import re
import time
import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from genlab.automata.regex import compile_regex
from genlab.constraints.json_schema.formats import CHECK_ONLY, FORMATS, check_format, format_regex

MAX_STATES = 5000


@functools.cache
def dfa(name: str):
    return compile_regex(FORMATS[name], max_states=MAX_STATES)


def regex_matches(name: str, s: str) -> bool:
    """re.fullmatch of the format's regex, after checking that the compiled DFA says the same."""
    expected = re.fullmatch(FORMATS[name], s) is not None
    assert dfa(name).accepts(s.encode("utf-8")) == expected, (name, s)
    return expected


# Exactly valid: regex, DFA and check_format all accept.
VALID = {
    "date": ["2024-02-29", "2000-02-29", "0000-02-29", "2023-02-28", "1999-12-31", "0001-01-01", "9999-04-30"],
    "time": [
        "23:59:60Z",
        "00:00:00Z",
        "12:34:56.789+05:30",
        "23:59:59.0z",
        "08:30:00-00:00",
        "01:29:60+01:30",
        "15:59:60-08:00",
        "00:59:60+01:00",
        "00:00:00.000000001+23:59",
    ],
    "date-time": [
        "2024-02-29T12:00:00Z",
        "1985-04-12t23:20:50.52z",
        "1996-12-19T16:39:57-08:00",
        "1990-12-31T23:59:60Z",
        "1990-12-31T15:59:60-08:00",
        "1937-01-01T12:00:27.87+00:20",
    ],
    "duration": [
        "P1Y",
        "P1M",
        "P1D",
        "PT1H",
        "PT1M",
        "PT1S",
        "P2W",
        "P0D",
        "PT0S",
        "P1Y2M3DT4H5M6S",
        "P1Y1D",
        "P1MT1S",
        "PT1H1S",
        "P10Y100D",
        "P1DT12H",
        "P123456789W",
    ],
    "email": [
        "joe.bloggs@example.com",
        "a@b",
        "x@[127.0.0.1]",
        "te~st@example.com",
        "!#$%&'*+-/=?^_`{|}~@x.y",
        "first.last@sub-domain.example-host.org",
        "user+tag@1.2.3.4",
        "a@" + "b" * 63 + ".c",
        "l" * 64 + "@example.com",
    ],
    "hostname": [
        "example",
        "www.example.com",
        "a",
        "xn--bcher-kva.example",
        "1host",
        "a-b.c-d",
        "a" * 63,
        ".".join(["a" * 63] * 3) + "." + "b" * 61,
        "123",
        "A.B.C",
    ],
    "ipv4": ["0.0.0.0", "255.255.255.255", "192.168.1.1", "10.0.0.10", "1.2.3.4", "199.249.200.250"],
    "ipv6": [
        "::",
        "::1",
        "1::",
        "fe80::1:2:3:4:5:6",
        "::ffff:1.2.3.4",
        "1:2:3:4:5:6:7:8",
        "1:2:3:4:5:6:7::",
        "::2:3:4:5:6:7:8",
        "FFFF:ffff:0:0:0:0:0:1",
        "2001:db8::ff00:42:8329",
        "::1.2.3.4",
        "1:2:3:4:5:6:1.2.3.4",
        "1::1.2.3.4",
        "1:2:3:4:5::255.255.255.255",
        "abcd::ef01",
    ],
    "uuid": [
        "2eb8aa08-aa98-11ea-b4aa-73b441d16380",
        "2EB8AA08-AA98-11EA-B4AA-73B441D16380",
        "00000000-0000-0000-0000-000000000000",
        "99c17cbb-656f-564a-940f-1a4568f03487",
        "2eb8AA08-aa98-11Ea-B4aa-73b441d16380",
    ],
    "uri": [
        "http://example.com",
        "https://user:pw@example.com:8080/a/b?q=1&r=2#frag",
        "urn:isbn:0451450523",
        "mailto:joe@example.com",
        "file:///etc/passwd",
        "http://[::1]:80/",
        "http://[v7.a:b]/",
        "a:",
        "x+y-z.1:%20%2F",
        "http://1.2.3.4",
        "http://a.b/%7Efoo?%41#%42/?",
        "tel:+1-816-555-1212",
        "http://example.com:/",
        "ldap://[2001:db8::7]/c=GB?objectClass?one",
        "foo://@/",
    ],
    "uri-reference": [
        "",
        "#",
        "?q",
        "/abs/path",
        "rel/path",
        "//host",
        "../up",
        "./a:b",
        "a/b:c",
        "http://example.com/x",
        "%41bc",
        "#frag/?",
        "//[::ffff:1.2.3.4]:1/",
    ],
    "iri": ["http://例え.jp/パス?q=値#frag", "urn:isbn:0451450523", "mailto:zoë@example.org", "http://x/%41"],
    "iri-reference": ["", "/パス", "../up", "#frag", "http://x/é"],
    "json-pointer": ["", "/", "/a", "/a~0b/c~1d/0", "/é/ "],
    "relative-json-pointer": ["0", "1/a/b", "0#", "12/0"],
    "uri-template": ["", "http://x/{id}", "{+path}/here", "/search{?q,lang}", "{var:3}{list*}", "%20{a.b}"],
    "regex": ["", "a+", "^[a-z]{2,3}$", "(?:x|y)*", "\\d"],
}

# Rejected by the regex (and so by the DFA and check_format).
INVALID = {
    "date": [
        "2024-2-29",
        "2024-13-01",
        "2024-00-10",
        "2024-04-31",
        "2024-02-30",
        "2024-01-00",
        "24-01-01",
        "2024/01/01",
        "20240101",
        "2024-01-01T00:00:00Z",
        "२०२४-01-01",
        "２０２４-01-01",
        " 2024-01-01",
        "",
    ],
    "time": [
        "24:00:00Z",
        "23:60:00Z",
        "23:59:61Z",
        "12:00:00",
        "12:00Z",
        "1:00:00Z",
        "12:00:00+24:00",
        "12:00:00+05:60",
        "12:00:00.Z",
        "12:00:00+0530",
        "12:00:00 Z",
        "١٢:00:00Z",
    ],
    "date-time": [
        "2024-01-01 12:00:00Z",
        "2024-01-01T12:00:00",
        "2024-01-01",
        "2024-01-01X12:00:00Z",
        "2024-04-31T00:00:00Z",
        "2024-01-01T24:00:00Z",
    ],
    "duration": [
        "P",
        "PT",
        "P1YT",
        "PT1D",
        "P1W1D",
        "P1Y2W",
        "1Y",
        "P1.5Y",
        "P1H",
        "P1S",
        "PT1Y",
        "P1D1M",
        "PT1S1M",
        "P-1D",
        "p1D",
        "P1DT",
        "PT1H2D",
        "P1M1Y",
    ],
    "email": [
        "plainaddress",
        "@example.com",
        "joe@",
        "joe..bloggs@example.com",
        ".joe@example.com",
        "joe.@example.com",
        "joe@-example.com",
        "joe@example.com.",
        "joe@exa_mple.com",
        "a@b@c",
        "joe@[1.2.3.256]",
        "joe@[::1]",
        '"quoted"@example.com',
        "jöe@example.com",
        "joe bloggs@x.y",
    ],
    "hostname": ["", "-a", "a-", "a..b", ".a", "a.", "a_b", "a" * 64, "a.-b.c", "ex ample", "bücher.de", "a.b-"],
    "ipv4": [
        "1.2.3.04",
        "01.2.3.4",
        "256.0.0.0",
        "1.2.3",
        "1.2.3.4.5",
        "1.2.3.",
        "1..2.3",
        "00.0.0.0",
        "1.2.3.4 ",
        "0x1.2.3.4",
        "١.2.3.4",
        "300.1.1.1",
        "1.2.3.-1",
    ],
    "ipv6": [
        "",
        ":",
        ":::",
        "1:2:3:4:5:6:7:8:9",
        "fe80::1:2:3:4:5:6:7",
        "1::2::3",
        "12345::",
        "g::",
        ":1::",
        "1:",
        "1:2:3:4:5:6:7",
        "::ffff:1.2.3.04",
        "1:2:3:4:5:6:7:1.2.3.4",
        "::1.2.3",
        "fe80::1%eth0",
        "[::1]",
        "1.2.3.4",
        "::1.2.3.4:1",
        "1::2:3:4:5:6:7:8",
    ],
    "uuid": [
        "2eb8aa08aa9811eab4aa73b441d16380",
        "{2eb8aa08-aa98-11ea-b4aa-73b441d16380}",
        "2eb8aa08-aa98-11ea-b4aa-73b441d1638",
        "2eb8aa08-aa98-11ea-b4aa-73b441d16380a",
        "2eb8aa08-aa98-11ea-b4aa_73b441d16380",
        "ge b8aa08-aa98-11ea-b4aa-73b441d16380",
        "urn:uuid:2eb8aa08-aa98-11ea-b4aa-73b441d16380",
        "2eb8aa0-8aa98-11ea-b4aa-73b441d16380",
    ],
    "uri": [
        "",
        "//example.com",
        "/path",
        "rel",
        "1http://x",
        "http://exa mple.com",
        "http://example.com/%G0",
        "http://example.com/%2",
        "http://ex\u00e4mple.com",
        "http://[::1",
        "http://[1:2]/",
        "http://a:b:c/",
        "http://x/#a#b",
        "ht_tp://x",
        "http://x/\\",
        "http://x/<>",
        "http://x/{}",
        ":no-scheme",
    ],
    "uri-reference": [" ", "a b", "%zz", "#a#b", "http://x/^", ":a", "http://[::1", "\u00e9", "a:b c"],
    "iri": ["not an iri", "/relative", "http://x/a b", "%zz:x", "http://x/\x7f"],
    "iri-reference": ["a b", "#a#b", "%zz"],
    "json-pointer": ["a", "/a~2", "/~", "#/a"],
    "relative-json-pointer": ["", "/a", "01/a", "-1/a", "0##"],
    "uri-template": ["{", "}", "{a", "{a b}", "{?}", "a b", "{var:0}", "{var:12345}"],
    "regex": [],
}

# Accepted by the regex (an over-approximation) but rejected by check_format.
REGEX_ONLY = {
    "date": ["2023-02-29", "1900-02-29", "2100-02-29", "0001-02-29"],
    "time": ["22:59:60Z", "23:58:60Z", "23:59:60+01:00", "00:59:60-01:00"],
    "date-time": ["2023-02-29T00:00:00Z", "2024-01-01T12:00:60Z"],
    "hostname": [".".join(["a" * 63] * 4)],  # 255 characters
    "email": [
        "l" * 65 + "@example.com",
        "a@" + ".".join(["b" * 63] * 4),
        "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 60,
    ],
    "regex": ["[a-", "(", "*a", "a{2,1}"],  # the grammar takes any string; Python's `re` decides
}


def _cases(table):
    return [pytest.param(name, s, id=f"{name}:{s[:40]!r}") for name, items in table.items() for s in items]


def test_every_format_has_examples():
    assert set(VALID) == set(INVALID) == set(FORMATS)


@pytest.mark.parametrize("name", list(FORMATS))
def test_compiles_small_and_fast(name):
    start = time.perf_counter()
    compiled = compile_regex(format_regex(name), max_states=MAX_STATES)
    assert time.perf_counter() - start < 1.0
    assert compiled.n_states < 1000


def test_format_regex_unknown_name():
    with pytest.raises(KeyError):
        format_regex("no-such-format")
    with pytest.raises(KeyError):
        check_format("no-such-format", "x")
    assert format_regex("ipv4") == FORMATS["ipv4"]


def _ops(items):
    """Every opcode name in a parsed pattern (re's own parser), nested ones and class items included."""
    for op, av in items:
        yield str(op)
        if str(op) == "IN":
            yield from _ops(av)
            continue
        for arg in av if isinstance(av, (tuple, list)) else (av,):
            for sub in arg if isinstance(arg, list) else (arg,):  # a BRANCH holds a list of subpatterns
                if hasattr(sub, "data"):
                    yield from _ops(sub.data)


def test_ops_walker_sees_nested_constructs():
    ops = set(_ops(re._parser.parse(r"(?:a|b[0-9\d])+(?=x)$").data))
    assert {"CATEGORY", "ASSERT", "AT", "BRANCH", "RANGE"} <= ops


@pytest.mark.parametrize("name", list(FORMATS))
def test_patterns_use_plain_ascii_constructs(name):
    pattern = FORMATS[name]
    assert pattern.isascii()
    ops = set(_ops(re._parser.parse(pattern).data))
    if name not in CHECK_ONLY:  # (those take any string)
        assert "LITERAL" in ops and "IN" in ops  # the walk sees inside the groups
    # no anchors, lookarounds, backreferences, conditionals or (Unicode) categories such as \d
    assert not ops & {"AT", "ASSERT", "ASSERT_NOT", "GROUPREF", "GROUPREF_EXISTS", "CATEGORY"}


@pytest.mark.parametrize("name, s", _cases(VALID))
def test_valid(name, s):
    assert regex_matches(name, s)
    assert check_format(name, s)


@pytest.mark.parametrize("name, s", _cases(INVALID))
def test_invalid(name, s):
    assert not regex_matches(name, s)
    assert not check_format(name, s)


@pytest.mark.parametrize("name, s", _cases(REGEX_ONLY))
def test_regex_over_approximation(name, s):
    assert regex_matches(name, s)
    assert not check_format(name, s)


# ---------------------------------------------------------------------------------------------------- oracles
def _ipaddress_ok(cls, s: str) -> bool:
    try:
        cls(s)
    except ValueError:
        return False
    return True


@given(st.ip_addresses(v=4))
def test_ipv4_generated(addr):
    assert regex_matches("ipv4", str(addr)) and check_format("ipv4", str(addr))


@settings(max_examples=500)
@given(st.text(alphabet="0123456789.", max_size=16) | st.text(alphabet="0125.x -", max_size=16))
@example("1.2.3.04")
@example("0.0.0.0")
def test_ipv4_agrees_with_ipaddress(s):
    assert check_format("ipv4", s) == regex_matches("ipv4", s) == _ipaddress_ok(ipaddress.IPv4Address, s)


@settings(max_examples=300)
@given(st.ip_addresses(v=6))
def test_ipv6_generated(addr):
    for text in (addr.compressed, addr.exploded, addr.exploded.upper()):
        assert regex_matches("ipv6", text) and check_format("ipv6", text), text
    # the same address with its last 32 bits as a dotted IPv4 tail
    packed = addr.packed
    tail = str(ipaddress.IPv4Address(packed[12:]))
    head = addr.exploded.rsplit(":", 2)[0]
    assert check_format("ipv6", f"{head}:{tail}")
    assert ipaddress.IPv6Address(f"{head}:{tail}") == addr


@settings(max_examples=500)
@given(st.text(alphabet="0123456789abcdefABCDEFg:.", max_size=45) | st.text(alphabet="01f:.", max_size=20))
@example("fe80::1:2:3:4:5:6")
@example("1:2:3:4:5:6:7::")
def test_ipv6_agrees_with_ipaddress(s):
    assert check_format("ipv6", s) == regex_matches("ipv6", s) == _ipaddress_ok(ipaddress.IPv6Address, s)


def _uuid_ok(s: str) -> bool:
    try:
        return str(uuid.UUID(s)) == s.lower()
    except ValueError:
        return False


@given(st.uuids())
def test_uuid_generated(u):
    for text in (str(u), str(u).upper()):
        assert regex_matches("uuid", text) and check_format("uuid", text)


@settings(max_examples=300)
@given(st.lists(st.sampled_from("0123456789abcdefABCDEFg-"), min_size=32, max_size=37).map("".join))
def test_uuid_agrees_with_uuid_module(s):
    assert check_format("uuid", s) == regex_matches("uuid", s) == _uuid_ok(s)


def _date_ok(s: str) -> bool:
    try:
        datetime.date.fromisoformat(s)
    except ValueError:
        return False
    return True


@given(st.dates())
def test_date_generated(d):
    assert regex_matches("date", d.isoformat()) and check_format("date", d.isoformat())


@settings(max_examples=500)
@given(st.integers(1, 9999), st.integers(0, 13), st.integers(0, 32))
@example(2023, 2, 29)
@example(2024, 2, 29)
@example(1900, 2, 29)
@example(2000, 2, 29)
def test_date_agrees_with_datetime(y, m, d):
    s = f"{y:04d}-{m:02d}-{d:02d}"  # YYYY-MM-DD shaped: fromisoformat reads exactly these as RFC 3339 does
    assert check_format("date", s) == _date_ok(s)
    assert check_format("date-time", s + "T00:00:00Z") == _date_ok(s)


_offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: datetime.timezone(datetime.timedelta(minutes=m)))


@given(st.datetimes(timezones=_offsets), st.sampled_from(["T", "t"]))
def test_date_time_generated(dt, sep):
    text = dt.isoformat(sep=sep)
    if text.endswith("+00:00"):
        text = text[:-6] + "Z"
    assert regex_matches("date-time", text) and check_format("date-time", text), text
    assert regex_matches("time", text[11:]) and check_format("time", text[11:]), text


@given(st.text(alphabet="PYMWDTHS0123.", max_size=14))
@example("P1Y2M3DT4H5M6S")
def test_duration_shapes(s):
    # independent reading: P, then either nW, or date designators in order Y M D and/or T + time in order H M S
    def components(part: str, order: str) -> bool:
        found = re.findall(r"([0-9]+)([A-Z])", part)
        if "".join(n + u for n, u in found) != part or not found:
            return False
        units = [u for _, u in found]
        return (
            all(u in order for u in units) and units == sorted(units, key=order.index) and len(set(units)) == len(units)
        )

    expected = False
    if s.startswith("P"):
        body = s[1:]
        if re.fullmatch("[0-9]+W", body):
            expected = True
        else:
            date, t, tm = body.partition("T")
            expected = (not date or components(date, "YMD")) and (not t or components(tm, "HMS")) and bool(date or t)
    assert check_format("duration", s) == regex_matches("duration", s) == expected


# ----------------------------------------------------------------------------------- regex and DFA agree everywhere
_NEARBY = "aZ09.-:/@[]%?#+_~!$&'()*,;=TtZz x\u00e9\u0661"


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
@pytest.mark.parametrize("name", list(FORMATS))
def test_dfa_agrees_with_re_on_mutations(name, data):
    base = data.draw(st.sampled_from(VALID[name] + INVALID[name] + REGEX_ONLY.get(name, [])))
    s = base
    for _ in range(data.draw(st.integers(0, 3))):
        i = data.draw(st.integers(0, len(s)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        c = data.draw(st.sampled_from(_NEARBY))
        if op == "insert":
            s = s[:i] + c + s[i:]
        elif op == "delete":
            s = s[:i] + s[i + 1 :]
        else:
            s = s[:i] + c + s[i + 1 :]
    regex_matches(name, s)  # asserts the DFA agrees


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.data())
@pytest.mark.parametrize("name", list(FORMATS))
def test_dfa_accepts_what_re_generates(name, data):
    # hypothesis draws from the IRIs' wide Unicode classes slowly: their URI twins cover the same structure
    pattern = FORMATS[name.replace("iri", "uri")]
    s = data.draw(st.from_regex(pattern, fullmatch=True))
    assert dfa(name).accepts(s.encode("utf-8")), s
