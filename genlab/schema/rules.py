"""What a config value may be: a rule is a test, the words that name what it accepts, and two values it
refuses (one of the wrong type, one out of range) so that a test can walk every declared key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from genlab.errors import is_integer, is_number

# a value of the wrong type for every rule that wants a number, a boolean or a name from a list
NOT_A_NUMBER = "abc"


@dataclass(frozen=True)
class Rule:
    """`accepts(value)` says whether a value may stand; `expected` completes "it must be ..." in the refusal."""

    accepts: Callable[[Any], bool]
    expected: str
    # values the rule refuses, for the test that feeds every key a bad value: of the wrong type, out of range
    refused: tuple[Any, ...] = field(default=())

    def __call__(self, value: Any) -> bool:
        return self.accepts(value)


def integer(minimum: int | None = None, maximum: int | None = None, also: Sequence[int] = (), words: str = "") -> Rule:
    """A whole number in [minimum, maximum], or one of `also` (-1: unlimited)."""

    def accepts(value: Any) -> bool:
        if not is_integer(value):
            return False
        return value in also or ((minimum is None or value >= minimum) and (maximum is None or value <= maximum))

    if not words:
        words = {None: "an integer", 0: "an integer >= 0", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
        if maximum is not None:
            words = f"an integer in [{minimum}, {maximum}]"
        if also:
            words += " (or " + " or ".join(map(str, also)) + ")"
    below = None if minimum is None else next(v for v in range(minimum - 1, minimum - 10, -1) if v not in also)
    return Rule(accepts, words, (NOT_A_NUMBER, 1.5, *(() if below is None else (below,))))


def number(minimum: float | None = None, above: float | None = None, maximum: float | None = None,
           below: float | None = None, words: str = "") -> Rule:
    """A real number (a whole one too) within the bounds given: [minimum, ...], (above, ...], [..., maximum], [..., below)."""

    def accepts(value: Any) -> bool:
        return is_number(value) and (minimum is None or value >= minimum) and (above is None or value > above) and \
            (maximum is None or value <= maximum) and (below is None or value < below)

    if not words:
        low = f"[{minimum}" if minimum is not None else f"({above}" if above is not None else "(-inf"
        high = f"{maximum}]" if maximum is not None else f"{below})" if below is not None else "inf)"
        words = "a positive number" if (above == 0 and maximum is None and below is None) else \
            "a number >= 0" if (minimum == 0 and maximum is None and below is None) else f"a number in {low}, {high}"
    outside = [v for v in ((minimum - 1) if minimum is not None else None, above, (maximum + 1) if maximum is not None else None,
                           below) if v is not None]
    return Rule(accepts, words, (NOT_A_NUMBER, *outside[:1]))


def boolean() -> Rule:
    return Rule(lambda value: isinstance(value, bool), "true or false", ("maybe", 1))


def choice(*options: Any) -> Rule:
    return Rule(lambda value: isinstance(value, (str, int)) and not isinstance(value, bool) and value in options,
                " or ".join(map(str, options)) if len(options) == 2 else "one of " + ", ".join(map(str, options)), ("nope",))


def text(non_empty: bool = True) -> Rule:
    """A string (a path, a name); an empty one is refused, since it names nothing."""
    return Rule(lambda value: isinstance(value, str) and (bool(value.strip()) or not non_empty),
                "a non-empty string" if non_empty else "a string", (["a", "list"],))


def mapping() -> Rule:
    """A mapping whose keys a class checks (a sampler's options, compile options)."""
    return Rule(lambda value: isinstance(value, dict), "a mapping like {key: value}", ("abc", 3))


def sequence(of: Rule | None = None, length: int | None = None, words: str = "a list") -> Rule:
    def accepts(value: Any) -> bool:
        return isinstance(value, list) and (length is None or len(value) == length) and \
            (of is None or all(of(item) for item in value))

    refused: tuple[Any, ...] = ("abc",)
    if length is not None:
        refused += ([0.5] * (length - 1),)
    return Rule(accepts, words, refused)


def either(*rules: Rule, words: str = "") -> Rule:
    """A value one of `rules` accepts."""
    refused = tuple(v for r in rules for v in r.refused if not any(other(v) for other in rules))
    return Rule(lambda value: any(rule(value) for rule in rules), words or " or ".join(r.expected for r in rules), refused)


def nullable(rule: Rule) -> Rule:
    """null (off, or left to a default) or a value `rule` accepts."""
    return Rule(lambda value: value is None or rule(value), f"null or {rule.expected}",
                tuple(v for v in rule.refused if v is not None))


def anything() -> Rule:
    """Not checked here: a value genlab computes (a run's folder) or one its own class checks."""
    return Rule(lambda value: True, "anything")


def device() -> Rule:
    """A torch device name genlab runs on: auto, cpu, cuda, cuda:<index> or mps (the machine is checked apart)."""

    def accepts(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        kind, _, index = value.partition(":")
        return value in ("auto", "cpu", "cuda", "mps") or (kind == "cuda" and index.isdigit())

    return Rule(accepts, "auto, cpu, cuda, cuda:<index> or mps", ("gpu0", 3))
