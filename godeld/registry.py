"""Named registries filled by the register_* hooks. Each remembers which plugin registered what and
rejects a second registration of a name, so core code asks a registry and never names a plugin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Iterator, TypeVar

T = TypeVar("T")


class DuplicateRegistration(Exception):
    pass


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}

    def add(self, name: str, obj: T, *, plugin: str) -> None:
        if not isinstance(name, str) or not name:
            raise DuplicateRegistration(f"{self.kind} names must be non-empty strings, got {name!r}")
        if name in self._items:
            raise DuplicateRegistration(f"{self.kind} {name!r} is already registered by plugin {self._owners[name]!r}")
        self._items[name] = obj
        self._owners[name] = plugin

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, name: str, default: Any = None) -> T | Any:
        return self._items.get(name, default)

    def items(self):
        return self._items.items()

    def keys(self):
        return self._items.keys()

    def names(self) -> list[str]:
        return sorted(self._items)

    def owner(self, name: str) -> str:
        return self._owners[name]


# Registries filled by `register(name, obj)` hooks, by hook name.
NAMED_HOOKS = {
    "register_storage": "storage",
    "register_providers": "providers",
    "register_runtimes": "runtimes",
    "register_strategies": "strategies",
    "register_step_kinds": "step_kinds",
    "register_safety_rules": "safety_rules",
    "register_notifiers": "notifiers",
    "register_skill_sources": "skill_sources",
}


@dataclass
class Registries:
    rpc_methods: Registry = field(default_factory=lambda: Registry("rpc method"))
    storage: Registry = field(default_factory=lambda: Registry("storage backend"))
    providers: Registry = field(default_factory=lambda: Registry("provider"))
    runtimes: Registry = field(default_factory=lambda: Registry("runtime"))
    strategies: Registry = field(default_factory=lambda: Registry("strategy"))
    step_kinds: Registry = field(default_factory=lambda: Registry("step kind"))
    safety_rules: Registry = field(default_factory=lambda: Registry("safety rule"))
    notifiers: Registry = field(default_factory=lambda: Registry("notifier"))
    skill_sources: Registry = field(default_factory=lambda: Registry("skill source"))
    migrations: Registry = field(default_factory=lambda: Registry("migration set"))
