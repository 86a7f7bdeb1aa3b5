"""Staff edits are written back to Rasa's YAML with everything else in the file exactly as it was."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from studio.project import ProjectError, TrainingProject
from studio.yamlio import YamlFile
from tests.studio.conftest import TRAINING_DATA, snapshot


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """(removed, added) lines of a diff."""
    removed, added = [], []
    for line in difflib.ndiff(before.splitlines(), after.splitlines()):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def test_loading_and_saving_every_file_changes_no_byte(project_dir: Path) -> None:
    for path in sorted(project_dir.rglob("*.yml")):
        loaded = YamlFile(path)
        assert loaded.dumps() == loaded.original, path.name
        assert loaded.save() is False


def test_adding_an_example_adds_exactly_one_line(project: TrainingProject, project_dir: Path) -> None:
    before = snapshot(project_dir)
    written = project.add_example("greet", "good day to you city hall")
    assert written.name == "en.yml"
    after = snapshot(project_dir)
    name = written.relative_to(project_dir).as_posix()
    assert {k: v for k, v in after.items() if k != name} == {k: v for k, v in before.items() if k != name}
    assert changed_lines(before[name], after[name]) == ([], ["    - good day to you city hall"])
    greet = next(i for i in project.intents() if i.name == "greet")
    assert greet.examples["en"][-1] == "good day to you city hall"


def test_a_chinese_example_goes_to_the_chinese_file(project: TrainingProject, project_dir: Path) -> None:
    before = (project_dir / "data/nlu/zh.yml").read_text()
    assert project.add_example("request_human", "帮我找个真人客服吧").name == "zh.yml"
    removed, added = changed_lines(before, (project_dir / "data/nlu/zh.yml").read_text())
    assert removed == [] and added == ["    - 帮我找个真人客服吧"]


def test_edit_move_delete(project: TrainingProject, project_dir: Path) -> None:
    path = project_dir / "data/nlu/en.yml"
    before = path.read_text()
    project.edit_example("greet", "hiya", "hiya there")
    removed, added = changed_lines(before, path.read_text())
    assert removed == ["    - hiya"] and added == ["    - hiya there"]
    project.move_example("hiya there", "greet", "goodbye")
    intents = {i.name: i for i in project.intents()}
    assert "hiya there" not in intents["greet"].examples["en"]
    assert "hiya there" in intents["goodbye"].examples["en"]
    project.delete_example("goodbye", "hiya there")
    removed, added = changed_lines(before, path.read_text())
    assert removed == ["    - hiya"] and added == []


def test_a_new_intent_and_its_first_example(project: TrainingProject, project_dir: Path) -> None:
    domain_before = (project_dir / "domain/domain.yml").read_text()
    nlu_before = (project_dir / "data/nlu/en.yml").read_text()
    project.add_intent("ask_weather")
    project.add_example("ask_weather", "is the weather station open on sundays")
    removed, added = changed_lines(domain_before, (project_dir / "domain/domain.yml").read_text())
    assert removed == [] and added == ["  - ask_weather"]
    nlu_after = (project_dir / "data/nlu/en.yml").read_text()
    assert nlu_after.startswith(nlu_before.rstrip("\n"))
    assert nlu_after.endswith(
        "\n- intent: ask_weather\n  examples: |\n    - is the weather station open on sundays\n\n"
    )
    assert "ask_weather" in {i.name for i in project.intents()}
    assert project.check() == []


def test_responses_change_in_place_and_new_ones_get_both_languages(project: TrainingProject,
                                                                   project_dir: Path) -> None:
    path = project_dir / "domain/responses.yml"
    before = path.read_text()
    greet = next(r for r in project.responses() if r.name == "utter_greet")
    project.set_response("utter_greet", "您好！这里是滨江市政务服务助手。", greet.en)
    removed, added = changed_lines(before, path.read_text())
    assert len(removed) == 1 and added == ['    - text: "您好！这里是滨江市政务服务助手。"']
    project.set_response("utter_weather", "明天有雨。", "Rain tomorrow.")
    after = path.read_text()
    assert after.startswith(path.read_text()[: len(before) - 200])
    assert after.endswith(
        '\n\n  utter_weather:\n    - text: "明天有雨。"\n    - condition:\n        - type: slot\n'
        '          name: language\n          value: en\n      text: "Rain tomorrow."\n'
    )
    new = next(r for r in project.responses() if r.name == "utter_weather")
    assert (new.zh, new.en) == ("明天有雨。", "Rain tomorrow.")


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (lambda p: p.add_example("greet", "hello"), "already an example of 'greet'"),
        (lambda p: p.add_example("goodbye", "HELLO"), "already an example of 'greet'"),
        (lambda p: p.add_example("no_such_intent", "whatever"), "there is no intent"),
        (lambda p: p.add_example("greet", "   "), "empty"),
        (lambda p: p.add_example("greet", "/greet"), "may not start with /"),
        (lambda p: p.add_intent("Bad Name"), "not a usable intent name"),
        (lambda p: p.add_intent("greet"), "exists already"),
        (lambda p: p.set_response("greeting", "你好", "hi"), "not a usable response name"),
        (lambda p: p.set_response("utter_x", "", "hi"), "Chinese text is empty"),
        (lambda p: p.delete_example("greet", "not there"), "is not an example of"),
        (lambda p: p.move_example("hello", "greet", "nope"), "there is no intent"),
    ],
)
def test_refused_edits_say_why_and_change_nothing(project: TrainingProject, project_dir: Path, call: object,
                                                  reason: str) -> None:
    before = snapshot(project_dir)
    with pytest.raises(ProjectError) as refused:
        call(project)  # type: ignore[operator]
    assert reason in str(refused.value)
    assert snapshot(project_dir) == before


def test_check_finds_an_example_under_two_intents(project: TrainingProject, project_dir: Path) -> None:
    assert project.check() == []
    path = project_dir / "data/nlu/en.yml"
    path.write_text(path.read_text().replace("    - bye\n", "    - bye\n    - hello\n", 1))
    assert any("'hello' is under both" in p for p in project.check())


def test_the_repository_training_data_is_never_touched(project: TrainingProject) -> None:
    before = snapshot(TRAINING_DATA)
    project.add_example("greet", "one more hello for the copy")
    assert snapshot(TRAINING_DATA) == before
