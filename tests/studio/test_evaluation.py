"""The evaluation table: both models on the same examples."""

from __future__ import annotations

from studio.evaluation import Example, compare, evaluation_set


def test_the_sample_is_stable_and_labelled_messages_always_count() -> None:
    training = [(f"example {i}", "greet") for i in range(100)]
    first = evaluation_set(training, [("公积金能不能取", "ask_question")])
    again = evaluation_set(training + [("a new one", "greet")], [("公积金能不能取", "ask_question")])
    sampled = [e for e in first if e.source == "training"]
    assert 5 <= len(sampled) <= 40
    assert {e.text for e in sampled} <= {e.text for e in again}
    assert first[-1] == Example("公积金能不能取", "ask_question", "review")


def test_compare_reports_accuracy_f1_confusions_and_changed_examples() -> None:
    examples = [Example("hi", "greet", "training"), Example("bye", "goodbye", "training"),
                Example("公积金能不能取", "ask_question", "review"), Example("路灯坏了", "report_problem", "training")]
    live = [{"intent": "greet", "confidence": 0.9}, {"intent": "goodbye", "confidence": 0.9},
            {"intent": "nlu_fallback", "confidence": 0.3}, {"intent": "report_problem", "confidence": 0.8}]
    new = [{"intent": "greet", "confidence": 0.95}, {"intent": "greet", "confidence": 0.5},
           {"intent": "ask_question", "confidence": 0.9}, {"intent": "report_problem", "confidence": 0.9}]
    report = compare(examples, live, new)
    assert report["live_accuracy"] == 0.75 and report["new_accuracy"] == 0.75
    assert [r["text"] for r in report["better"]] == ["公积金能不能取"]
    assert [r["text"] for r in report["worse"]] == ["bye"] and report["worse"][0]["new"] == "greet"
    assert report["confusions"] == [{"intent": "goodbye", "predicted": "greet", "count": 1}]
    f1 = {row["intent"]: (row["live_f1"], row["new_f1"]) for row in report["per_intent"]}
    assert f1["ask_question"] == (0.0, 1.0) and f1["goodbye"] == (1.0, 0.0) and f1["greet"] == (1.0, 0.667)
    assert report["from_review"] == 1 and report["recommended"] is True
