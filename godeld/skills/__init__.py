"""Agent Skills: SKILL.md folders found in ordered sources, matched to tasks, activated per agent or
swarm, and shown to agents with progressive disclosure.

- registry.py — parsing SKILL.md, sources, precedence and shadowing, errors with file and line
- match.py    — scoring skills against a task, with reasons
- prompt.py   — the text an agent gets: every name and description, bodies of active skills only
- service.py  — the daemon service: catalogs per project, the directory watcher, activations
"""

from godeld.skills.registry import Catalog, Skill, SkillProblem, SourceDirs, load_skill, scan

__all__ = ["Catalog", "Skill", "SkillProblem", "SourceDirs", "load_skill", "scan"]
