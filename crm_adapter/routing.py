"""Routing: which department gets a new work order, from rules in `routing.yml` (path from CRM_ROUTING_PATH).

Evidence is weighed in this order, and the decision says which piece decided:
1. `rules`, in file order, first match wins; a rule matches when every condition it names holds (category, intent,
   kb_department, keywords). A rule's department may be `$kb_department` (the department of the KB article the
   bot found).
2. `keywords` per department (Chinese and English): the department with the most distinct hits in the title,
   description and location wins; a tie between departments is left to a person.
3. Everything else goes to the dispatch desk (`default_department`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crm_adapter.workflow import DISPATCH_DESK

DEFAULT_ROUTING_PATH = Path(__file__).resolve().parent / "routing.yml"
KB_DEPARTMENT = "$kb_department"


@dataclass(frozen=True)
class DepartmentInfo:
    code: str
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class RoutingInput:
    category: str
    text: str  # title, description and location together
    intent: str | None = None
    kb_department: str | None = None
    # What a classifier of the text makes of it: departments with their shares, best first (routing evidence).
    candidates: tuple[tuple[str, float], ...] = ()


URGENT_CATEGORIES = frozenset({"complaint", "report"})


@dataclass(frozen=True)
class RoutingDecision:
    department: str
    reason: str  # "rule:<name>", "keywords:<hits>", "default"


@dataclass(frozen=True)
class Rule:
    name: str
    department: str
    categories: frozenset[str] = frozenset()
    intents: frozenset[str] = frozenset()
    kb_departments: frozenset[str] = frozenset()  # "*" = any article department
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeywordSet:
    department: str
    keywords: tuple[str, ...]


def normalise(text: str) -> str:
    """NFKC (full-width → half-width), lower case, whitespace collapsed: what keywords are matched against."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).lower()).strip()


def _has_keyword(text: str, keyword: str) -> bool:
    if keyword.isascii():
        # English words on word boundaries ("bus" must not match "business"); a trailing "s" is allowed.
        return re.search(rf"(?<![a-z0-9]){re.escape(keyword)}s?(?![a-z0-9])", text) is not None
    return keyword in text


@dataclass
class Router:
    departments: dict[str, DepartmentInfo]
    rules: list[Rule] = field(default_factory=list)
    keyword_sets: list[KeywordSet] = field(default_factory=list)
    default_department: str = DISPATCH_DESK
    # Words naming a danger to people: a report or complaint with one is urgent (shortest deadline, and the
    # citizen is put through to a person at once).
    urgent_keywords: tuple[str, ...] = ()
    # A classifier's best department is taken when its share is at least this (swept on bench/data/heldout, base
    # m3e-small: 0.3 routed 96/120 right and left 4 to the desk; 0.4 routed 83 and left 15; 0.0 routed 99, none
    # left); below it the keyword rules may decide, else a person at the dispatch desk, shown the candidates.
    classifier_min_share: float = 0.3

    def urgent(self, category: str, text: str) -> list[str]:
        """The danger words in a report or complaint (empty: not urgent)."""
        if category not in URGENT_CATEGORIES:
            return []
        normalised = normalise(text)
        return [k for k in self.urgent_keywords if _has_keyword(normalised, k)]

    def route(self, item: RoutingInput) -> RoutingDecision:
        text = normalise(item.text)
        for rule in self.rules:
            if self._matches(rule, item, text):
                department = rule.department
                if department == KB_DEPARTMENT:
                    if not item.kb_department or item.kb_department not in self.departments:
                        continue
                    department = item.kb_department
                return RoutingDecision(department, f"rule:{rule.name}")
        candidates = [(d, share) for d, share in item.candidates
                      if d in self.departments and d != self.default_department]
        if candidates and candidates[0][1] >= self.classifier_min_share:
            department, share = candidates[0]
            return RoutingDecision(department, f"classifier:{share:.2f}")
        scores: dict[str, list[str]] = {}
        for kw_set in self.keyword_sets:
            hits = [k for k in kw_set.keywords if _has_keyword(text, k)]
            if hits:
                scores.setdefault(kw_set.department, []).extend(hits)
        if scores:
            best = max(len(set(h)) for h in scores.values())
            leaders = [d for d, h in scores.items() if len(set(h)) == best]
            if len(leaders) == 1:
                hits = sorted(set(scores[leaders[0]]))
                return RoutingDecision(leaders[0], "keywords:" + ",".join(hits))
            return RoutingDecision(self.default_department, "tie:" + ",".join(sorted(leaders)) + _shown(candidates))
        return RoutingDecision(self.default_department, "default" + _shown(candidates))

    @staticmethod
    def _matches(rule: Rule, item: RoutingInput, text: str) -> bool:
        if rule.categories and item.category not in rule.categories:
            return False
        if rule.intents and (item.intent or "") not in rule.intents:
            return False
        if rule.kb_departments and not (
            item.kb_department and ("*" in rule.kb_departments or item.kb_department in rule.kb_departments)
        ):
            return False
        return not rule.keywords or any(_has_keyword(text, k) for k in rule.keywords)


def _shown(candidates: list[tuple[str, float]]) -> str:
    """The classifier's top candidates, for the dispatcher who decides instead."""
    return "; candidates " + ", ".join(f"{d} {share:.2f}" for d, share in candidates[:3]) if candidates else ""


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def parse_routing(raw: dict[str, Any]) -> Router:
    departments = {
        str(d["code"]): DepartmentInfo(str(d["code"]), str(d["name_zh"]), str(d["name_en"]))
        for d in raw.get("departments") or []
    }
    default = str(raw.get("default_department", DISPATCH_DESK))
    if DISPATCH_DESK not in departments:
        raise ValueError("routing: the departments must include the dispatch desk 'dispatch'")
    if default not in departments:
        raise ValueError(f"routing: default_department {default!r} is not a department")
    rules: list[Rule] = []
    for i, r in enumerate(raw.get("rules") or []):
        when = r.get("when") or {}
        department = str(r["department"])
        if department != KB_DEPARTMENT and department not in departments:
            raise ValueError(f"routing: rule {r.get('name', i)} sends to unknown department {department!r}")
        keywords = tuple(normalise(k) for k in _strings(when.get("keywords")))
        rules.append(
            Rule(
                name=str(r.get("name", f"rule{i + 1}")),
                department=department,
                categories=frozenset(_strings(when.get("category"))),
                intents=frozenset(_strings(when.get("intent"))),
                kb_departments=frozenset(_strings(when.get("kb_department"))),
                keywords=keywords,
            )
        )
    keyword_sets: list[KeywordSet] = []
    for department, langs in (raw.get("keywords") or {}).items():
        if department not in departments:
            raise ValueError(f"routing: keywords for unknown department {department!r}")
        words: list[str] = []
        for lang_words in (langs or {}).values():
            words.extend(normalise(w) for w in _strings(lang_words))
        keyword_sets.append(KeywordSet(department, tuple(dict.fromkeys(words))))
    urgent = tuple(dict.fromkeys(normalise(w) for w in _strings(raw.get("urgent_keywords"))))
    return Router(departments, rules, keyword_sets, default, urgent)


def load_routing(path: Path | None = None) -> Router:
    return parse_routing(yaml.safe_load((path or DEFAULT_ROUTING_PATH).read_text(encoding="utf-8")) or {})
