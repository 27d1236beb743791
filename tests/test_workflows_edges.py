"""Review tests of the workflow engine: behaviour the docs promise (docs/workflows.md, docs/rpc.md
"## Workflows"), against a real godeld: races, cancellation, failures of kinds, onFailure."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml

from godelctl.client import RpcError
from tests.agent_helpers import events_of
from tests.test_godelctl import ctl
from tests.test_workflows import run, steps, wait_run, wait_step

ODD_KIND = '''
import trio
from godeld import hookimpl
from godeld.workflows.kinds import StepFailed


class Boom(BaseException):
    pass


class OddKind:
    fields = frozenset({"mode"})

    async def run(self, step):
        mode = step.spec.get("mode")
        if mode == "tooslow":
            raise trio.TooSlowError()  # e.g. from the kind's own fail_after
        if mode == "base":
            raise Boom("a BaseException that is not Cancelled")
        return {"ok": True}


@hookimpl
def register_step_kinds(register):
    register("odd", OddKind())
'''


def wait_until(pred, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def alive(proc) -> bool:
    return proc.proc is not None and proc.proc.poll() is None


# -- retries, resume -----------------------------------------------------------------------------


def test_resume_gives_a_fresh_retry_budget(godeld, home):
    proc = godeld().start()
    marks = home / "marks"
    wf = {"name": "budget", "steps": [{"id": "x", "retry": {"maxAttempts": 2, "delayMs": 10},
                                        "run": f"echo $GODEL_ATTEMPT >> {marks}; exit 1"}]}
    run_id = run(proc, wf)
    rec = wait_run(proc, run_id)
    assert rec["state"] == "failed" and steps(rec)["x"]["attempts"] == 2
    proc.call("workflows.resume", {"id": run_id})
    rec = wait_run(proc, run_id)
    assert rec["state"] == "failed" and steps(rec)["x"]["attempts"] == 4
    assert marks.read_text().split() == ["1", "2", "3", "4"]
    # and once more: again exactly maxAttempts new attempts
    proc.call("workflows.resume", {"id": run_id})
    rec = wait_run(proc, run_id)
    assert steps(rec)["x"]["attempts"] == 6
    assert proc.stop() == 0


def test_cancel_while_a_step_waits_out_its_retry_delay(godeld, home):
    proc = godeld().start()
    marks = home / "marks"
    wf = {"name": "delay", "steps": [{"id": "x", "retry": {"maxAttempts": 3, "delayMs": 60000},
                                       "run": f"echo a >> {marks}; exit 1"}]}
    run_id = run(proc, wf)
    wait_step(proc, run_id, "x", lambda s: s["state"] == "retrying")
    started = time.monotonic()
    rec = proc.call("workflows.cancel", {"id": run_id})
    assert time.monotonic() - started < 10
    assert rec["state"] == "cancelled" and steps(rec)["x"]["state"] == "cancelled", rec
    assert marks.read_text() == "a\n"  # no further attempt
    assert proc.stop() == 0


def test_step_timeout_with_retries_retries_each_timed_out_attempt(godeld, home):
    proc = godeld().start()
    marks = home / "marks"
    wf = {"name": "to", "steps": [{"id": "x", "timeout": "200ms", "retry": {"maxAttempts": 3, "delayMs": 10},
                                    "run": f"echo $GODEL_ATTEMPT >> {marks}; [ $GODEL_ATTEMPT = 3 ] || sleep 30"}]}
    rec = wait_run(proc, run(proc, wf))
    assert rec["state"] == "completed", rec
    assert steps(rec)["x"]["attempts"] == 3 and marks.read_text().split() == ["1", "2", "3"]
    rec = wait_run(proc, run(proc, {**wf, "steps": [{**wf["steps"][0], "run": "sleep 30"}]}))
    assert rec["state"] == "failed" and steps(rec)["x"]["attempts"] == 3 and "timed out after 0.2s" in steps(rec)["x"]["error"]
    assert proc.stop() == 0


def test_on_failure_stop_while_another_step_waits_to_retry(godeld, home):
    proc = godeld().start()
    wf = {"name": "stop", "steps": [
        {"id": "flaky", "retry": {"maxAttempts": 5, "delayMs": 60000}, "run": "exit 1"},
        {"id": "bad", "run": "sleep 0.3; exit 2"},
    ]}
    run_id = run(proc, wf)
    rec = wait_run(proc, run_id, timeout=15)
    by_id = steps(rec)
    assert rec["state"] == "failed" and "step bad failed" in rec["error"], rec
    assert by_id["flaky"]["state"] == "cancelled" and by_id["flaky"]["attempts"] == 1
    assert proc.stop() == 0


def test_concurrent_resumes_drive_the_run_once(godeld, home):
    proc = godeld().start()
    marks = home / "marks"
    ok = home / "ok"
    wf = {"name": "twice", "steps": [{"id": "x", "run": f"echo run >> {marks}; [ -e {ok} ] || exit 1; sleep 0.5"}]}
    run_id = run(proc, wf)
    assert wait_run(proc, run_id)["state"] == "failed"
    ok.write_text("")
    results: list = []

    def resume():
        try:
            results.append(proc.call("workflows.resume", {"id": run_id}))
        except RpcError as exc:
            results.append(exc)

    threads = [threading.Thread(target=resume) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec = wait_run(proc, run_id)
    assert rec["state"] == "completed"
    assert sum(not isinstance(r, RpcError) for r in results) == 1, results
    assert marks.read_text() == "run\nrun\n"  # the first run, and one resumed run
    assert proc.stop() == 0


# -- cancel --------------------------------------------------------------------------------------


def test_cancel_records_the_reason_on_the_running_step_and_announces_it(godeld, home):
    proc = godeld().start()
    wf = {"name": "c", "steps": [{"id": "long", "run": "sleep 30"}]}
    run_id = run(proc, wf)
    wait_step(proc, run_id, "long", lambda s: s["state"] == "running")
    rec = proc.call("workflows.cancel", {"id": run_id})
    long = steps(rec)["long"]
    assert long["state"] == "cancelled"
    cancelled = [e["data"] for e in events_of(proc, "workflow:step:cancelled") if e["data"]["workflowId"] == run_id]
    assert [c["stepId"] for c in cancelled] == ["long"], cancelled
    assert long["error"] == "cancelled by request", long
    assert proc.stop() == 0


def test_cancel_right_after_run_cancels_it(godeld, home):
    proc = godeld().start()
    for _ in range(5):
        with proc.client() as client:
            run_id = client.call("workflows.run", {"definition": {"name": "quick-cancel", "steps": [{"id": "long", "run": "sleep 30"}]}})["id"]
            started = time.monotonic()
            rec = client.call("workflows.cancel", {"id": run_id})
        assert time.monotonic() - started < 10
        assert rec["state"] == "cancelled", rec
    assert proc.stop() == 0


# -- onFailure, conditions, skipping ---------------------------------------------------------------


def test_a_condition_error_under_stop_cancels_the_running_steps(godeld, home):
    proc = godeld().start()
    marks = home / "marks"
    wf = {"name": "cond-stop", "steps": [
        {"id": "long", "run": "sleep 30"},
        {"id": "a", "run": "echo abc", "outputs": ["stdout"]},
        {"id": "c", "dependsOn": ["a"], "condition": "int(steps.a.outputs.stdout) > 1", "run": "true"},
        {"id": "d", "dependsOn": ["a"], "run": f"echo d >> {marks}"},
    ]}
    run_id = run(proc, wf)
    rec = wait_run(proc, run_id, timeout=10)
    by_id = steps(rec)
    assert rec["state"] == "failed" and by_id["c"]["state"] == "failed" and "condition" in by_id["c"]["error"]
    assert by_id["long"]["state"] == "cancelled"
    assert not marks.exists()  # d was not started after c failed for good
    assert proc.stop() == 0


def test_a_condition_on_a_skipped_steps_output_fails_clearly_or_takes_the_default(godeld, home):
    proc = godeld().start()
    wf = {"name": "skipped-out", "onFailure": "continue", "variables": {"go": False}, "steps": [
        {"id": "maybe", "condition": {"variable": "go", "equals": True}, "run": "echo v=1 >> $GODEL_OUTPUT", "outputs": ["v"]},
        {"id": "strict", "dependsOn": ["maybe"], "condition": "steps.maybe.outputs.v == '1'", "run": "echo strict"},
        {"id": "lenient", "dependsOn": ["maybe"], "condition": "(steps.maybe.outputs.v ?? 'none') == 'none'", "run": "echo lenient"},
        {"id": "uses", "dependsOn": ["maybe"], "run": "echo {{steps.maybe.outputs.v ?? 'dflt'}}"},
    ]}
    rec = wait_run(proc, run(proc, wf))
    by_id = steps(rec)
    assert by_id["maybe"]["state"] == "skipped"
    assert by_id["strict"]["state"] == "failed" and "steps.maybe.outputs.v" in by_id["strict"]["error"], by_id["strict"]
    assert by_id["lenient"]["state"] == "completed"
    assert by_id["uses"]["output"]["stdout"] == "dflt"
    assert rec["state"] == "failed"
    assert proc.stop() == 0


def test_steps_whose_needs_were_skipped_by_a_condition_still_run(godeld, home):
    proc = godeld().start()
    wf = {"name": "skip-needs", "steps": [
        {"id": "a", "condition": "1 == 2", "run": "true"},
        {"id": "b", "dependsOn": ["a"], "run": "echo b"},
        {"id": "c", "dependsOn": ["b"], "run": "echo c"},
    ]}
    rec = wait_run(proc, run(proc, wf))
    by_id = steps(rec)
    assert rec["state"] == "completed"
    assert by_id["a"]["state"] == "skipped" and by_id["b"]["state"] == "completed" and by_id["c"]["state"] == "completed"
    assert proc.stop() == 0


def test_under_continue_steps_downstream_of_a_failure_are_skipped_transitively(godeld, home):
    proc = godeld().start()
    marks = home / "marks"
    wf = {"name": "transitive", "onFailure": "continue", "steps": [
        {"id": "a", "run": "exit 1"},
        {"id": "b", "dependsOn": ["a"], "run": f"echo b >> {marks}"},
        {"id": "c", "dependsOn": ["b"], "run": f"echo c >> {marks}"},
    ]}
    rec = wait_run(proc, run(proc, wf))
    by_id = steps(rec)
    assert rec["state"] == "failed"
    assert by_id["b"]["state"] == "skipped"
    assert by_id["c"]["state"] == "skipped", by_id["c"]
    assert not marks.exists()
    assert proc.stop() == 0


def test_a_single_failing_step_under_continue_fails_the_run(godeld, home):
    proc = godeld().start()
    rec = wait_run(proc, run(proc, {"name": "one", "onFailure": "continue", "steps": [{"id": "x", "run": "exit 3"}]}))
    assert rec["state"] == "failed" and "step x failed: exit code 3" in rec["error"], rec
    assert proc.stop() == 0


# -- parallelism ---------------------------------------------------------------------------------


def test_wide_fan_out_never_runs_more_than_max_parallel(godeld, home):
    proc = godeld().start()
    d = home / "par"
    d.mkdir()
    (d / "count").write_text("0")
    (d / "max").write_text("0")
    script = d / "step.sh"
    script.write_text(f"""#!/bin/sh
set -e
exec 9>{d}/lock
flock 9
n=$(( $(cat {d}/count) + 1 )); echo $n > {d}/count
m=$(cat {d}/max); [ $n -gt $m ] && echo $n > {d}/max
flock -u 9
sleep 0.05
flock 9
echo $(( $(cat {d}/count) - 1 )) > {d}/count
echo $GODEL_STEP_ID >> {d}/done
""")
    script.chmod(0o755)
    wf = {"name": "wide", "maxParallel": 5, "steps": [{"id": "root", "run": "true"}]
          + [{"id": f"s{i}", "dependsOn": ["root"], "run": str(script)} for i in range(50)]
          + [{"id": "join", "dependsOn": [f"s{i}" for i in range(50)], "run": "true"}]}
    rec = wait_run(proc, run(proc, wf), timeout=120)
    assert rec["state"] == "completed", rec["error"]
    assert len((d / "done").read_text().split()) == 50
    assert int((d / "count").read_text()) == 0
    assert 1 <= int((d / "max").read_text()) <= 5
    assert proc.stop() == 0


# -- timeouts and restarts -----------------------------------------------------------------------


def test_workflow_timeout_is_a_wall_clock_deadline_across_a_restart(godeld, home):
    proc = godeld().start()
    marks = home / "marks"
    wf = {"name": "deadline", "timeout": "3s", "steps": [
        {"id": "a", "run": f"echo a >> {marks}; sleep 60"},
        {"id": "b", "dependsOn": ["a"], "run": f"echo b >> {marks}"},
    ]}
    run_id = run(proc, wf)
    wait_step(proc, run_id, "a", lambda s: s["state"] == "running")
    wait_until(marks.exists, what="the step's command to start")
    created = proc.call("workflows.get", {"id": run_id})["created_at"]
    proc.kill9()
    wait_until(lambda: time.time() * 1000 > created + 3500, what="the deadline to pass")
    proc = godeld().start()
    rec = wait_run(proc, run_id, timeout=10)
    assert rec["state"] == "failed" and "timed out" in rec["error"], rec
    assert marks.read_text() == "a\n"  # the attempt after the restart did not run, nor did b
    assert rec["finished_at"] - created < 3500 + 10000
    assert proc.stop() == 0


def test_resume_of_a_run_that_timed_out_gets_a_new_deadline(godeld, home):
    proc = godeld().start()
    ok = home / "ok"
    wf = {"name": "wf-timeout", "timeout": "500ms", "steps": [
        {"id": "first", "run": "echo first"},
        {"id": "slow", "dependsOn": ["first"], "run": f"[ -e {ok} ] || sleep 30"},
    ]}
    run_id = run(proc, wf)
    rec = wait_run(proc, run_id)
    assert rec["state"] == "failed" and "timed out" in rec["error"]
    assert steps(rec)["slow"]["state"] == "cancelled"
    ok.write_text("")
    proc.call("workflows.resume", {"id": run_id})
    rec = wait_run(proc, run_id)
    assert rec["state"] == "completed" and rec["error"] is None, rec
    assert steps(rec)["first"]["attempts"] == 1
    assert proc.stop() == 0


# -- kinds: unknown, misbehaving, vanished sub-workflow -------------------------------------------


def test_an_unknown_step_kind_is_refused_with_a_clear_error(godeld, home):
    proc = godeld().start()
    with pytest.raises(RpcError) as info:
        proc.call("workflows.run", {"definition": {"name": "k", "steps": [{"id": "x", "kind": "nosuchkind", "run": "true"}]}})
    assert info.value.code == -32602 and "nosuchkind" in info.value.message
    assert alive(proc) and proc.call("workflows.list", {})["runs"] == []
    assert proc.stop() == 0


def test_a_step_kind_that_vanished_after_a_restart_fails_its_step(godeld, home):
    plugins = home / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "oddkind.py").write_text(ODD_KIND)
    proc = godeld().start()
    gate_file = home / "go"
    run_id = run(proc, {"name": "vanish", "steps": [
        {"id": "wait", "run": f"while [ ! -e {gate_file} ]; do sleep 0.05; done"},
        {"id": "odd", "dependsOn": ["wait"], "kind": "odd", "mode": "ok"},
    ]})
    wait_step(proc, run_id, "wait", lambda s: s["state"] == "running")
    proc.kill9()
    (plugins / "oddkind.py").unlink()
    gate_file.write_text("")
    proc = godeld().start()
    rec = wait_run(proc, run_id)
    assert rec["state"] == "failed" and "unknown step kind 'odd'" in steps(rec)["odd"]["error"], rec
    assert alive(proc)
    assert proc.stop() == 0


def test_a_kind_raising_too_slow_error_without_a_step_timeout_fails_only_its_step(godeld, home):
    plugins = home / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "oddkind.py").write_text(ODD_KIND)
    proc = godeld().start()
    run_id = run(proc, {"name": "tooslow", "steps": [{"id": "x", "kind": "odd", "mode": "tooslow"}]})
    wait_until(lambda: not alive(proc) or proc.call("workflows.get", {"id": run_id})["state"] in ("completed", "failed", "cancelled"), what="the run to end")
    assert alive(proc), "godeld died:\n" + proc.output()[-2000:]
    rec = proc.call("workflows.get", {"id": run_id})
    assert rec["state"] == "failed"
    x = steps(rec)["x"]
    assert x["state"] == "failed" and "TooSlowError" in (x["error"] or ""), x  # like any other exception of a kind
    assert "internal error" not in rec["error"] and "timed out" not in (x["error"] or ""), rec
    assert proc.stop() == 0


def test_a_kind_raising_a_base_exception_does_not_take_godeld_down(godeld, home):
    plugins = home / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "oddkind.py").write_text(ODD_KIND)
    proc = godeld().start()
    run_id = run(proc, {"name": "base", "steps": [{"id": "x", "kind": "odd", "mode": "base"}]})
    wait_until(lambda: not alive(proc) or proc.call("workflows.get", {"id": run_id})["state"] in ("completed", "failed", "cancelled"), what="the run to end")
    assert alive(proc), "godeld died:\n" + proc.output()[-2000:]
    assert proc.call("workflows.get", {"id": run_id})["state"] == "failed"
    assert proc.stop() == 0


def test_a_sub_workflow_file_that_vanished_fails_the_step(godeld, home):
    proc = godeld().start()
    flows = home / "flows"
    flows.mkdir()
    child = flows / "child.yaml"
    child.write_text(yaml.safe_dump({"name": "child", "steps": [{"id": "hello", "run": "echo hi"}]}))
    (flows / "parent.yaml").write_text(yaml.safe_dump({"name": "parent", "steps": [
        {"id": "rm", "run": f"rm {child}"},
        {"id": "sub", "dependsOn": ["rm"], "workflow": "child.yaml"},
    ]}))
    run_id = proc.call("workflows.run", {"file": str(flows / "parent.yaml")})["id"]
    rec = wait_run(proc, run_id)
    assert rec["state"] == "failed" and steps(rec)["sub"]["state"] == "failed", rec
    assert "child.yaml" in steps(rec)["sub"]["error"]
    assert alive(proc) and proc.call("workflows.list", {})["runs"]
    assert proc.stop() == 0


# -- RPC errors on unknown ids, godelctl exit codes -----------------------------------------------


def test_unknown_ids_give_clear_errors(godeld, home):
    proc = godeld().start()
    for method, params in [
        ("workflows.get", {"id": "nope"}),
        ("workflows.cancel", {"id": "nope"}),
        ("workflows.resume", {"id": "nope"}),
        ("workflows.approve", {"id": "nope", "step": "gate"}),
        ("workflows.reject", {"id": "nope", "step": "gate"}),
    ]:
        with pytest.raises(RpcError) as info:
            proc.call(method, params)
        assert info.value.code == -32001 and "no workflow run 'nope'" in info.value.message, (method, info.value)
    assert proc.call("workflows.list", {"parent_id": "nope"})["runs"] == []
    # a finished run: cancel and approve are conflicts
    run_id = run(proc, {"name": "done", "steps": [{"id": "x", "run": "true"}]})
    wait_run(proc, run_id)
    for method, params in [("workflows.cancel", {"id": run_id}), ("workflows.approve", {"id": run_id, "step": "x"})]:
        with pytest.raises(RpcError) as info:
            proc.call(method, params)
        assert info.value.code == -32002, (method, info.value)
    with pytest.raises(RpcError) as info:
        proc.call("workflows.resume", {"id": run_id})
    assert info.value.code == -32002
    assert proc.stop() == 0


def test_godelctl_workflow_exit_codes(godeld, home):
    proc = godeld().start()
    for args in [("workflow", "show", "nope"), ("workflow", "cancel", "nope"), ("workflow", "resume", "nope"),
                 ("workflow", "approve", "nope", "gate"), ("workflow", "reject", "nope", "gate")]:
        result = ctl(home, *args)
        assert result.returncode != 0 and "nope" in result.stderr, (args, result.returncode, result.stderr)
    good = home / "good.yaml"
    good.write_text(yaml.safe_dump({"name": "g", "steps": [{"id": "a", "run": "true"}]}))
    result = ctl(home, "workflow", "run", str(good), "-f")
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = result.stdout.split()[0]
    result = ctl(home, "workflow", "cancel", run_id)
    assert result.returncode != 0 and "already completed" in result.stderr
    bad = home / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "b", "steps": [{"id": "a", "run": "exit 1"}]}))
    result = ctl(home, "workflow", "run", str(bad), "-f")
    assert result.returncode == 1
    run_id = result.stdout.split()[0]
    result = ctl(home, "workflow", "resume", run_id, "-f")
    assert result.returncode == 1 and "exit code 1" in result.stdout
    assert proc.stop() == 0


# -- restarts ------------------------------------------------------------------------------------


def test_a_retry_delay_is_only_waited_out_for_the_rest_after_a_restart(godeld, home):
    proc = godeld().start()
    marks = home / "marks"
    wf = {"name": "delay-restart", "steps": [{"id": "x", "retry": {"maxAttempts": 2, "delayMs": 5000},
                                               "run": f"date +%s%3N >> {marks}; [ $GODEL_ATTEMPT = 2 ]"}]}
    run_id = run(proc, wf)
    x = wait_step(proc, run_id, "x", lambda s: s["state"] == "retrying")
    proc.kill9()
    wait_until(lambda: time.time() * 1000 > x["next_attempt_at"] - 2500, what="half the delay")
    restarted = time.time() * 1000
    proc = godeld().start()
    rec = wait_run(proc, run_id)
    assert rec["state"] == "completed" and steps(rec)["x"]["attempts"] == 2, rec
    first, second = (int(v) for v in marks.read_text().split())
    assert second - first >= 4900
    assert second - restarted < 4500  # not the whole delay again
    assert proc.stop() == 0


def test_a_normal_stop_resumes_the_running_step_at_the_next_start_without_using_its_budget(godeld, home):
    proc = godeld().start()
    marks = home / "marks"
    go = home / "go"
    wf = {"name": "stop-start", "steps": [{"id": "x", "run": f"echo $GODEL_ATTEMPT >> {marks}; while [ ! -e {go} ]; do sleep 0.05; done"}]}
    run_id = run(proc, wf)
    wait_until(lambda: marks.exists(), what="the first attempt")
    assert proc.stop() == 0
    go.write_text("")
    proc = godeld().start()
    rec = wait_run(proc, run_id)
    assert rec["state"] == "completed", rec
    assert marks.read_text().split() == ["1", "2"] and steps(rec)["x"]["attempts"] == 2
    assert proc.stop() == 0
