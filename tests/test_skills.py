"""Skills end to end: a real godeld loads real SKILL.md folders (the public fixtures unmodified),
applies precedence, reports malformed skills, watches the directories, matches tasks, persists
activations across a restart, formats prompts and serves skill files without escapes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from godelctl.client import RpcError
from godeld import hookimpl
from godeld.skills.registry import parse_allowed_tools, when_to_use
from tests.helpers import AsyncRpc, shared_fixtures
from tests.test_godelctl import ctl, ok

FIXTURES = shared_fixtures()
AGENT_SKILLS = FIXTURES / "agent-skills"
GODEL_SKILLS = FIXTURES / "godel" / "skills"
BUILTIN = Path(__file__).resolve().parent.parent / "godeld" / "builtin_skills"
FIXTURE_NAMES = {
    "brand-guidelines", "frontend-design", "internal-comms", "mcp-builder", "theme-factory", "web-artifacts-builder",
    "webapp-testing", "code-review", "refactoring", "testing",
}


def skill_md(name: str, description: str = "A skill for tests.", body: str = "# Body\n", extra: str = "") -> str:
    return f"---\nname: {name}\ndescription: {description}\n{extra}---\n\n{body}"


def write_skill(root: Path, folder: str, text: str) -> Path:
    (root / folder).mkdir(parents=True, exist_ok=True)
    path = root / folder / "SKILL.md"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # how editors save: one complete file appears
    return path


def tree_digest(*roots: Path) -> str:
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                digest.update(str(path).encode() + path.read_bytes())
    return digest.hexdigest()


def start(godeld, home: Path, *, user_dirs: list[Path], project: Path | None = None, builtin: bool = False, skills_path: str = "", **skills_config):
    project = project or home / "project"
    project.mkdir(parents=True, exist_ok=True)
    config = {"project": str(project), "skills": {"user_dirs": [str(d) for d in user_dirs], "builtin": builtin, "reload_debounce_ms": 50, **skills_config}}
    return godeld(config=config, env={"GODEL_SKILLS_PATH": skills_path}).start()


def by_name(listing: dict) -> dict[str, dict]:
    return {s["name"]: s for s in listing["skills"]}


def wait_for(fn, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# -- loading --------------------------------------------------------------------------------


def test_every_fixture_skill_loads_unmodified(godeld, home):
    before = tree_digest(AGENT_SKILLS, GODEL_SKILLS)
    proc = start(godeld, home, user_dirs=[AGENT_SKILLS, GODEL_SKILLS])
    listing = proc.call("skills.list", {})
    assert listing["errors"] == [], listing["errors"]
    skills = by_name(listing)
    assert set(skills) == FIXTURE_NAMES
    assert all(s["source"] == "user" and s["shadows"] == [] for s in skills.values())
    assert skills["mcp-builder"]["license"] == "Complete terms in LICENSE.txt"
    assert "LICENSE.txt" in skills["mcp-builder"]["files"]
    assert skills["code-review"]["metadata"] == {"author": "godel-team", "version": "1.0.0", "category": "quality"}
    assert skills["testing"]["path"] == str(GODEL_SKILLS / "testing")
    full = proc.call("skills.get", {"name": "internal-comms"})
    assert full["body"].startswith("## When to use this skill") and "Status reports" in full["body"]
    assert tree_digest(AGENT_SKILLS, GODEL_SKILLS) == before


def test_project_shadows_user_and_user_shadows_builtin(godeld, home):
    project = home / "project"
    shutil.copytree(GODEL_SKILLS / "testing", project / ".claude" / "skills" / "testing")
    write_skill(project / ".godel" / "skills", "code-review", skill_md("code-review", "Our own review checklist."))
    write_skill(project / ".claude" / "skills", "code-review", skill_md("code-review", "Loses to .godel/skills."))
    user = home / "user-skills"
    write_skill(user, "write-tests", skill_md("write-tests", "My personal way of writing tests."))
    proc = start(godeld, home, user_dirs=[GODEL_SKILLS, user], project=project, builtin=True)
    listing = proc.call("skills.list", {})
    skills = by_name(listing)
    assert skills["testing"]["source"] == "project"
    assert skills["testing"]["path"] == str(project / ".claude" / "skills" / "testing")
    assert skills["testing"]["shadows"] == [{"source": "user", "path": str(GODEL_SKILLS / "testing")}]
    assert skills["code-review"]["description"] == "Our own review checklist."
    assert skills["code-review"]["shadows"] == [
        {"source": "project", "path": str(project / ".claude" / "skills" / "code-review")},
        {"source": "user", "path": str(GODEL_SKILLS / "code-review")},
    ]
    assert skills["write-tests"]["source"] == "user"
    assert skills["write-tests"]["shadows"] == [{"source": "builtin", "path": str(BUILTIN / "write-tests")}]
    assert skills["refactoring"]["source"] == "user" and skills["review-a-change"]["source"] == "builtin"
    shadowed = {(s["name"], s["source"]): s["shadowed_by"] for s in listing["shadowed"]}
    assert shadowed[("testing", "user")] == {"source": "project", "path": str(project / ".claude" / "skills" / "testing")}
    only_project = proc.call("skills.list", {"source": "project"})
    assert sorted(s["name"] for s in only_project["skills"]) == ["code-review", "testing"]
    # Another project, given per call, sees its own skills and not this one's.
    other = home / "other"
    write_skill(other / ".godel" / "skills", "deploy", skill_md("deploy", "How we deploy."))
    names = set(by_name(proc.call("skills.list", {"project": str(other)})))
    assert "deploy" in names and by_name(proc.call("skills.list", {"project": str(other)}))["testing"]["source"] == "user"


def test_malformed_skills_are_reported_and_the_others_load(godeld, home):
    user = home / "user-skills"
    write_skill(user, "good", skill_md("good", "Works."))
    write_skill(user, "no-front-matter", "# Just markdown\n")
    write_skill(user, "bad-yaml", "---\nname: bad-yaml\ndescription: [unclosed\n---\nbody\n")
    write_skill(user, "no-description", "---\nname: no-description\n---\nbody\n")
    write_skill(user, "wrong-folder", skill_md("another-name"))
    write_skill(user, "unclosed", "---\nname: unclosed\ndescription: x\n")
    (user / "not-a-skill").mkdir()  # a folder without SKILL.md is not a skill: ignored
    write_skill(user, "Odd_Name", skill_md("Odd_Name", "Loads, with a warning.", extra="owner: me\n"))
    proc = start(godeld, home, user_dirs=[user, GODEL_SKILLS])
    listing = proc.call("skills.list", {})
    assert set(by_name(listing)) == {"good", "Odd_Name", "code-review", "refactoring", "testing"}
    errors = {Path(e["path"]).parent.name: e for e in listing["errors"]}
    assert set(errors) == {"no-front-matter", "bad-yaml", "no-description", "wrong-folder", "unclosed"}
    assert all(e["path"].endswith("SKILL.md") for e in errors.values())
    assert "no YAML front matter" in errors["no-front-matter"]["message"]
    assert errors["bad-yaml"]["message"].startswith("invalid YAML") and errors["bad-yaml"]["line"] >= 3
    assert "no 'description'" in errors["no-description"]["message"]
    assert "'another-name' does not match its folder 'wrong-folder'" in errors["wrong-folder"]["message"] and errors["wrong-folder"]["line"] == 2
    assert "not closed" in errors["unclosed"]["message"]
    warnings = by_name(listing)["Odd_Name"]["warnings"]
    assert any("lowercase" in w["message"] for w in warnings) and any("'owner'" in w["message"] and w["line"] == 4 for w in warnings)
    events = proc.call("events.list", {"pattern": "skill:error", "limit": 100})["events"]
    assert {Path(e["data"]["path"]).parent.name for e in events} == set(errors)


def test_configured_paths_and_godel_skills_path_rank_below_user(godeld, home):
    configured, from_env, user = home / "configured", home / "from-env", home / "user-skills"
    write_skill(configured, "alpha", skill_md("alpha", "From skills.paths."))
    write_skill(from_env, "beta", skill_md("beta", "From GODEL_SKILLS_PATH."))
    write_skill(user, "beta", skill_md("beta", "The user's wins."))
    proc = start(godeld, home, user_dirs=[user], paths=[str(configured)], skills_path=f"{home / 'missing'}:{from_env}")
    skills = by_name(proc.call("skills.list", {}))
    assert skills["alpha"]["source"] == "paths"
    assert skills["beta"]["source"] == "user" and skills["beta"]["shadows"] == [{"source": "paths", "path": str(from_env / "beta")}]


# -- watching -------------------------------------------------------------------------------


def test_added_and_changed_skills_are_picked_up_without_reload(godeld, home):
    user = home / "user-skills"
    write_skill(user, "first", skill_md("first", "The first one."))
    proc = start(godeld, home, user_dirs=[user])
    assert set(by_name(proc.call("skills.list", {}))) == {"first"}
    seq = proc.call("events.list", {"limit": 1, "tail": True})["last_seq"]

    write_skill(user, "second", skill_md("second", "Added while godeld runs."))
    wait_for(lambda: "second" in by_name(proc.call("skills.list", {})), "the new skill")
    reloads = proc.call("events.list", {"pattern": "skills:reload", "since": seq})["events"]
    assert reloads and reloads[-1]["data"]["reason"] == "file-change" and "second" in reloads[-1]["data"]["skills"]

    write_skill(user, "first", skill_md("first", "Changed on disk."))
    wait_for(lambda: by_name(proc.call("skills.list", {}))["first"]["description"] == "Changed on disk.", "the changed description")

    write_skill(user, "first", "broken now\n")
    wait_for(lambda: "first" not in by_name(proc.call("skills.list", {})), "the broken skill to go")
    assert any(Path(e["path"]).parent.name == "first" for e in proc.call("skills.list", {})["errors"])
    errors = proc.call("events.list", {"pattern": "skill:error", "since": seq})["events"]
    assert [Path(e["data"]["path"]).parent.name for e in errors] == ["first"] and "front matter" in errors[0]["data"]["message"]

    shutil.rmtree(user / "second")
    result = proc.call("skills.reload", {})
    assert result["skills"] == 0 and len(result["errors"]) == 1
    assert proc.call("events.list", {"pattern": "skills:reload", "limit": 1, "tail": True})["events"][-1]["data"]["reason"] == "rpc"


def test_daemon_reload_applies_new_skill_settings(godeld, home):
    import yaml

    first, second = home / "first", home / "second"
    write_skill(first, "one", skill_md("one", "In the first directory."))
    write_skill(second, "two", skill_md("two", "In the second directory."))
    proc = start(godeld, home, user_dirs=[first])
    assert set(by_name(proc.call("skills.list", {}))) == {"one"}
    config = yaml.safe_load((home / "config.yaml").read_text())
    config["skills"]["user_dirs"] = [str(second)]
    (home / "config.yaml").write_text(yaml.safe_dump(config))
    seq = proc.call("events.list", {"limit": 1, "tail": True})["last_seq"]
    proc.call("daemon.reload", {})
    assert set(by_name(proc.call("skills.list", {}))) == {"two"}
    # The catalogs were rebuilt after the reload (by the reload itself, or by the watcher that
    # re-watched the new directories first, whichever came first).
    wait_for(lambda: proc.call("events.list", {"pattern": "skills:reload", "since": seq})["events"], "a skills:reload after daemon.reload")


# -- matching -------------------------------------------------------------------------------


@pytest.mark.parametrize("task, best", [
    ("add unit tests for the parser", "testing"),
    ("review this pull request", "code-review"),
    ("clean up duplicated code in the legacy module", "refactoring"),
    ("build an MCP server that wraps the GitHub API", "mcp-builder"),
    ("write the weekly status report for leadership", "internal-comms"),
    ("apply our brand colors to the slides", "brand-guidelines"),
    ("test the local web app in a browser with playwright", "webapp-testing"),
])
def test_matching_ranks_the_fitting_skill_first_with_reasons(godeld, home, task, best):
    proc = start(godeld, home, user_dirs=[AGENT_SKILLS, GODEL_SKILLS])
    result = proc.call("skills.match", {"text": task, "limit": 3})
    matches = result["matches"]
    assert matches[0]["name"] == best, matches
    assert matches[0]["reasons"] and all(isinstance(r, str) for r in matches[0]["reasons"])
    assert [m["score"] for m in matches] == sorted((m["score"] for m in matches), reverse=True)
    assert proc.call("skills.match", {"task": task, "limit": 3}) == result  # deterministic; `task` is an alias


def test_match_reasons_name_the_fields_and_terms(godeld, home):
    proc = start(godeld, home, user_dirs=[GODEL_SKILLS])
    top = proc.call("skills.match", {"text": "add unit tests for the parser"})["matches"][0]
    assert top["name"] == "testing"
    assert "name matches: test" in top["reasons"]
    assert any(r.startswith("description has the phrase: unit test") for r in top["reasons"])
    assert any(r.startswith("when to use matches:") for r in top["reasons"])
    assert proc.call("skills.match", {"text": "bake sourdough bread"})["matches"] == []
    with pytest.raises(RpcError) as err:
        proc.call("skills.match", {"text": "  "})
    assert err.value.code == -32602


# -- activation and prompts -----------------------------------------------------------------


def test_activation_persists_across_restart_and_shapes_the_prompt(godeld, home):
    proc = start(godeld, home, user_dirs=[AGENT_SKILLS, GODEL_SKILLS])
    assert proc.call("skills.activate", {"name": "testing", "agent": "a1"})["changed"] is True
    assert proc.call("skills.activate", {"name": "testing", "agent": "a1"})["changed"] is False
    proc.call("skills.activate", {"name": "code-review", "swarm": "s1"})
    with pytest.raises(RpcError) as err:
        proc.call("skills.activate", {"name": "no-such-skill", "agent": "a1"})
    assert "unknown skill 'no-such-skill'" in err.value.message
    with pytest.raises(RpcError) as err:
        proc.call("skills.activate", {"name": "testing"})
    assert err.value.code == -32602 and "agent or swarm" in err.value.message
    proc.stop()

    proc = start(godeld, home, user_dirs=[AGENT_SKILLS, GODEL_SKILLS])
    active = proc.call("skills.active", {})["active"]
    assert {(a["name"], a["scope"], a["target"]) for a in active} == {("testing", "agent", "a1"), ("code-review", "swarm", "s1")}
    assert [a["name"] for a in proc.call("skills.active", {"agent": "a1"})["active"]] == ["testing"]

    testing = proc.call("skills.get", {"name": "testing"})
    review = proc.call("skills.get", {"name": "code-review"})
    shown = proc.call("skills.prompt", {"agent": "a1"})
    text = shown["prompt"]
    assert shown["active"] == ["testing"] and len(shown["available"]) == 10
    for skill in proc.call("skills.list", {})["skills"]:
        assert f"- {skill['name']}" in text and " ".join(skill["description"].split()) in text
    assert testing["body"].strip() in text
    assert review["body"].strip() not in text
    both = proc.call("skills.prompt", {"agent": "a1", "swarm": "s1"})
    assert both["active"] == ["code-review", "testing"] and review["body"].strip() in both["prompt"]
    nobody = proc.call("skills.prompt", {"task": "review this pull request"})
    assert nobody["active"] == [] and testing["body"].strip() not in nobody["prompt"]
    assert nobody["suggested"][0] == "code-review" and "Suggested for this task: code-review" in nobody["prompt"]

    proc.call("skills.deactivate", {"name": "testing", "agent": "a1"})
    assert proc.call("skills.active", {"agent": "a1"})["active"] == []
    with pytest.raises(RpcError) as err:
        proc.call("skills.deactivate", {"name": "testing", "agent": "a1"})
    assert "not active" in err.value.message
    types = [e["type"] for e in proc.call("events.list", {"pattern": "skill:*", "limit": 100})["events"]]
    assert "skill:deactivate" in types


def test_prompt_lists_files_of_active_skills_and_read_serves_them_without_escapes(godeld, home):
    user = home / "user-skills"
    write_skill(user, "guide", skill_md("guide", "Has references.", body="Read references/detail.md for more.\n"))
    (user / "guide" / "references").mkdir()
    (user / "guide" / "references" / "detail.md").write_text("The details.\n")
    (user / "guide" / "scripts").mkdir()
    (user / "guide" / "scripts" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    secret = home / "secret.txt"
    secret.write_text("do not leak\n")
    (user / "guide" / "references" / "link.md").symlink_to(secret)
    (user / "guide" / "assets").mkdir()
    (user / "guide" / "assets" / "logo.bin").write_bytes(b"\xff\x00\xfe")
    proc = start(godeld, home, user_dirs=[user])

    proc.call("skills.activate", {"name": "guide", "agent": "a"})
    text = proc.call("skills.prompt", {"agent": "a"})["prompt"]
    assert "- references/detail.md" in text and "- scripts/run.sh" in text and "read_skill_file" in text
    assert "The details." not in text  # read on demand, never inlined

    got = proc.call("skills.read", {"name": "guide", "path": "references/detail.md"})
    assert got["content"] == "The details.\n" and got["encoding"] == "utf-8"
    assert proc.call("skills.read", {"name": "guide", "path": "assets/logo.bin"})["encoding"] == "base64"
    for bad in ("../guide/SKILL.md", "references/../../x", str(secret), "references/link.md"):
        with pytest.raises(RpcError) as err:
            proc.call("skills.read", {"name": "guide", "path": bad})
        assert err.value.code == -32602, bad
    with pytest.raises(RpcError) as err:
        proc.call("skills.read", {"name": "guide", "path": "references/missing.md"})
    assert "no file 'references/missing.md'" in err.value.message
    with pytest.raises(RpcError) as err:
        proc.call("skills.read", {"name": "nope", "path": "x"})
    assert "unknown skill 'nope'" in err.value.message


# -- built-in skills ------------------------------------------------------------------------


def test_builtin_skills_load_cleanly_and_match_their_tasks(godeld, home):
    proc = start(godeld, home, user_dirs=[], builtin=True)
    listing = proc.call("skills.list", {})
    builtin = {n: s for n, s in by_name(listing).items() if s["source"] == "builtin"}
    assert {"review-a-change", "write-tests", "refactor-safely", "write-a-godel-workflow"} <= set(builtin)
    assert listing["errors"] == [] and all(s["warnings"] == [] for s in builtin.values())
    for name in builtin:
        body = proc.call("skills.get", {"name": name})["body"]
        assert len(body) > 1500 and when_to_use(body), name
    assert builtin["write-a-godel-workflow"]["files"] == ["references/step-kinds.md"]
    assert "Bash(godelctl workflow validate:*)" in builtin["write-a-godel-workflow"]["allowed_tools"]
    assert proc.call("skills.match", {"text": "write a godel workflow that runs tests then deploys"})["matches"][0]["name"] == "write-a-godel-workflow"
    assert proc.call("skills.match", {"text": "review the diff of this branch"})["matches"][0]["name"] == "review-a-change"
    assert proc.call("skills.match", {"text": "refactor this module safely"})["matches"][0]["name"] == "refactor-safely"


def test_the_workflow_example_in_the_builtin_skill_validates():
    from godeld.workflows import spec

    text = (BUILTIN / "write-a-godel-workflow" / "SKILL.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    result = spec.validate(example, file="example.yaml")
    assert result["valid"], result["errors"]
    assert [s["id"] for s in result["definition"]["steps"]] == ["test", "lint", "changelog", "approve", "tag", "announce"]


def test_allowed_tools_forms():
    assert parse_allowed_tools("Read Grep Bash(git diff:*)") == ["Read", "Grep", "Bash(git diff:*)"]
    assert parse_allowed_tools("Read, Write,Edit") == ["Read", "Write", "Edit"]
    assert parse_allowed_tools(["Read", " Bash(git add:*, git commit:*) "]) == ["Read", "Bash(git add:*, git commit:*)"]
    assert parse_allowed_tools("Bash(git add:*, git commit:*) Read") == ["Bash(git add:*, git commit:*)", "Read"]
    assert parse_allowed_tools(None) is None


def test_allowed_tools_are_exposed(godeld, home):
    user = home / "user-skills"
    write_skill(user, "tools", skill_md("tools", "Tools.", extra="allowed-tools: Read, Bash(pytest:*)\n"))
    write_skill(user, "bad-tools", skill_md("bad-tools", "Tools.", extra="allowed-tools: {a: 1}\n"))
    proc = start(godeld, home, user_dirs=[user])
    listing = proc.call("skills.list", {})
    assert by_name(listing)["tools"]["allowed_tools"] == ["Read", "Bash(pytest:*)"]
    assert [(Path(e["path"]).parent.name, e["line"]) for e in listing["errors"]] == [("bad-tools", 4)]


# -- godelctl -------------------------------------------------------------------------------


def test_godelctl_skills(godeld, home):
    project = home / "project"
    shutil.copytree(GODEL_SKILLS / "testing", project / ".claude" / "skills" / "testing")
    start(godeld, home, user_dirs=[AGENT_SKILLS, GODEL_SKILLS], project=home / "elsewhere")
    out = ok(home, "skills", "list", cwd=project).stdout
    assert re.search(r"^testing\s+project\s+.*shadows user:", out, re.M), out
    assert re.search(r"^mcp-builder\s+user\s", out, re.M)
    listing = json.loads(ok(home, "--json", "skills", "list", cwd=project).stdout)
    assert len(listing["skills"]) == 10 and listing["errors"] == []
    shown = ok(home, "skills", "show", "code-review").stdout
    assert "source:      user" in shown and "## When to Use" in shown
    matched = ok(home, "skills", "match", "review", "this", "pull", "request").stdout
    assert matched.splitlines()[0].split()[1] == "code-review" and "description matches" in matched
    assert "activated for agent a7" in ok(home, "skills", "activate", "testing", "--agent", "a7").stdout
    assert "testing" in ok(home, "skills", "active", "--agent", "a7").stdout
    assert "# Skills" in ok(home, "skills", "prompt", "--agent", "a7").stdout
    assert "deactivated" in ok(home, "skills", "deactivate", "testing", "--agent", "a7").stdout
    assert "10 skill(s), 0 error(s)" in ok(home, "skills", "reload").stdout
    missing = ctl(home, "skills", "show", "nope")
    assert missing.returncode != 0 and "unknown skill 'nope'" in missing.stderr
    usage = ctl(home, "skills", "activate", "testing")
    assert usage.returncode == 2 and "--agent" in usage.stderr


# -- plugins --------------------------------------------------------------------------------


class _TeamSkills:
    """A skill source as a plugin writes one: a name and list_dirs()."""

    def __init__(self, directory: Path):
        self.directory = directory

    def list_dirs(self, project: Path) -> list[Path]:
        return [self.directory]


async def test_hook_register_skill_sources_adds_skills_below_user_and_above_builtin(daemons, home):
    team = home / "team-skills"
    write_skill(team, "team-deploy", skill_md("team-deploy", "How the team deploys."))
    write_skill(team, "write-tests", skill_md("write-tests", "The team's testing rules."))

    class Plugin:
        @hookimpl
        def register_skill_sources(self, register):
            register("team", _TeamSkills(team))
            register("broken", object())  # not a source: reported, never hides the others

    user = home / "user-skills"
    write_skill(user, "team-deploy", skill_md("team-deploy", "Mine wins."))
    overrides = {"GODEL_SKILLS__USER_DIRS": str(user), "GODEL_PROJECT": str(home / "project"), "GODEL_SKILLS__WATCH": "false"}
    daemon = await daemons.start(plugins=[("team-skills", Plugin())], overrides=overrides)
    client = await AsyncRpc.connect(daemon.socket_path)
    try:
        listing = await client.result("skills.list")
        skills = by_name(listing)
        assert skills["team-deploy"]["source"] == "user" and skills["team-deploy"]["shadows"] == [{"source": "team", "path": str(team / "team-deploy")}]
        assert skills["write-tests"]["source"] == "team"
        assert skills["write-tests"]["shadows"] == [{"source": "builtin", "path": str(BUILTIN / "write-tests")}]
        assert [s["name"] for s in listing["sources"]] == ["project", "user", "team", "builtin"]
        assert any("broken" in e["path"] and "list_dirs" in e["message"] for e in listing["errors"])
    finally:
        await client.aclose()
