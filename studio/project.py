"""The Rasa project content staff edit: intents with their examples (zh and en), and responses, read from and
written back to the project's own YAML files (`domain/`, `data/`) through the round trip in `studio.yamlio`.

Every edit is applied in memory, checked (`check`), and only then written; Rasa's own `rasa data validate` runs in
the engine's environment before a model is trained (`validate_with_rasa`), since it needs ~20 s to start.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from bot.server import rasa_environment
from studio.yamlio import YamlFile, append_entry, examples_block, parse_examples

CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
INTENT_NAME = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
RESPONSE_NAME = re.compile(r"^utter_[a-z0-9_]{1,60}$")
MAX_EXAMPLE_CHARS = 300
LANGUAGES = ("zh", "en")


def language_of(text: str) -> str:
    """zh when the text has any Chinese character (mixed "hi 你好" belongs with the Chinese examples), else en."""
    return "zh" if CJK.search(text) else "en"


class ProjectError(ValueError):
    """An edit staff asked for that would make the training data wrong; `problems` says what, in plain words."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Intent:
    name: str
    examples: dict[str, list[str]] = field(default_factory=lambda: {"zh": [], "en": []})


@dataclass
class Response:
    name: str
    zh: str
    en: str
    extra: list[str]  # other keys of the variations (buttons, image…), kept untouched by edits


def _read_yaml(path: Path) -> YamlFile | None:
    try:
        loaded = YamlFile(path)
    except Exception:  # noqa: BLE001 - a broken file is reported by check(), not a crash here
        return None
    return loaded if isinstance(loaded.data, CommentedMap) else None


class TrainingProject:
    """One Rasa project folder (`domain/` + `data/`). Not thread-safe: callers hold the studio's project lock."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.domain_dir = root / "domain"
        self.data_dir = root / "data"

    # ---- reading --------------------------------------------------------------------------------------------------

    def _files(self, directory: Path, key: str) -> list[YamlFile]:
        files = []
        for path in sorted(p for p in directory.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file()):
            loaded = _read_yaml(path)
            if loaded is not None and key in loaded.data:
                files.append(loaded)
        return files

    def nlu_files(self) -> list[YamlFile]:
        return self._files(self.data_dir, "nlu")

    def intents(self) -> list[Intent]:
        """Intents as the domain lists them (in its order), with their examples by language."""
        by_name: dict[str, Intent] = {}
        for domain in self._files(self.domain_dir, "intents"):
            for entry in domain.data["intents"] or []:
                name = next(iter(entry)) if isinstance(entry, dict) else str(entry)
                by_name.setdefault(name, Intent(name))
        for nlu in self.nlu_files():
            for block in nlu.data["nlu"] or []:
                if isinstance(block, dict) and "intent" in block:
                    intent = by_name.setdefault(str(block["intent"]), Intent(str(block["intent"])))
                    for example in parse_examples(block.get("examples")):
                        intent.examples[language_of(example)].append(example)
        return list(by_name.values())

    def responses(self) -> list[Response]:
        found = []
        for domain in self._files(self.domain_dir, "responses"):
            for name, variations in (domain.data["responses"] or {}).items():
                zh, en, extra = "", "", set[str]()
                for variation in variations or []:
                    if not isinstance(variation, dict):
                        continue
                    if _is_english(variation):
                        en = str(variation.get("text") or "")
                    elif not variation.get("condition"):
                        zh = zh or str(variation.get("text") or "")
                    extra.update(k for k in variation if k not in ("text", "condition"))
                found.append(Response(str(name), zh, en, sorted(extra)))
        return found

    # ---- editing --------------------------------------------------------------------------------------------------

    def add_example(self, intent: str, text: str) -> Path:
        """Add one example; returns the file it went to (the intent's block in the file of the example's language)."""
        text = _clean_example(text)
        known = {i.name: i for i in self.intents()}
        if intent not in known:
            raise ProjectError([f"there is no intent {intent!r}; add the intent first"])
        self._refuse_duplicate(text, known)
        files = self.nlu_files()
        target, block = self._block_for(files, intent, language_of(text))
        if block is None:
            block = CommentedMap()
            block["intent"] = intent
            block["examples"] = examples_block([text])
            append_entry(target.data["nlu"], block)
        else:
            block["examples"] = examples_block([*parse_examples(block.get("examples")), text])
        target.save()
        return target.path

    def edit_example(self, intent: str, old: str, new: str) -> Path:
        new = _clean_example(new)
        known = {i.name: i for i in self.intents()}
        if old != new:
            self._refuse_duplicate(new, known)
        nlu, block, examples = self._find_example(intent, old)
        examples[examples.index(old)] = new
        block["examples"] = examples_block(examples)
        nlu.save()
        return nlu.path

    def delete_example(self, intent: str, text: str) -> Path:
        nlu, block, examples = self._find_example(intent, text)
        examples.remove(text)
        if examples:
            block["examples"] = examples_block(examples)
        else:
            nlu.data["nlu"].remove(block)
        nlu.save()
        return nlu.path

    def move_example(self, text: str, from_intent: str, to_intent: str) -> Path:
        if to_intent not in {i.name for i in self.intents()}:
            raise ProjectError([f"there is no intent {to_intent!r}"])
        self.delete_example(from_intent, text)
        try:
            return self.add_example(to_intent, text)
        except ProjectError:
            self.add_example(from_intent, text)  # put it back where it was
            raise

    def add_intent(self, name: str) -> Path:
        if not INTENT_NAME.match(name):
            raise ProjectError([f"{name!r} is not a usable intent name: lower-case letters, digits and _"])
        if name in {i.name for i in self.intents()}:
            raise ProjectError([f"intent {name!r} exists already"])
        domains = self._files(self.domain_dir, "intents")
        if not domains:
            raise ProjectError(["no domain file lists intents"])
        domain = domains[0]
        append_entry(domain.data["intents"], name)
        domain.save()
        return domain.path

    def set_response(self, name: str, zh: str, en: str) -> Path:
        """Create a response, or change the texts of its Chinese default and English variation (other keys kept)."""
        if not RESPONSE_NAME.match(name):
            raise ProjectError([f"{name!r} is not a usable response name: utter_ then lower-case letters, digits, _"])
        zh, en = zh.strip(), en.strip()
        problems = []
        if not zh:
            problems.append("the Chinese text is empty (it is the default every conversation can get)")
        if not en:
            problems.append("the English text is empty")
        if problems:
            raise ProjectError(problems)
        domains = self._files(self.domain_dir, "responses")
        for domain in domains:
            responses = domain.data["responses"]
            if name in responses:
                variations = responses[name]
                default = next((v for v in variations if isinstance(v, dict) and not v.get("condition")), None)
                english = next((v for v in variations if isinstance(v, dict) and _is_english(v)), None)
                if default is None:
                    variations.insert(0, CommentedMap(text=DoubleQuotedScalarString(zh)))
                elif default.get("text") != zh:
                    default["text"] = DoubleQuotedScalarString(zh)
                if english is None:
                    variations.append(_english_variation(en))
                elif english.get("text") != en:
                    english["text"] = DoubleQuotedScalarString(en)
                domain.save()
                return domain.path
        if not domains:
            raise ProjectError(["no domain file has responses"])
        domain = domains[-1]
        variations = CommentedSeq([CommentedMap(text=DoubleQuotedScalarString(zh)), _english_variation(en)])
        append_entry(domain.data["responses"], variations, name)
        domain.save()
        return domain.path

    # ---- checks -----------------------------------------------------------------------------------------------------

    def check(self) -> list[str]:
        """Cheap, in-process checks of the whole project (what Rasa would refuse), in plain words."""
        problems: list[str] = []
        for directory in (self.domain_dir, self.data_dir):
            for path in sorted(directory.rglob("*.yml")):
                if _read_yaml(path) is None:
                    problems.append(f"{path.relative_to(self.root)} is not valid YAML with a mapping at the top")
        declared = set()
        for domain in self._files(self.domain_dir, "intents"):
            for entry in domain.data["intents"] or []:
                declared.add(next(iter(entry)) if isinstance(entry, dict) else str(entry))
        seen: dict[str, str] = {}
        for nlu in self.nlu_files():
            for block in nlu.data["nlu"] or []:
                if not isinstance(block, dict) or "intent" not in block:
                    continue
                name = str(block["intent"])
                if name not in declared:
                    problems.append(f"intent {name!r} has examples in {nlu.path.name} but is not in the domain")
                for example in parse_examples(block.get("examples")):
                    other = seen.get(example.lower())
                    if other is not None and other != name:
                        problems.append(f"example {example!r} is under both {other!r} and {name!r}")
                    seen[example.lower()] = name
        return problems

    # ---- helpers ----------------------------------------------------------------------------------------------------

    def _refuse_duplicate(self, text: str, known: dict[str, Intent]) -> None:
        lowered = text.lower()
        for intent in known.values():
            for examples in intent.examples.values():
                if any(example.lower() == lowered for example in examples):
                    raise ProjectError([f"{text!r} is already an example of {intent.name!r}"])

    def _find_example(self, intent: str, text: str) -> tuple[YamlFile, CommentedMap, list[str]]:
        for nlu in self.nlu_files():
            for block in nlu.data["nlu"] or []:
                if isinstance(block, dict) and block.get("intent") == intent:
                    examples = parse_examples(block.get("examples"))
                    if text in examples:
                        return nlu, block, examples  # type: ignore[return-value]
        raise ProjectError([f"{text!r} is not an example of {intent!r}"])

    def _block_for(self, files: list[YamlFile], intent: str, language: str
                   ) -> tuple[YamlFile, CommentedMap | None]:
        """The intent's block in the file whose examples are mostly in `language` (a new block there if none)."""
        if not files:
            raise ProjectError(["there is no NLU file under data/"])
        best: tuple[float, YamlFile, Any] | None = None
        for nlu in files:
            texts = [e for b in nlu.data["nlu"] or [] if isinstance(b, dict) for e in parse_examples(b.get("examples"))]
            share = sum(language_of(t) == language for t in texts) / len(texts) if texts else 0.0
            block = next((b for b in nlu.data["nlu"] or [] if isinstance(b, dict) and b.get("intent") == intent), None)
            score = share + (1.0 if block is not None and share >= 0.5 else 0.0)
            if best is None or score > best[0]:
                best = (score, nlu, block)
        assert best is not None
        return best[1], best[2]


def _clean_example(text: str) -> str:
    text = " ".join(text.split())  # one line: an example never spans lines in Rasa's block
    problems = []
    if not text:
        problems.append("the example is empty")
    if len(text) > MAX_EXAMPLE_CHARS:
        problems.append(f"the example is longer than {MAX_EXAMPLE_CHARS} characters")
    if text.startswith("/"):
        problems.append("an example may not start with / (Rasa reads that as a button payload)")
    if problems:
        raise ProjectError(problems)
    return text


def _is_english(variation: Any) -> bool:
    for condition in variation.get("condition") or []:
        if isinstance(condition, dict) and condition.get("name") == "language" and condition.get("value") == "en":
            return True
    return False


def _english_variation(text: str) -> CommentedMap:
    condition = CommentedSeq([CommentedMap([("type", "slot"), ("name", "language"), ("value", "en")])])
    return CommentedMap([("condition", condition), ("text", DoubleQuotedScalarString(text))])


def engine_environment() -> dict[str, str]:
    """The environment for the engine's commands run from the gateway: Rasa's, minus the gateway's LOG_LEVEL
    (Rasa reads the same variable and refuses our lower-case "info")."""
    env = rasa_environment("")
    env.pop("LOG_LEVEL", None)
    return env


async def validate_with_rasa(root: Path, rasa_bin: Path, config: Path, cwd: Path, timeout_seconds: float = 300.0
                             ) -> tuple[bool, list[str]]:
    """`rasa data validate` in the engine's environment: (passed, the lines worth showing staff)."""
    if not await asyncio.to_thread(rasa_bin.exists):
        return False, [f"the engine is not installed at {rasa_bin}"]
    process = await asyncio.create_subprocess_exec(
        str(rasa_bin), "data", "validate", "--domain", str(root / "domain"), "--data", str(root / "data"),
        "--config", str(config), cwd=str(cwd), env=engine_environment(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout_seconds)
    except TimeoutError:
        process.kill()
        return False, [f"rasa data validate took longer than {timeout_seconds:.0f} s"]
    lines = output.decode(errors="replace").splitlines()
    shown = [line.strip() for line in lines if re.search(r"error|invalid|duplicate|conflict", line, re.IGNORECASE)]
    return process.returncode == 0, shown[-30:] or lines[-5:]
