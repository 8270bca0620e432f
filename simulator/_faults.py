"""Fault injection: rules that make the simulator misbehave on purpose, for tests.

A :class:`FaultPlan` is a list of :class:`FaultRule`. It comes from Python, from a TOML file
(``[[fault]]`` tables) or from the API key of a request (``base+kind:param=value``); the package
docstring describes all three.
"""

from __future__ import annotations

import threading
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

# Faults that answer (or refuse to answer) one HTTP request.
RATE_LIMIT = "rate_limit"
SERVER_ERROR = "server_error"
SLOW = "slow"
MALFORMED_JSON = "malformed_json"
LOST_SUBMIT = "lost_submit"
# Faults that decide how a newly submitted task ends.
FAIL_TASK = "fail_task"
NEVER_FINISH = "never_finish"
# A task fault that leaves the task succeeding but reporting other seconds in its usage.
REPORT_USAGE = "report_usage"

HTTP_FAULTS = (RATE_LIMIT, SERVER_ERROR, SLOW, MALFORMED_JSON, LOST_SUBMIT)
TASK_FAULTS = (FAIL_TASK, NEVER_FINISH, REPORT_USAGE)
FAULT_KINDS = HTTP_FAULTS + TASK_FAULTS

SUBMIT = "submit"
POLL = "poll"
VIDEO = "video"
ANY_API = "any"  # submit and poll; video downloads carry no key and are only hit when named
ENDPOINTS = (SUBMIT, POLL, VIDEO, ANY_API)

TASK_FAILURE_CODES = ("DataInspectionFailed", "InternalError")

KEY_FAULT_SEPARATOR = "+"


class FaultConfigError(ValueError):
    """A fault rule, file or key suffix that cannot be understood."""


@dataclass(frozen=True)
class FaultRule:
    """One way to misbehave, and which requests it hits.

    Parameters
    ----------
    kind
        One of ``rate_limit``, ``server_error``, ``slow``, ``malformed_json``, ``lost_submit``,
        ``fail_task``, ``never_finish``, ``report_usage``.
    endpoint
        ``submit``, ``poll``, ``video`` or ``any`` (submit and poll). Task faults and
        ``lost_submit`` always concern submits.
    key
        Only requests with exactly this API key, or every request when ``None``.
    count
        Only the first ``count`` matching requests (``None``: no limit).
    every
        Only every ``every``-th matching request (``None``: each one).
    retry_after
        Seconds sent in the ``Retry-After`` header of a ``rate_limit`` answer.
    seconds
        Delay of a ``slow`` answer.
    code
        Failure code of a ``fail_task`` task: ``DataInspectionFailed`` or ``InternalError``.
    video_duration
        Seconds a ``report_usage`` task reports in ``usage.video_duration`` (a fraction is sent
        as is), instead of the requested duration.
    """

    kind: str
    endpoint: str = ANY_API
    key: str | None = None
    count: int | None = None
    every: int | None = None
    retry_after: float = 1.0
    seconds: float = 1.0
    code: str = "InternalError"
    video_duration: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise FaultConfigError(f"unknown fault {self.kind!r}; known: {', '.join(FAULT_KINDS)}")
        if self.endpoint not in ENDPOINTS:
            raise FaultConfigError(f"unknown endpoint {self.endpoint!r}; use one of {ENDPOINTS}")
        if self.kind == FAIL_TASK and self.code not in TASK_FAILURE_CODES:
            raise FaultConfigError(f"fail_task code must be one of {TASK_FAILURE_CODES}")
        if self.kind == REPORT_USAGE and (self.video_duration is None or self.video_duration < 0):
            raise FaultConfigError("report_usage needs video_duration, zero or more seconds")
        for name in ("count", "every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise FaultConfigError(f"{name} must be at least 1")
        if self.retry_after < 0 or self.seconds < 0:
            raise FaultConfigError("retry_after and seconds cannot be negative")

    @property
    def concerns_submits_only(self) -> bool:
        return self.kind in TASK_FAULTS or self.kind == LOST_SUBMIT

    def applies_to(self, endpoint: str) -> bool:
        """Whether a request to ``endpoint`` is one this rule looks at."""
        if self.concerns_submits_only:
            return endpoint == SUBMIT
        if self.endpoint == ANY_API:
            return endpoint in (SUBMIT, POLL)
        return self.endpoint == endpoint


@dataclass(frozen=True)
class FaultPlan:
    """The fault rules a simulator starts with; rules carried by API keys are added per request."""

    rules: tuple[FaultRule, ...] = ()

    @classmethod
    def from_toml(cls, path: str | Path) -> FaultPlan:
        """Read ``[[fault]]`` tables from a TOML file."""
        with Path(path).open("rb") as handle:
            data = tomllib.load(handle)
        unknown = set(data) - {"fault"}
        if unknown:
            raise FaultConfigError(f"unknown top-level entries {sorted(unknown)}; use [[fault]]")
        return cls(rules=tuple(_rule_from_mapping(entry) for entry in data.get("fault", [])))


_RULE_FIELDS = {f.name: f.type for f in fields(FaultRule)}


def _rule_from_mapping(entry: dict) -> FaultRule:
    unknown = set(entry) - set(_RULE_FIELDS)
    if unknown:
        raise FaultConfigError(f"unknown fault settings {sorted(unknown)}")
    if "kind" not in entry:
        raise FaultConfigError("every fault needs a kind")
    return FaultRule(**entry)


def split_key(key: str) -> tuple[str, tuple[FaultRule, ...]]:
    """Split an API key into its base and the fault rules it carries.

    ``demo+rate_limit:endpoint=poll:count=2+fail_task:code=DataInspectionFailed`` is the key
    ``demo`` with two rules; the rules only apply to requests sent with that exact key.
    """
    base, *specs = key.split(KEY_FAULT_SEPARATOR)
    rules = []
    for spec in specs:
        kind, *settings = spec.split(":")
        values: dict[str, object] = {"kind": kind, "key": key}
        for setting in settings:
            name, sep, raw = setting.partition("=")
            if not sep or name not in _RULE_FIELDS or name in ("kind", "key"):
                raise FaultConfigError(f"cannot read fault setting {setting!r} in {spec!r}")
            values[name] = _convert(name, raw)
        rules.append(FaultRule(**values))  # type: ignore[arg-type]
    return base, tuple(rules)


def _convert(name: str, raw: str) -> object:
    try:
        if name in ("count", "every"):
            return int(raw)
        if name in ("retry_after", "seconds", "video_duration"):
            return float(raw)
    except ValueError:
        raise FaultConfigError(f"fault setting {name} needs a number, not {raw!r}") from None
    return raw


@dataclass
class FaultCounter:
    """Counts the requests each rule has seen, to apply ``count`` and ``every``; thread-safe."""

    _seen: dict[FaultRule, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hits(self, rule: FaultRule) -> bool:
        """Record one matching request for ``rule`` and say whether the rule fires on it."""
        with self._lock:
            seen = self._seen.get(rule, 0) + 1
            self._seen[rule] = seen
        if rule.count is not None and seen > rule.count:
            return False
        return rule.every is None or seen % rule.every == 0

    def firing(
        self, rules: tuple[FaultRule, ...], endpoint: str, key: str | None
    ) -> list[FaultRule]:
        """The rules that fire on one request to ``endpoint`` sent with ``key``, in order."""
        return [
            rule
            for rule in rules
            if rule.applies_to(endpoint) and rule.key in (None, key) and self.hits(rule)
        ]
