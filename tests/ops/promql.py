"""Just enough of PromQL to say which metrics an expression reads, and how.

No PromQL parser is on PyPI in a state we would depend on and ``promtool`` cannot be
had offline, so this tokenizer does the one job the rule and dashboard checks need:
for every metric selector, its name and the function that directly encloses it
(``rate``, ``histogram_quantile`` ...).  String literals, label matchers ``{...}``,
ranges ``[5m]`` and the label lists of ``by``/``without``/``on``/``ignoring``/
``group_left``/``group_right`` are skipped, so label names are never taken for metrics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
OPERATORS = {"and", "or", "unless", "offset", "atan2"}
# Modifiers followed by a parenthesised label list (not a function call).
LABEL_LISTS = KEYWORDS - {"bool"}
TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<matchers>\{[^}]*\})
  | (?P<range>\[[^\]]*\])
  | (?P<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<open>\()
  | (?P<close>\))
  | (?P<other>\S)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Selector:
    name: str
    # The function or aggregation whose argument the selector is; None at top level.
    enclosing: str | None


def selectors(expr: str) -> list[Selector]:
    tokens = [(m.lastgroup, m.group()) for m in TOKEN.finditer(expr)]
    found: list[Selector] = []
    stack: list[str | None] = []  # what each open parenthesis belongs to
    skip_list = False
    # An aggregation written ``sum by (label) (expr)``: its argument's parenthesis is
    # the one after the label list.
    pending: str | None = None
    for i, (kind, text) in enumerate(tokens):
        following = tokens[i + 1] if i + 1 < len(tokens) else (None, "")
        if kind == "open":
            previous = tokens[i - 1] if i else (None, "")
            if skip_list:
                stack.append("(labels)")
                skip_list = False
            elif pending is not None:
                stack.append(pending)
                pending = None
            elif previous[0] == "ident" and previous[1] not in OPERATORS:
                stack.append(previous[1])
            else:
                stack.append(stack[-1] if stack else None)  # grouping parentheses
        elif kind == "close":
            stack.pop()
        elif kind == "ident":
            if stack and stack[-1] == "(labels)":
                continue
            if text in LABEL_LISTS:
                skip_list = following[0] == "open"
                continue
            if following[0] == "ident" and following[1] in ("by", "without"):
                pending = text
                continue
            if text in KEYWORDS or text in OPERATORS or following[0] == "open":
                continue  # a keyword, or a function or aggregation's name
            found.append(Selector(text, stack[-1] if stack else None))
    assert not stack, f"unbalanced parentheses in {expr!r}"
    return found


# The names a family's samples take, by its type (the text exposition format).
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
}
RATES = {"rate", "irate", "increase"}


def problems(expr: str, exported: dict[str, str], external: set[str]) -> list[str]:
    """What is wrong with how ``expr`` reads the ``exported`` families (name -> type)."""
    samples = {
        family + suffix: (family, kind)
        for family, kind in exported.items()
        for suffix in SUFFIXES.get(kind, ("",))
    }
    found: list[str] = []
    for selector in selectors(expr):
        if selector.name in external:
            continue
        if selector.name not in samples:
            found.append(f"{selector.name}: no such metric is exported")
            continue
        kind = samples[selector.name][1]
        if kind in ("counter", "histogram") and selector.enclosing not in RATES:
            found.append(f"{selector.name}: a {kind} read without rate/increase")
        if kind == "gauge" and selector.enclosing in RATES:
            found.append(f"{selector.name}: a gauge under {selector.enclosing}()")
        if selector.name.endswith("_bucket") and "histogram_quantile" not in expr:
            found.append(f"{selector.name}: buckets outside histogram_quantile")
    return found
