"""Workflow definitions: loading, every validation error (with path/line/column), normalization."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from godeld.workflows.spec import (
    DEFAULT_OUTPUTS,
    STEP_KINDS_BUILTIN,
    WorkflowInvalid,
    load,
    load_file,
    parse_duration,
    validate,
)
from tests.helpers import shared_fixtures

FIXTURES = shared_fixtures() / "godel" / "workflows"
FIXTURE_ORDER = ["extract", "validate", "transform", "load", "analyze", "notify", "report"]


def check(text: str, **kw) -> dict:
    return validate(textwrap.dedent(text).lstrip("\n"), file="wf.yaml", **kw)


def errors(text: str, **kw) -> list[dict]:
    return check(text, **kw)["errors"]


def one_error(text: str, **kw) -> dict:
    errs = errors(text, **kw)
    assert len(errs) == 1, errs
    return errs[0]


def assert_error(err: dict, path: str, line: int | None, column: int | None, fragment: str) -> None:
    assert (err["path"], err["line"], err["column"]) == (path, line, column), err
    assert fragment in err["message"], err


def by_id(definition: dict) -> dict[str, dict]:
    return {s["id"]: s for s in definition["steps"]}


# --------------------------------------------------------------------------- the real files


@pytest.mark.parametrize("name", ["workflow.yaml", "data-pipeline.yaml"])
def test_fixture_files_are_valid(name):
    result = validate((FIXTURES / name).read_text(), file=name)
    assert result["errors"] == []
    assert result["valid"] is True
    d = result["definition"]
    assert d["name"] == "data-pipeline"
    assert d["version"] == "1.0.0"
    assert d["on_failure"] == "stop"
    assert d["timeout_ms"] == 3_600_000
    assert d["variables"] == {"sourceUrl": "https://api.example.com/data", "batchSize": 1000, "enableAnalytics": True}
    assert d["metadata"]["tags"] == ["etl", "data-pipeline", "scheduled"]
    assert d["order"] == FIXTURE_ORDER
    steps = by_id(d)
    assert steps["extract"]["needs"] == []
    assert steps["validate"]["needs"] == ["extract"]
    assert steps["load"]["needs"] == ["validate", "transform"]
    assert steps["report"]["needs"] == ["analyze", "notify"]
    assert steps["load"]["depends_on"] == ["validate", "transform"]
    assert steps["load"]["next"] == ["analyze", "notify"]
    assert json.loads(json.dumps(d)) == d  # the engine persists it as JSON


def test_fixture_step_normalization():
    d = load_file(FIXTURES / "workflow.yaml")
    extract = by_id(d)["extract"]
    assert extract["kind"] == "agent"
    assert extract["spec"] == {"task": "Extract data from {{sourceUrl}} with batch size {{batchSize}}",
                               "agent": "data-extractor"}
    assert extract["retry"] == {"max_attempts": 3, "backoff": "exponential", "delay_ms": 5000, "max_delay_ms": None}
    assert extract["timeout_ms"] == 300_000
    assert extract["outputs"] == ["extractedRecords", "extractTime"]
    validate_step = by_id(d)["validate"]
    assert validate_step["condition"] == {"variable": "enableAnalytics", "equals": True}
    assert validate_step["parallel"] is True
    report = by_id(d)["report"]
    assert report["retry"] == {"max_attempts": 1, "backoff": "fixed", "delay_ms": 1000, "max_delay_ms": None}
    assert report["timeout_ms"] is None and report["parallel"] is False
    assert d["file"] == str(FIXTURES / "workflow.yaml")
    assert d["base_dir"] == str(FIXTURES.resolve())


def test_load_file_unreadable(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(WorkflowInvalid) as info:
        load_file(missing)
    assert info.value.file == str(missing)
    assert len(info.value.errors) == 1
    assert "cannot read workflow file" in info.value.errors[0]["message"]
    assert "No such file" in str(info.value)


def test_public_constants():
    assert STEP_KINDS_BUILTIN == ("agent", "shell", "approval", "workflow", "notify", "swarm")
    assert DEFAULT_OUTPUTS["shell"] == ("stdout", "stderr", "exit_code")
    assert set(DEFAULT_OUTPUTS) == set(STEP_KINDS_BUILTIN)


# --------------------------------------------------------------------------- keys and types


def test_unknown_key_did_you_mean():
    err = one_error("""
        name: w
        steps:
          - id: a
            run: echo a
          - id: b
            run: echo b
            dependOn: [a]
        """)
    assert_error(err, "steps[1].dependOn", 7, 5, "unknown key 'dependOn' in steps[1] (did you mean 'dependsOn'?)")


def test_unknown_top_level_key():
    err = one_error("""
        name: w
        onFailur: stop
        steps:
          - {id: a, run: echo}
        """)
    assert_error(err, "onFailur", 2, 1, "unknown key 'onFailur' in the workflow (did you mean 'onFailure'?)")


def test_wrong_types_say_expected_and_got():
    errs = errors("""
        name: w
        maxParallel: 0
        onFailure: keep-going
        steps:
          - id: a
            run: echo
            timeout: [1]
            parallel: "yes"
            retry: {maxAttempts: 0, backoff: exponental}
        """)
    assert_error(errs[0], "maxParallel", 2, 14, "maxParallel must be at least 1, got 0")
    assert_error(errs[1], "onFailure", 3, 12, "onFailure must be one of stop, continue, got 'keep-going'")
    assert_error(errs[2], "steps[0].timeout", 7, 14, "timeout must be a duration (ms or '30s'), not a list")
    assert_error(errs[3], "steps[0].parallel", 8, 15, "parallel must be true or false, not a string")
    assert_error(errs[4], "steps[0].retry.maxAttempts", 9, 26, "maxAttempts must be at least 1")
    assert_error(errs[5], "steps[0].retry.backoff", 9, 38, "(did you mean 'exponential'?)")
    assert len(errs) == 6


def test_name_required_and_step_id_rules():
    errs = errors("""
        description: no name
        steps:
          - run: echo
          - id: 9lives
            run: echo
          - id: 12
            run: echo
        """)
    assert_error(errs[0], "name", 1, 1, "name is required")
    assert_error(errs[1], "steps[0].id", 3, 5, "step id is required")
    assert_error(errs[2], "steps[1].id", 4, 9, "invalid step id '9lives'")
    assert_error(errs[3], "steps[2].id", 6, 9, "id must be a string, not a number")
    assert len(errs) == 4


def test_duplicate_step_ids_point_at_second_and_name_first_line():
    err = one_error("""
        name: w
        steps:
          - id: a
            run: echo 1
          - id: b
            run: echo 2
          - id: a
            run: echo 3
        """)
    assert_error(err, "steps[2].id", 7, 9, "duplicate step id 'a' (first defined at line 3)")


def test_reserved_variable_names():
    errs = errors("""
        name: w
        variables:
          steps: 1
          ok: 2
          workflow: 3
        steps:
          - {id: a, run: echo}
        """)
    assert_error(errs[0], "variables.steps", 3, 3, "variable name 'steps' is reserved")
    assert_error(errs[1], "variables.workflow", 5, 3, "variable name 'workflow' is reserved")
    assert len(errs) == 2


def test_steps_missing_empty_or_wrong_type():
    assert_error(one_error("name: w\n"), "steps", 1, 1, "steps is required")
    assert_error(one_error("name: w\nsteps: []\n"), "steps", 2, 8, "steps must not be empty")
    assert_error(one_error("name: w\nsteps: {a: 1}\n"), "steps", 2, 8, "steps must be a list of steps, not a mapping")
    assert_error(one_error("name: w\nsteps:\n  - just a string\n"), "steps[0]", 3, 5,
                 "steps[0] must be a mapping (a step with an id), not a string")


@pytest.mark.parametrize("text, got", [("- a\n- b\n", "a list"), ("just text\n", "a string"), ("", "null")])
def test_document_not_a_mapping(text, got):
    result = validate(text, file="wf.yaml")
    assert result["valid"] is False and result["definition"] is None
    (err,) = result["errors"]
    assert err["path"] == ""
    assert (err["line"], err["column"]) == (1, 1)
    assert err["message"] == f"a workflow must be a mapping with name and steps, not {got}"


def test_source_of_wrong_type():
    (err,) = validate(42)["errors"]
    assert err["message"] == "a workflow must be YAML text or a mapping, not a number"


# --------------------------------------------------------------------------- YAML itself


def test_yaml_syntax_error_position():
    result = check("""
        name: w
        steps:
          - id: a
            run: [echo, "unclosed
        """)
    assert result["valid"] is False and result["file"] == "wf.yaml"
    (err,) = result["errors"]
    assert err["path"] == ""
    assert (err["line"], err["column"]) == (5, 1)
    assert err["message"].startswith("invalid YAML:")


def test_yaml_syntax_error_tab_indent():
    (err,) = validate("name: w\nsteps:\n\t- id: a\n", file="x.yaml")["errors"]
    assert (err["line"], err["column"]) == (3, 1)
    assert "invalid YAML" in err["message"]


def test_duplicate_yaml_keys():
    errs = errors("""
        name: w
        steps:
          - id: a
            run: echo 1
            run: echo 2
        name: again
        """)
    assert_error(errs[0], "steps[0].run", 5, 5, "duplicate key 'run' (first at line 4)")
    assert_error(errs[1], "name", 6, 1, "duplicate key 'name' (first at line 1)")
    assert len(errs) == 2


# --------------------------------------------------------------------------- the graph


def test_unknown_dependency_with_suggestion():
    err = one_error("""
        name: w
        steps:
          - id: load
            run: echo
          - id: report
            run: echo
            dependsOn: [lod]
        """)
    assert_error(err, "steps[1].dependsOn[0]", 7, 17, "unknown step 'lod' in steps[1].dependsOn[0] (did you mean 'load'?)")


def test_unknown_next_target_single_string():
    err = one_error("""
        name: w
        steps:
          - id: a
            run: echo
            next: zzz
        """)
    assert_error(err, "steps[0].next", 5, 11, "unknown step 'zzz' in steps[0].next")


def test_self_dependency_is_a_cycle():
    err = one_error("""
        name: w
        steps:
          - id: a
            run: echo
            dependsOn: [a]
        """)
    assert_error(err, "steps[0].dependsOn[0]", 5, 17, "cycle: step 'a' depends on itself (a → a)")


def test_two_step_cycle_via_depends_on():
    err = one_error("""
        name: w
        steps:
          - id: a
            run: echo
            dependsOn: [b]
          - id: b
            run: echo
            dependsOn: [a]
        """)
    assert_error(err, "steps[0].dependsOn[0]", 5, 17, "cycle: a → b → a")


def test_three_step_cycle_via_depends_on():
    result = check("""
        name: w
        steps:
          - id: a
            run: echo
            dependsOn: [c]
          - id: b
            run: echo
            dependsOn: [a]
          - id: c
            run: echo
            dependsOn: [b]
        """)
    assert result["definition"] is None
    (err,) = result["errors"]
    assert_error(err, "steps[0].dependsOn[0]", 5, 17, "cycle: a → b → c → a")


def test_cycle_mixing_next_and_depends_on():
    err = one_error("""
        name: w
        steps:
          - id: a
            run: echo
            next: [b]
          - id: b
            run: echo
            next: [c]
          - id: c
            run: echo
          - id: d
            run: echo
            dependsOn: [c]
            next: [a]
        """)
    # a → b → c → d → a: the edge d → a closes it, declared at d.next[0]
    assert_error(err, "steps[3].next[0]", 14, 12, "cycle: a → b → c → d → a")


def test_two_independent_cycles_both_reported():
    errs = errors("""
        name: w
        steps:
          - id: a
            run: echo
            dependsOn: [b]
          - id: b
            run: echo
            dependsOn: [a]
          - id: ok
            run: echo
            dependsOn: [a]
          - id: x
            run: echo
            dependsOn: [y]
          - id: y
            run: echo
            next: [x]
            dependsOn: [x]
        """)
    messages = [e["message"] for e in errs]
    assert messages == ["cycle: a → b → a", "cycle: x → y → x"]
    assert [e["path"] for e in errs] == ["steps[0].dependsOn[0]", "steps[3].dependsOn[0]"]


@pytest.mark.parametrize("text, needs, order", [
    # diamond: a → b, a → c, b+c → d
    ("""
     name: w
     steps:
       - {id: a, run: echo}
       - {id: b, run: echo, dependsOn: a}
       - {id: c, run: echo, dependsOn: [a]}
       - {id: d, run: echo, dependsOn: [c, b]}
     """, {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}, ["a", "b", "c", "d"]),
    # fan-in from independent roots, declared after their consumer
    ("""
     name: w
     steps:
       - {id: sink, run: echo, dependsOn: [r2, r1, r3]}
       - {id: r1, run: echo}
       - {id: r2, run: echo}
       - {id: r3, run: echo}
     """, {"sink": ["r1", "r2", "r3"], "r1": [], "r2": [], "r3": []}, ["r1", "r2", "r3", "sink"]),
    # the same edges written twice (next and dependsOn), plus next-only edges
    ("""
     name: w
     steps:
       - {id: a, run: echo, next: [b, c]}
       - {id: b, run: echo, dependsOn: [a], next: [d]}
       - {id: c, run: echo, next: [d]}
       - {id: d, run: echo, dependsOn: [b]}
     """, {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}, ["a", "b", "c", "d"]),
])
def test_valid_graphs_have_no_false_cycles(text, needs, order):
    result = check(text)
    assert result["errors"] == []
    d = result["definition"]
    assert {s["id"]: s["needs"] for s in d["steps"]} == needs
    assert d["order"] == order


def test_depends_on_as_written_is_kept():
    d = load("name: w\nsteps:\n  - {id: a, run: x}\n  - {id: b, run: y, dependsOn: a, next: []}\n")
    b = by_id(d)["b"]
    assert b["depends_on"] == ["a"] and b["next"] == [] and b["needs"] == ["a"]


# --------------------------------------------------------------------------- kinds


def test_kind_inference():
    d = load("""
name: w
steps:
  - {id: s, run: [ls, -l]}
  - {id: ag, task: do it, agent: coder}
  - {id: ap, approval: true}
  - {id: wf, workflow: sub.yaml, variables: {x: 1}}
  - {id: sw, swarm: {agents: 3, strategy: vote, extra: yes}, task: think}
  - {id: nt, notify: done}
  - {id: ex, kind: shell, run: echo}
""")
    steps = by_id(d)
    assert {k: s["kind"] for k, s in steps.items()} == {
        "s": "shell", "ag": "agent", "ap": "approval", "wf": "workflow", "sw": "swarm", "nt": "notify", "ex": "shell"}
    assert steps["s"]["spec"] == {"run": ["ls", "-l"]}
    assert steps["ag"]["spec"] == {"task": "do it", "agent": "coder"}
    assert steps["ap"]["spec"] == {"message": None, "timeout_ms": None, "default": None}
    assert steps["wf"]["spec"] == {"workflow": "sub.yaml", "variables": {"x": 1}}
    assert steps["sw"]["spec"] == {"swarm": {"agents": 3, "strategy": "vote", "extra": True}, "task": "think"}
    assert steps["nt"]["spec"] == {"message": "done", "level": "info", "channels": []}


def test_approval_and_notify_mappings_normalized():
    d = load("""
name: w
steps:
  - id: ap
    approval: {message: "ship it?", timeout: 5m, default: reject}
  - id: nt
    notify: {message: shipped, level: warning, channels: [ops]}
    dependsOn: [ap]
""")
    steps = by_id(d)
    assert steps["ap"]["spec"] == {"message": "ship it?", "timeout_ms": 300_000, "default": "reject"}
    assert steps["nt"]["spec"] == {"message": "shipped", "level": "warning", "channels": ["ops"]}


def test_no_kind_and_ambiguous_kind():
    errs = errors("""
        name: w
        steps:
          - id: a
            name: nothing to do
          - id: b
            run: echo
            task: also an agent?
        """)
    assert_error(errs[0], "steps[0]", 3, 5, "step has no kind: give it kind, run, task, approval, workflow, swarm or notify")
    assert_error(errs[1], "steps[1]", 5, 5, "step has both 'run' and 'task'")
    assert len(errs) == 2


def test_explicit_kind_resolves_ambiguity_but_fields_must_fit():
    err = one_error("""
        name: w
        steps:
          - id: b
            kind: agent
            run: echo
            task: do
        """)
    assert_error(err, "steps[0].run", 5, 5, "'run' is not a field of an agent step (it belongs to shell steps)")


def test_unknown_kind_did_you_mean():
    err = one_error("""
        name: w
        steps:
          - id: a
            kind: shel
            run: echo
        """)
    assert_error(err, "steps[0].kind", 4, 11, "unknown step kind 'shel' (known: agent, approval, notify, shell, swarm, workflow) (did you mean 'shell'?)")


def test_per_kind_unknown_fields():
    errs = errors("""
        name: w
        steps:
          - id: a
            task: do it
            cwd: /tmp
          - id: b
            run: echo
            tools: [git]
          - id: c
            notify: {message: hi, levle: info}
        """)
    assert_error(errs[0], "steps[0].cwd", 5, 5, "'cwd' is not a field of an agent step (it belongs to shell steps)")
    assert_error(errs[1], "steps[1].tools", 8, 5, "'tools' is not a field of a shell step (it belongs to agent steps)")
    assert_error(errs[2], "steps[2].notify.levle", 10, 27, "unknown key 'levle' in steps[2].notify (did you mean 'level'?)")
    assert len(errs) == 3


def test_kind_required_fields():
    errs = errors("""
        name: w
        steps:
          - {id: a, kind: shell}
          - {id: b, kind: agent}
          - {id: c, swarm: {agents: 0}}
          - {id: d, notify: {level: info}}
        """)
    assert_error(errs[0], "steps[0].run", 3, 5, "a shell step needs run")
    assert_error(errs[1], "steps[1].task", 4, 5, "an agent step needs a task")
    assert_error(errs[2], "steps[2].task", 5, 5, "a swarm step needs a task")
    assert_error(errs[3], "steps[2].swarm.agents", 5, 29, "agents must be at least 1")
    assert_error(errs[4], "steps[3].notify.message", 6, 21, "notify needs a message")
    assert len(errs) == 5


class _UrlKind:
    fields = frozenset({"url", "method"})


def test_plugin_kind_with_fields():
    kinds = {**{k: None for k in STEP_KINDS_BUILTIN}, "http": _UrlKind()}
    text = """
        name: w
        steps:
          - id: fetch
            kind: http
            url: https://example.com
            method: GET
            retries: 3
        """
    result = check(text, step_kinds=kinds)
    (err,) = result["errors"]
    assert_error(err, "steps[0].retries", 7, 5, "unknown key 'retries' in steps[0] (did you mean 'retry'?)")
    ok = load(textwrap.dedent(text).replace("    retries: 3\n", ""), step_kinds=kinds)
    assert ok["steps"][0]["kind"] == "http"
    assert ok["steps"][0]["spec"] == {"url": "https://example.com", "method": "GET"}
    # without the plugin, the kind is unknown
    err = one_error(text.replace("            retries: 3\n", ""))
    assert "unknown step kind 'http'" in err["message"]


def test_step_kinds_without_a_builtin():
    err = one_error("name: w\nsteps:\n  - {id: a, notify: hi}\n", step_kinds={"shell": None})
    assert_error(err, "steps[0]", 3, 5, "step kind 'notify' (from 'notify') is not available (known: shell)")


def test_inline_sub_workflow_is_validated():
    errs = errors("""
        name: w
        steps:
          - id: sub
            workflow:
              name: inner
              steps:
                - {id: x, run: "echo {{ depth }} {{ missing }}"}
            variables: {depth: 2}
        """)
    (err,) = errs
    assert_error(err, "steps[0].workflow.steps[0].run", 7, 24, "undefined variable 'missing'")


# --------------------------------------------------------------------------- references


PIPE = """
name: w
variables:
  sourceUrl: https://x
steps:
  - id: load
    run: echo {{ sourceUrl }}
    outputs: [rows]
  - id: side
    task: look around
  - id: extract
    dependsOn: [load]
    task: "{{ TEXT }}"
"""


def pipe(text: str) -> str:
    return PIPE.replace("{{ TEXT }}", text)


def test_references_that_are_fine():
    ok = validate(pipe("{{sourceUrl}} {{ vars.sourceUrl }} {{ steps.load.outputs.rows }} {{ steps.load.state }} "
                       "{{ workflow.name }} {{ extra }}"), variables={"extra": 1})
    assert ok["errors"] == []


def test_undefined_variable():
    err = one_error(pipe("from {{ sourceUrll }}"))
    assert_error(err, "steps[2].task", 12, 11, "undefined variable 'sourceUrll' in steps[2].task (did you mean 'sourceUrl'?)")


def test_undefined_step_output():
    err = one_error(pipe("{{ steps.load.outputs.row }}"))
    assert_error(err, "steps[2].task", 12, 11, "step 'load' has no output 'row' (outputs: rows, stdout, stderr, exit_code) (did you mean 'rows'?)")


def test_default_outputs_when_none_declared():
    text = """
        name: w
        steps:
          - {id: s, run: echo}
          - {id: t, task: "{{ steps.s.outputs.stdout }} {{ steps.s.outputs.result }}", dependsOn: [s]}
        """
    err = one_error(text)
    assert_error(err, "steps[1].task", 4, 19, "step 's' has no output 'result' (outputs: stdout, stderr, exit_code)")


def test_output_of_non_ancestor_step():
    err = one_error(pipe("{{ steps.side.outputs.result }}"))
    assert_error(err, "steps[2].task", 12, 11,
                 "steps.side.outputs.result is used by 'extract' but 'side' does not run before it: add it to dependsOn")


def test_transitive_ancestor_via_next_is_fine():
    assert errors("""
        name: w
        steps:
          - {id: a, run: echo, next: [b], outputs: [v]}
          - {id: b, run: echo, next: [c]}
          - {id: c, notify: "got {{ steps.a.outputs.v }}"}
        """) == []


def test_unknown_step_and_bad_part_in_reference():
    errs = errors(pipe("{{ steps.lood.outputs.rows }} {{ steps.load.output.rows }}"))
    assert_error(errs[0], "steps[2].task", 12, 11, "refers to unknown step 'lood' (did you mean 'load'?)")
    assert_error(errs[1], "steps[2].task", 12, 11, "not 'output' (did you mean 'outputs'?)")
    assert len(errs) == 2


def test_references_in_env_notify_and_sub_workflow_variables():
    errs = errors("""
        name: w
        env: {A: "{{ nope1 }}"}
        steps:
          - id: a
            run: echo
            env: {B: "{{ nope2 }}"}
          - id: b
            workflow: sub.yaml
            variables: {x: "{{ nope3 }}"}
          - id: c
            notify: {message: "{{ nope4 }}"}
        """)
    assert [e["path"] for e in errs] == ["env.A", "steps[0].env.B", "steps[1].variables.x", "steps[2].notify.message"]
    assert all("undefined variable 'nope" in e["message"] for e in errs)


def test_unclosed_template_is_an_error():
    err = one_error(pipe("{{ sourceUrl "))
    assert err["path"] == "steps[2].task"
    assert err["message"].startswith("bad template:")


def test_condition_references_and_bad_condition():
    errs = errors("""
        name: w
        variables: {flag: true}
        steps:
          - {id: a, run: echo}
          - id: b
            run: echo
            condition: {variable: flg, equals: true}
          - id: c
            run: echo
            condition: "flag and ("
          - id: d
            run: echo
            condition: "steps.a.outputs.stdout == 'x'"
        """)
    assert_error(errs[0], "steps[1].condition", 7, 16, "undefined variable 'flg'")
    assert_error(errs[1], "steps[2].condition", 10, 16, "bad condition:")
    assert_error(errs[2], "steps[3].condition", 13, 16, "'a' does not run before it")
    assert len(errs) == 3


def test_exists_in_condition_only_checks_the_step():
    assert errors("""
        name: w
        steps:
          - {id: a, run: echo}
          - {id: b, run: echo, condition: {variable: maybe, exists: true}}
          - {id: c, run: echo, condition: "exists(steps.a.outputs.anything)"}
        """) == []
    err = one_error("""
        name: w
        steps:
          - {id: a, run: echo}
          - {id: c, run: echo, condition: "exists(steps.zz.outputs.x)"}
        """)
    assert "unknown step 'zz'" in err["message"]


def test_optional_references_in_templates():
    # `??` and exists() tolerate an undefined path at run time: only the step must exist.
    assert errors(pipe("{{ maybe ?? 'none' }} {{ exists(vars.opt) }} {{ steps.load.outputs.nope ?? '' }} "
                       "{{ (a ?? b) ?? 'c' }}")) == []
    errs = errors(pipe("{{ maybe ?? also_missing }} {{ steps.gone.outputs.x ?? 1 }}"))
    assert [e["message"] for e in errs] == [
        "undefined variable 'also_missing' in steps[2].task: declare it under variables",
        "steps.gone.outputs.x refers to unknown step 'gone'",
    ]


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize("value, ms", [(300000, 300000), ("5m", 300000), ("30s", 30000), ("1h", 3600000),
                                       ("1500ms", 1500), ("1h30m", 5400000), ("250", 250), ("0.5s", 500)])
def test_parse_duration(value, ms):
    assert parse_duration(value) == ms


@pytest.mark.parametrize("value", ["soon", "", "5 minutes", "-5s", -1, True, [1], None])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_duration_fields_normalized_and_checked():
    d = load("name: w\ntimeout: 5m\nsteps:\n  - {id: a, run: echo, timeout: '1500ms'}\n")
    assert d["timeout_ms"] == 300_000 and d["steps"][0]["timeout_ms"] == 1500
    err = one_error("""
        name: w
        timeout: soon
        steps:
          - {id: a, run: echo}
        """)
    assert_error(err, "timeout", 2, 10, "timeout: invalid duration 'soon'")


# --------------------------------------------------------------------------- dict input, results, many errors


def test_dict_input_has_no_positions():
    result = validate({"name": "w", "steps": [{"id": "a", "run": "echo", "dependsOn": ["zz"]},
                                              {"id": "a", "run": "echo"}]}, file=None)
    assert result["valid"] is False and result["file"] is None
    got = sorted(result["errors"], key=lambda e: e["path"])
    assert got == [
        {"path": "steps[0].dependsOn[0]", "line": None, "column": None, "message": "unknown step 'zz' in steps[0].dependsOn[0]"},
        {"path": "steps[1].id", "line": None, "column": None, "message": "duplicate step id 'a' (first defined at steps[0].id)"},
    ]
    assert all(e["line"] is None and e["column"] is None for e in result["errors"])


def test_dict_input_valid():
    d = load({"name": "w", "steps": [{"id": "a", "run": "echo"}]})
    assert d["steps"][0]["kind"] == "shell" and d["file"] is None and d["base_dir"] is None


def test_workflow_invalid_str_and_load_raises():
    with pytest.raises(WorkflowInvalid) as info:
        load("name: w\nsteps:\n  - {id: a, run: echo, dependsOn: [b]}\n", file="x.yaml")
    assert info.value.file == "x.yaml"
    assert str(info.value) == "x.yaml:3:36: steps[0].dependsOn[0]: unknown step 'b' in steps[0].dependsOn[0]"


def test_many_errors_all_reported_in_document_order():
    errs = errors("""
        name: 42
        onFailure: sometimes
        variables:
          vars: 1
        steps:
          - id: a
            run: echo {{ nothere }}
            timeout: soon
          - id: a
            task: do
            dependOn: [a]
          - id: c
            retry: {maxAttempts: 0}
            dependsOn: [d]
          - id: d
            kind: agnet
            dependsOn: [c]
          - id: e
            approval: {default: maybe}
        """)
    expected = [
        ("name", 1, 7, "name must be a string, not a number"),
        ("onFailure", 2, 12, "onFailure must be one of stop, continue"),
        ("variables.vars", 4, 3, "variable name 'vars' is reserved"),
        ("steps[0].run", 7, 10, "undefined variable 'nothere'"),
        ("steps[0].timeout", 8, 14, "invalid duration 'soon'"),
        ("steps[1].id", 9, 9, "duplicate step id 'a' (first defined at line 6)"),
        ("steps[1].dependOn", 11, 5, "unknown key 'dependOn' in steps[1] (did you mean 'dependsOn'?)"),
        ("steps[2]", 12, 5, "step has no kind"),
        ("steps[2].retry.maxAttempts", 13, 26, "maxAttempts must be at least 1"),
        ("steps[2].dependsOn[0]", 14, 17, "cycle: c → d → c"),
        ("steps[3].kind", 16, 11, "unknown step kind 'agnet'"),
        ("steps[4].approval.default", 19, 25, "default must be one of approve, reject"),
    ]
    assert len(errs) == len(expected), errs
    for err, (path, line, column, fragment) in zip(errs, expected):
        assert_error(err, path, line, column, fragment)
