"""The search space: `hydra.sweeper.params` (and sweep syntax on the command line) as Optuna distributions.

The syntax is Hydra's own sweep grammar, so the presets read as they did with hydra-optuna-sweeper:
`interval(1e-4, 1e-2)`, `tag(log, interval(1e-5, 1e-2))`, `tag(int, interval(1, 9))`, `choice(32, 64)`, `range(1, 9, 2)`, or
`a,b,c` on the command line. A plain value is not searched: every trial gets it.
"""

from __future__ import annotations

from typing import Any, Mapping

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from genlab.errors import ConfigError, first_line


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def distribution(key: str, sweep: Any) -> BaseDistribution:
    """One Hydra sweep (ChoiceSweep, IntervalSweep, RangeSweep) as an Optuna distribution; refused by key."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    if isinstance(sweep, ChoiceSweep):
        choices = tuple(sweep.list)
        if not choices:
            raise ConfigError(f"hydra.sweeper.params.{key}: choice() needs at least one value")
        return CategoricalDistribution(choices)
    if isinstance(sweep, IntervalSweep):
        log = "log" in sweep.tags
        low, high = sweep.start, sweep.end
        if not low < high or (log and low <= 0):
            expected = "0 < low < high for a log interval" if log else "low < high"
            raise ConfigError(f"hydra.sweeper.params.{key}=interval({low}, {high}) is not valid: it must have {expected}")
        if "int" in sweep.tags:  # Hydra reads interval bounds as floats; tag(int, interval(a, b)) asks for integers
            return IntDistribution(int(low), int(high), log=log)
        return FloatDistribution(float(low), float(high), log=log)
    if isinstance(sweep, RangeSweep):
        values = list(_range_values(sweep.start, sweep.stop, sweep.step))
        if not values:
            raise ConfigError(f"hydra.sweeper.params.{key}=range({sweep.start}, {sweep.stop}, {sweep.step}) is empty")
        if all(is_integer(v) for v in (sweep.start, sweep.stop, sweep.step)):
            return IntDistribution(int(values[0]), int(values[-1]), step=int(sweep.step))
        return FloatDistribution(float(values[0]), float(values[-1]), step=float(sweep.step))
    raise ConfigError(f"hydra.sweeper.params.{key}={sweep!r} is not a search space: use interval(), choice() or range()")


def _range_values(start: float, stop: float, step: float) -> list[float]:
    """Hydra's range(): from start up to, not including, stop."""
    values, value = [], start
    while (step > 0 and value < stop) or (step < 0 and value > stop):
        values.append(value)
        value += step
    return values


class SearchSpace:
    """What each trial varies (Optuna distributions by override key) and what every trial fixes."""

    def __init__(self, distributions: dict[str, BaseDistribution], fixed: list[str]) -> None:
        self.distributions, self.fixed = distributions, fixed

    @classmethod
    def parse(cls, params: Mapping[str, Any] | None, arguments: list[str]) -> "SearchSpace":
        """`hydra.sweeper.params` (key -> sweep text), then the command line's overrides, which win by key."""
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parser = OverridesParser.create()
        distributions: dict[str, BaseDistribution] = {}
        fixed: dict[str, str] = {}
        lines = [f"{key}={value}" for key, value in (params or {}).items()] + list(arguments)
        for line in lines:
            try:
                override = parser.parse_override(line)
            except Exception as error:
                raise ConfigError(f"hydra.sweeper.params: cannot read {line!r}: {first_line(error)}") from error
            key = override.get_key_element()
            distributions.pop(key, None)
            fixed.pop(key, None)
            if override.is_sweep_override():
                distributions[key] = distribution(key, override.value())
            else:
                fixed[key] = line
        if not distributions:
            raise ConfigError("hydra.sweeper.params is empty: name at least one key to search, e.g. optimizer.lr: interval(1e-4, 1e-2)")
        return cls(distributions, list(fixed.values()))


def override_value(value: Any) -> str:
    """A sampled value as Hydra's override grammar reads it back unchanged (strings with syntax quoted)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int) or value is None:
        return "null" if value is None else str(value)
    text = str(value)
    if text and all(c.isalnum() or c in "_-./@" for c in text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def trial_overrides(params: Mapping[str, Any]) -> list[str]:
    return [f"{key}={override_value(value)}" for key, value in params.items()]
