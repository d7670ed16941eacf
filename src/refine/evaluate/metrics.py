"""Scoring rules for RULER (NIAH, multi-doc QA) and LongBench, as REFINE computes them.

Sources (line numbers at ReFINE's HEAD and lm-eval 0.4.13):
* RULER: lm-eval 0.4.13 `lm_eval/tasks/ruler/common_utils.py:72-90` (post-processing, `string_match_all`);
  ReFINE `verl/verl/utils/reward_score/ruler.py:20-34` (QA: first line, any reference).
* LongBench: ReFINE `verl/verl/utils/reward_score/longbench.py:41-227`, itself taken from THUDM/LongBench
  `LongBench/metrics.py` + `eval.py:61-72`. lm-eval's copy (`lm_eval/tasks/longbench/metrics.py`) cannot be
  imported here (it needs `jieba` and `fuzzywuzzy`); the tests compare against it with stubs.

Every per-example score is in [0, 1]; records report the mean x100.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

from rapidfuzz.distance import Indel

_CONTROL = re.compile(r"[\x00-\x1f]")


# ----------------------------------------------------------------------------------------------- RULER
def ruler_postprocess(prediction: str) -> str:
    """Strip, turn control characters into newlines, strip again (common_utils.py:72-82, ruler.py:30-34)."""
    return _CONTROL.sub("\n", prediction.strip()).strip()


def string_match_all(prediction: str, references: Sequence[str]) -> float:
    """Fraction of references found in the prediction, case-insensitive (common_utils.py:85-90)."""
    pred = prediction.lower()
    return sum(ref.lower() in pred for ref in references) / len(references)


def niah_score(prediction: str, references: Sequence[str]) -> float:
    """lm-eval's RULER NIAH per-example score: post-process, then `string_match_all` (common_utils.py:101-108)."""
    return string_match_all(ruler_postprocess(prediction), references)


def qa_score(response: str, references: Sequence[str]) -> float:
    """REFINE's RULER QA score: 1 if any reference is a case-insensitive substring of the post-processed
    first line of the response, else 0 (ruler.py:20-28; RULER's `string_match_part`)."""
    pred = ruler_postprocess(response.split("\n")[0]).lower()
    return float(any(ref.lower() in pred for ref in references))


# ------------------------------------------------------------------------------------------- LongBench
def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation, drop articles a/an/the, collapse whitespace (longbench.py:102-118)."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def qa_f1(prediction: str, ground_truth: str) -> float:
    """Bag-of-tokens F1 of the normalised strings (longbench.py:84-100)."""
    pred, truth = normalize_answer(prediction).split(), normalize_answer(ground_truth).split()
    same = sum((Counter(pred) & Counter(truth)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(truth)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, ground_truth: str) -> float:
    """ROUGE-L F of the `rouge` package; 0 when it raises, e.g. on an empty string (longbench.py:144-153)."""
    from rouge import Rouge

    try:
        return float(Rouge().get_scores([prediction], [ground_truth], avg=True)["rouge-l"]["f"])
    except Exception:  # noqa: BLE001  (the official scorer maps every failure to 0)
        return 0.0


# ReFINE hard-codes the 50 TREC classes, typo "somethin" included (longbench.py:165-216).
TREC_CLASSES: tuple[str, ...] = (
    "Food",
    "Date",
    "Order, rank",
    "Speed",
    "Disease and medicine",
    "Word with a special property",
    "Abbreviation",
    "Language",
    "Letter like a-z",
    "Other entity",
    "Animal",
    "Expression abbreviated",
    "Price",
    "Techniques and method",
    "Musical instrument",
    "Mountain",
    "Currency name",
    "Event",
    "Product",
    "State",
    "Individual",
    "Organ of body",
    "Reason",
    "Manner of an action",
    "City",
    "Religion",
    "Invention, book and other creative piece",
    "Distance, linear measure",
    "Temperature",
    "Postcode or other code",
    "Size, area and volume",
    "Sport",
    "Country",
    "Other location",
    "Lasting time of somethin",
    "Equivalent term",
    "Description of something",
    "Weight",
    "Vehicle",
    "Color",
    "Other number",
    "Definition of something",
    "Element and substance",
    "Description of a person",
    "Symbols and sign",
    "Number of something",
    "Plant",
    "Percent, fraction",
    "Group or organization of person",
    "Title of a person",
)


def classification(prediction: str, ground_truth: str, classes: Sequence[str] = TREC_CLASSES) -> float:
    """1/#matched classes if the ground truth is matched, else 0 (longbench.py:163-227).

    Classes that occur in the prediction are matched; matches that are strict substrings of the ground truth
    are dropped. The official loop removes from the list it iterates over, which skips the element after each
    removal; that behaviour is kept so scores agree with LongBench and ReFINE.
    """
    matches = [name for name in classes if name in prediction]
    for term in matches:  # mutating while iterating: deliberate, see docstring
        if term in ground_truth and term != ground_truth:
            matches.remove(term)
    return 1.0 / len(matches) if ground_truth in matches else 0.0


def fuzz_ratio(a: str, b: str) -> int:
    """fuzzywuzzy 0.18 `fuzz.ratio` as the official scorer's environment runs it, with python-Levenshtein
    installed: the Indel (Levenshtein, substitution cost 2) ratio 2 * LCS / (|a| + |b|), x100, rounded by
    `utils.intr` (Python `round`, half to even); equal strings score 100 and an empty one 0 (fuzz.py:19-27,
    utils.py:24-48,103-105; python-Levenshtein `ratio_py`: (lensum - dist) / lensum). Without
    python-Levenshtein fuzzywuzzy falls back to difflib, which scores lower when the matches are scattered.
    """
    if a == b:
        return 100
    if not a or not b:
        return 0
    lensum = len(a) + len(b)
    return int(round(100 * ((lensum - Indel.distance(a, b)) / lensum)))


def code_sim(prediction: str, ground_truth: str) -> float:
    """`fuzz_ratio` / 100 of the first line without "`", "#" or "//" (longbench.py:127-134).

    ReFINE keeps the whole prediction when no line qualifies (official LongBench: the empty string).
    """
    lines = prediction.lstrip("\n").split("\n")
    line = next((ln for ln in lines if "`" not in ln and "#" not in ln and "//" not in ln), prediction)
    return fuzz_ratio(line, ground_truth) / 100


def _first_line(text: str) -> str:
    return text.split("\n")[0]


def _first_line_lstrip(text: str) -> str:
    return text.lstrip("\n").split("\n")[0]


def _whole(text: str) -> str:
    return text


# task -> (metric name, metric, response pre-processing); longbench.py:43-69.
_LONGBENCH: dict[str, tuple[str, Callable[[str, str], float], Callable[[str], str]]] = {
    **{
        t: ("qa_f1_score", qa_f1, _first_line)
        for t in ("narrativeqa", "qasper", "multifieldqa_en", "hotpotqa", "2wikimqa", "musique")
    },
    "triviaqa": ("qa_f1_score", qa_f1, _first_line_lstrip),
    "trec": ("classification_score", classification, _first_line_lstrip),
    "samsum": ("rouge_score", rouge_l, _first_line_lstrip),
    **{t: ("rouge_score", rouge_l, _whole) for t in ("gov_report", "qmsum", "multi_news")},
    **{t: ("code_sim_score", code_sim, _whole) for t in ("lcc", "repobench-p")},
}
LONGBENCH_TASKS: tuple[str, ...] = tuple(_LONGBENCH)


def longbench_metric_name(task: str) -> str:
    """The metric a LongBench task reports (e.g. "qa_f1_score")."""
    return _lookup(task)[0]


def longbench_score(task: str, response: str, answers: Sequence[str]) -> float:
    """REFINE's LongBench score of one response: pre-process per task, then max over the answers.

    qa_f1, rouge and classification also strip the response; code_sim does not (longbench.py:76-161).
    """
    _, metric, prepare = _lookup(task)
    response = prepare(response)
    if metric is not code_sim:
        response = response.strip()
    return max((metric(response, answer) for answer in answers), default=0.0)


def _lookup(task: str):
    try:
        return _LONGBENCH[task]
    except KeyError:
        raise ValueError(f"unknown LongBench task {task!r}; known: {sorted(_LONGBENCH)}") from None
