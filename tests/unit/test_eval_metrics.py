"""Scoring rules (refine.evaluate.metrics) on hand-computed cases, and against lm-eval's shipped copies."""

import importlib
import sys
import types

import pytest

from refine.evaluate import metrics as M


# --------------------------------------------------------------------------------------------- RULER
def test_string_match_all_is_mean_over_references_case_insensitive():
    assert M.string_match_all("Found 1234 and abc", ["1234", "ABC", "zzz", "9"]) == 0.5
    assert M.niah_score("  The number is 42.\x00\n ", ["42"]) == 1.0


def test_ruler_postprocess_strips_and_turns_control_characters_into_newlines():
    assert M.ruler_postprocess(" \tab\x01cd\x1f \n") == "ab\ncd"


@pytest.mark.parametrize(
    "response, refs, expected",
    [
        ("Paris is the capital", ["PARIS"], 1.0),  # case-insensitive substring
        ("Rome\nParis", ["paris"], 0.0),  # only the first line counts
        ("  \x02Par\tis", ["paris"], 0.0),  # tab becomes a newline inside the line
        ("Berlin", ["Munich", "berlin"], 1.0),  # any reference
        ("", ["x"], 0.0),
    ],
)
def test_qa_score_first_line_any_reference(response, refs, expected):
    assert M.qa_score(response, refs) == expected


def test_ruler_metrics_match_lm_eval():
    cu = importlib.import_module("lm_eval.tasks.ruler.common_utils")
    cases = [(" x\x00Y z ", ["y", "q"]), ("abc", ["ABC"]), ("\n", ["a", "b", "c"])]
    for pred, refs in cases:
        assert M.ruler_postprocess(pred) == cu.postprocess_pred([pred])[0]
        assert M.niah_score(pred, refs) == cu.string_match_all(cu.postprocess_pred([pred]), [refs])


# ----------------------------------------------------------------------------------------- LongBench
@pytest.mark.parametrize(
    "pred, truth, expected",
    [
        ("The cat sat.", "cat sat on mat", 2 / 3),  # P = 2/2, R = 2/4
        ("An apple!", "apple", 1.0),  # articles and punctuation dropped
        ("x x y", "x y y", 2 / 3),  # multiset overlap 2 of 3 on both sides
        ("dog", "cat", 0.0),
        ("", "cat", 0.0),
    ],
)
def test_qa_f1(pred, truth, expected):
    assert M.qa_f1(pred, truth) == pytest.approx(expected)


def test_rouge_l_counts_unique_words():
    # rouge 1.0.1 counts distinct words: ref {the, cat, sat, on, mat} = 5, hyp 3, union LCS 3 -> R 3/5, P 1
    assert M.rouge_l("the cat sat", "the cat sat on the mat") == pytest.approx(2 * 0.6 / 1.6, abs=1e-6)
    assert M.rouge_l("", "anything") == 0.0  # the package raises on an empty hypothesis


def test_classification_trec_classes():
    assert len(M.TREC_CLASSES) == len(set(M.TREC_CLASSES)) == 50
    assert "Lasting time of somethin" in M.TREC_CLASSES
    assert M.classification("Location: Other location", "Other location") == 1.0
    assert M.classification("Country or City", "City") == 0.5  # two classes match
    assert M.classification("city", "City") == 0.0  # case-sensitive
    assert M.classification("Animal", "City") == 0.0


def test_classification_keeps_the_official_skip_when_removing():
    # "a" is dropped (strict substring of the truth), the removal makes the loop skip "b": 1/|[b, ab]|
    assert M.classification("ab", "ab", classes=["a", "b", "ab"]) == 0.5


def _lcs(a: str, b: str) -> int:
    row = [0] * (len(b) + 1)
    for ca in a:
        prev, row = row, [0]
        for j, cb in enumerate(b):
            row.append(prev[j] + 1 if ca == cb else max(prev[j + 1], row[j]))
    return row[-1]


def _fuzz_ratio_reference(a: str, b: str) -> int:
    """fuzzywuzzy 0.18 fuzz.ratio with python-Levenshtein: decorators (None -> 0, equal -> 100, empty -> 0),
    then utils.intr(100 * ratio) with ratio = (lensum - indel distance) / lensum = 2 LCS / lensum."""
    if a is None or b is None:
        return 0
    if a == b:
        return 100
    if not a or not b:
        return 0
    return int(round(100 * (2 * _lcs(a, b) / (len(a) + len(b)))))


@pytest.mark.parametrize(
    "a, b, expected, difflib_value",
    [
        # LCS "dcda" = 4 of 12 characters -> 67; difflib's longest-block recursion finds 1 match -> 17
        ("adcadca", "dbcda", 67, 17),
        # LCS 6 of 16 (scattered) -> 75; difflib 25
        ("badbacba", "bcabcbba", 75, 25),
        ("y.(y", "()yx", 50, 25),  # LCS "(y" of 8; difflib matches one character
        ("a" + "x" * 7, "a" + "y" * 7, 12, 12),  # 2/16 = 12.5 rounds half to even (utils.intr = int(round))
        ("abc" + "x" * 5, "abc" + "y" * 5, 38, 38),  # 6/16 = 37.5 -> 38
        ("", "", 100, 100),  # equal strings first
        ("", "a", 0, 0),
    ],
)
def test_fuzz_ratio_is_the_levenshtein_ratio_rounded_like_fuzzywuzzy(a, b, expected, difflib_value):
    import difflib

    assert M.fuzz_ratio(a, b) == _fuzz_ratio_reference(a, b) == expected
    if a and b and a != b:  # the pure-Python fuzzywuzzy (difflib) value, which the official environment does not use
        assert round(100 * difflib.SequenceMatcher(None, a, b).ratio()) == difflib_value


def test_fuzz_ratio_matches_the_lcs_reference_on_random_code_like_strings():
    import random

    rng = random.Random(0)
    for _ in range(300):
        a, b = ("".join(rng.choice("ab(x)=, ") for _ in range(rng.randint(0, 14))) for _ in range(2))
        assert M.fuzz_ratio(a, b) == _fuzz_ratio_reference(a, b), (a, b)


@pytest.mark.parametrize(
    "pred, truth, expected",
    [
        ("# comment\nx = 1", "x = 1", 1.0),  # first line without # ` //
        ("\n\nabcd", "abce", 0.75),  # leading newlines stripped; 2*3/8
        ("// a\n`b`\nfoo()", "foo()", 1.0),
        ("# only", "# only", 1.0),  # ReFINE: whole prediction when no line qualifies
        ("# c\nadcadca", "dbcda", 0.67),  # difflib (pure-Python fuzzywuzzy) would give 0.17
    ],
)
def test_code_sim(pred, truth, expected):
    assert M.code_sim(pred, truth) == pytest.approx(expected)


@pytest.mark.parametrize(
    "task, response, answers, expected",
    [
        ("hotpotqa", "London\nParis", ["Paris"], 0.0),  # first line only
        ("hotpotqa", "\nLondon", ["London"], 0.0),  # no lstrip for QA tasks: the first line is empty
        (
            "triviaqa",
            "\n\nLondon\nx",
            ["Rome", "london"],
            1.0,
        ),  # lstrip("\n"), then first line; max over refs
        ("trec", "\nAbbreviation\nAnimal", ["Abbreviation"], 1.0),
        ("samsum", "\nthe cat sat\non the mat", ["the cat sat on the mat"], pytest.approx(0.75, abs=1e-6)),
        ("qmsum", "the cat sat\non the mat", ["the cat sat on the mat"], pytest.approx(1.0, abs=1e-6)),
        ("lcc", "  y = 2\n", ["  y = 2"], 1.0),  # not stripped
        ("narrativeqa", "  The answer  ", ["answer"], 1.0),
    ],
)
def test_longbench_score_per_task_rules(task, response, answers, expected):
    assert M.longbench_score(task, response, answers) == expected


def test_longbench_tasks_and_metric_names():
    assert len(M.LONGBENCH_TASKS) == 14
    assert M.longbench_metric_name("repobench-p") == "code_sim_score"
    assert M.longbench_metric_name("samsum") == "rouge_score"
    with pytest.raises(ValueError, match="unknown LongBench task 'lsht'"):
        M.longbench_score("lsht", "x", ["x"])


def test_longbench_metrics_match_lm_eval(monkeypatch):
    """lm-eval's copy needs jieba only for Chinese tasks and fuzzywuzzy for code_sim; with stubs it imports and must
    agree (code_sim: the line rules; the ratio is pinned above)."""
    monkeypatch.setitem(sys.modules, "jieba", types.ModuleType("jieba"))
    fuzzywuzzy = types.ModuleType("fuzzywuzzy")  # the official environment's fuzz.ratio (python-Levenshtein backend)
    fuzzywuzzy.fuzz = types.SimpleNamespace(ratio=_fuzz_ratio_reference)
    monkeypatch.setitem(sys.modules, "fuzzywuzzy", fuzzywuzzy)
    monkeypatch.delitem(sys.modules, "lm_eval.tasks.longbench.metrics", raising=False)
    ref = importlib.import_module("lm_eval.tasks.longbench.metrics")
    texts = [
        "The cat sat on the mat.",
        "a cat; the dog",
        "Paris, France",
        "",
        "x. y. z",
        "Number of something",
        "It is an Other number, maybe Date",
        "Country or City",
        "the the the",
    ]
    for pred in texts:
        for truth in texts[:3] + ["Other number", "City", "Date"]:
            assert M.qa_f1(pred, truth) == ref.qa_f1_score(pred, truth)
            assert M.rouge_l(pred, truth) == ref.rouge_score(pred, truth)
            assert M.classification(pred, truth) == ref.classification_score(pred, truth, all_classes=M.TREC_CLASSES)
            if pred.strip():  # lm-eval falls back to "" and skips blank lines; ReFINE keeps the prediction
                assert M.code_sim(pred, truth) == ref.code_sim_score(pred, truth)
    assert M.classification("ab", "ab", ["a", "b", "ab"]) == ref.classification_score(
        "ab", "ab", all_classes=["a", "b", "ab"]
    )
