"""The skills part of an agent's prompt, with progressive disclosure.

An agent always sees every available skill's name and description (cheap: a line each); the full
instructions only of skills activated for it or its swarm; and, for those, the paths of the
skill's other files (references/, scripts/, assets/), which it reads on demand through the
`read_skill_file` tool (backed by skills.read) instead of having them all in its context.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from godeld.skills.registry import Skill

READ_TOOL = "read_skill_file"


def format_skills(available: Iterable[Skill], active: Iterable[Skill], suggested: Sequence[str] = ()) -> str:
    """Markdown for the system prompt; "" when there are no skills at all."""
    available = sorted(available, key=lambda s: s.name)
    active = sorted({s.name: s for s in active}.values(), key=lambda s: s.name)
    if not available and not active:
        return ""
    active_names = {s.name for s in active}
    out = [
        "# Skills",
        "",
        "Skills are folders of instructions for particular kinds of work. Available skills"
        " (name: when to use it):",
        "",
    ]
    for skill in available:
        mark = " (active)" if skill.name in active_names else ""
        out.append(f"- {skill.name}{mark}: {_one_line(skill.description)}")
    if suggested:
        out += ["", "Suggested for this task: " + ", ".join(suggested) + "."]
    out += ["", f"Read any file of a skill with the `{READ_TOOL}` tool (arguments: `name`, `path`)."]
    for skill in active:
        out += ["", f"## Skill: {skill.name}", ""]
        if skill.allowed_tools:
            out += [f"Allowed tools: {', '.join(skill.allowed_tools)}", ""]
        out.append(skill.body.strip())
        if skill.files:
            out += ["", f"Files of this skill, read them with `{READ_TOOL}` when you need them:"]
            out += [f"- {path}" for path in skill.files]
    return "\n".join(out).rstrip() + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())
