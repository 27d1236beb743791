"""What a step kind is, and what the engine hands it when one of its steps runs.

A step kind is registered with `register_step_kinds(register)` as `register(name, kind)`:

    class MyKind:
        fields = frozenset({"url"})   # YAML keys this kind adds to a step (validated)
        resumable = False             # see below
        async def run(self, step: StepRun) -> dict:   # the step's outputs
            ...                                        # raise StepFailed("why") to fail the attempt

The engine retries a failed attempt per the step's `retry`, applies the step's timeout by
cancelling `run`, and cancels it when the workflow is cancelled or godeld stops; `run` must clean
up on cancellation (kill what it started). `step.data` is persisted with the step (`await
step.save()`): put there what a restarted godeld needs — a pid, an agent id, a child run id. After
a crash, a step that was running is retried as its next attempt, unless its kind is `resumable`:
then `run` is called again for the same attempt with the saved `data` and picks up where it was
(an approval keeps waiting, a sub-workflow re-attaches to its child run). A kind that only waits
sets `uses_slot = False`: its steps do not count against the parallelism limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol


class StepFailed(Exception):
    """The attempt failed; `output` (e.g. a command's output) is kept with the error."""

    def __init__(self, message: str, *, output: Any = None, retry: bool = True):
        super().__init__(message)
        self.output = output
        self.retry = retry  # False: retrying cannot help (a rejection, a bad reference)


class StepKind(Protocol):
    fields: frozenset[str]
    resumable: bool  # optional, default False
    uses_slot: bool  # optional, default True

    async def run(self, step: "StepRun") -> dict[str, Any]: ...


@dataclass
class StepRun:
    """One attempt of one step, as a step kind sees it."""

    daemon: Any
    run_id: str
    workflow_name: str
    step_id: str
    kind: str
    attempt: int
    spec: dict[str, Any]  # the step's kind-specific fields, {{...}} already filled in
    outputs_declared: list[str]
    env: dict[str, str]  # workflow env + step env (rendered)
    cwd: Path  # where relative paths of the workflow are resolved
    repo: str | None  # the run's default repository for agent steps
    variables: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False  # a resumable step re-entered after a restart
    feedback: str | None = None  # what the quality gates said about the previous attempt
    _save: Callable[[], Awaitable[None]] | None = None
    _publish: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None

    async def save(self) -> None:
        """Persist `data` now (before starting anything a restart must find)."""
        if self._save:
            await self._save()

    async def publish(self, type_: str, data: dict[str, Any]) -> None:
        """An event about this step; workflowId and stepId are added."""
        if self._publish:
            await self._publish(type_, data)

    @property
    def meta(self) -> dict[str, str]:
        return {"workflowId": self.run_id, "stepId": self.step_id}
