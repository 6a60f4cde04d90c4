"""Preference pairs for DPO, in TRL's conversational format, from the sessions.

A pair is one pairwise question of a session: ``prompt`` is the conversation up to it (the
study's system prompt when it had one, then each earlier question with the answer that
went on in the conversation: the one the participant chose, or the only one of a pointwise
question) and the question itself; ``chosen`` / ``rejected`` are the two answers as
assistant messages. Every pair also carries where its label came from
(``label_source``), how sure that is (``confidence``), and the participant, session and
turn it came from.

Labels (``labels=``):

- ``explicit``: the participant's own choice. Ties and questions left without a choice
  give no pair.
- ``implicit``: a reward model's prediction from the implicit signals (P(answer 1
  preferred) from :mod:`ifllm_lab.reward`), kept when its confidence ``max(p, 1 - p)``
  reaches ``min_confidence``. A model applied to the sessions it was trained on predicts
  them better than it would new ones: use one trained on other participants.
- ``agree``: only where the choice and a confident prediction agree (``both agree``).
- ``fill``: the choice where there is one; the confident prediction where the choice is a
  tie or missing.

Participants whose own gaze data fails the quality rule
(:func:`~ifllm_lab.reward.data.quality_filter`) give no pairs unless ``quality=None``.
Everything left out is counted by reason (:attr:`PairsReport.dropped`).
"""
from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["LABELS", "SOURCES", "Pair", "PairsReport", "PairsError", "make_pairs", "write_jsonl", "write_hf",
           "read_jsonl"]

LABELS = {
    "explicit": "the participant's choice",
    "implicit": "the reward model's confident prediction",
    "agree": "only where the choice and a confident prediction agree",
    "fill": "the choice, and the confident prediction where the choice is a tie or missing",
}
HF_SOURCES_FILE = "ifllm-sources.json"  #: in a dataset folder: the participants and sessions of its pairs
SOURCES = ("explicit", "implicit", "both agree")  #: values of ``label_source``

# why a pairwise question gave no pair (keys of PairsReport.dropped)
REASONS = {
    "tie": "the participant rated the answers equal",
    "no choice": "the question was left without a choice",
    "quality": "the participant's gaze data failed the quality rule",
    "same answers": "the two answers are the same text",
    "empty answer": "an answer is empty (not generated or cancelled)",
    "no prediction": "the reward model could not score the question (its data is missing)",
    "low confidence": "the reward model's confidence is below the threshold",
    "disagree": "the choice and the reward model's prediction disagree",
}


class PairsError(Exception):
    """Pairs cannot be made or written: the message says why."""


@dataclass
class Pair:
    prompt: list[dict]
    chosen: list[dict]
    rejected: list[dict]
    label_source: str
    confidence: float
    participant: str
    session: str
    turn: int
    study: str = ""
    chosen_model: str = ""
    rejected_model: str = ""

    def as_dict(self) -> dict:
        d = asdict(self)
        d["confidence"] = round(float(self.confidence), 4)
        return d


@dataclass
class PairsReport:
    pairs: list[Pair] = field(default_factory=list)
    by_source: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    pointwise: int = 0  # questions with one answer (not pairs)
    questions: int = 0  # pairwise questions seen
    sessions: int = 0
    participants: int = 0
    dropped_participants: dict[str, str] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # files that could not be read

    def summary(self) -> dict:
        return {"pairs": len(self.pairs), "by_source": {s: self.by_source.get(s, 0) for s in SOURCES},
                "dropped": dict(sorted(self.dropped.items())), "pairwise_questions": self.questions,
                "pointwise_questions": self.pointwise, "sessions": self.sessions, "participants": self.participants,
                "dropped_participants": self.dropped_participants,
                "skipped": [{"path": p, "why": w} for p, w in self.skipped]}


def _system_prompt(meta) -> str:
    extra = meta.extra if isinstance(meta.extra, dict) else {}
    llm = (extra.get("config") or {}).get("llm") if isinstance(extra.get("config"), dict) else None
    if isinstance(llm, list) and llm and isinstance(llm[0], dict):
        return str(llm[0].get("system_prompt") or "")
    if isinstance(llm, dict):
        return str(llm.get("system_prompt") or "")
    return ""


def _session_turns(path: str) -> tuple[dict, list[dict]]:
    """(ids and system prompt, the turns in order) of one session file."""
    from ..session import SessionReader

    with SessionReader(path) as r:
        meta = r.meta
        ids = {"session": meta.session_id or os.path.splitext(os.path.basename(path))[0],
               "participant": meta.participant, "study": meta.study, "system": _system_prompt(meta)}
        if "turns" not in r or not len(r["turns"]):
            return ids, []
        cols = ["turn", "mode", "prompt", "response_1", "response_2", "model_1", "model_2", "preference"]
        rows = r["turns"].read(columns=cols)
    turns = [{c: (str(row[c]) if c in ("prompt", "response_1", "response_2", "model_1", "model_2") else int(row[c]))
              for c in cols} for row in rows]
    return ids, sorted(turns, key=lambda t: t["turn"])


def _predictions(model_folder: str, data) -> dict[tuple[str, int], float]:
    """P(answer 1 preferred) per (session, turn) from the reward model in ``model_folder``."""
    from ..reward.model import ModelError
    from ..reward.predict import predict_dataset
    from ..reward.store import ModelFileError, load_model

    try:
        model, info = load_model(model_folder)
    except ModelFileError as exc:
        raise PairsError(str(exc)) from None
    if model.task != "pairwise":
        raise PairsError(f"{model_folder} is a {model.task} model; implicit labels need a pairwise one")
    emb = None
    if model.emb_axes is not None:
        from ..reward.text_embed import dataset_embeddings

        emb, _got = dataset_embeddings([data], model.task)
    try:
        preds = predict_dataset(model, data, emb, top=0)
    except ModelError as exc:
        raise PairsError(f"{model_folder}: {exc}") from None
    return {(p.session, p.turn): p.p for p in preds}


def make_pairs(sources: list[str], *, labels: str = "explicit", model_folder: str | None = None,
               min_confidence: float = 0.7, quality=None, all_participants: bool = False,
               cache_dir: str | None = None, workers: int = 2,
               progress: Callable[[float, str], None] | None = None, cancel: Callable[[], bool] | None = None,
               log: Callable[[str], None] | None = None) -> PairsReport:
    """The preference pairs of ``sources`` (session files, folders, IFLLM releases). The
    quality rule is ``quality`` (default :class:`~ifllm_lab.reward.data.QualityRule`) unless
    ``all_participants``."""
    from ..reward.data import DataError, QualityRule, load_dataset, quality_filter

    if labels not in LABELS:
        raise PairsError(f"unknown labels {labels!r}: use one of {', '.join(LABELS)}")
    if labels != "explicit" and not model_folder:
        raise PairsError(f"labels {labels!r} need a reward model (--reward-model)")
    if not 0.5 <= min_confidence <= 1.0:
        raise PairsError(f"min_confidence {min_confidence} must be between 0.5 and 1")
    try:
        data = load_dataset(sources, cache_dir=cache_dir, workers=workers, progress=progress, cancel=cancel, log=log)
    except DataError as exc:
        raise PairsError(str(exc)) from None
    rep = PairsReport(sessions=len(data.sessions), skipped=list(data.skipped))
    comp = data.comparisons
    bad_participants: set[str] = set()
    if not all_participants and len(comp.get("participant", ())):
        _keep, rep.dropped_participants = quality_filter(comp, quality or QualityRule())
        bad_participants = set(rep.dropped_participants)
    p1 = _predictions(model_folder, data) if model_folder and labels != "explicit" else {}
    participants = set()
    for path in data.sessions:
        if cancel is not None and cancel():
            raise InterruptedError("cancelled")
        try:
            ids, turns = _session_turns(path)
        except Exception as exc:  # read once for the features: a failure now is only a note
            rep.skipped.append((path, str(exc) or type(exc).__name__))
            continue
        history: list[dict] = [{"role": "system", "content": ids["system"]}] if ids["system"] else []
        for t in turns:
            pair = bool(t["response_2"])
            user = {"role": "user", "content": t["prompt"]}
            if not pair:
                rep.pointwise += 1
                history += [user, {"role": "assistant", "content": t["response_1"]}]
                continue
            rep.questions += 1
            pref = t["preference"]
            went_on = t["response_2"] if pref == 2 else t["response_1"]
            prompt = history + [user]
            history = history + [user, {"role": "assistant", "content": went_on}]
            if ids["participant"] in bad_participants:
                why = "quality"
            else:
                why, side, source, conf = _label(t, labels, p1.get((ids["session"], t["turn"])), min_confidence)
            if why is not None:
                rep.dropped[why] += 1
                continue
            a, b = (t["response_1"], t["response_2"]) if side == 1 else (t["response_2"], t["response_1"])
            ma, mb = (t["model_1"], t["model_2"]) if side == 1 else (t["model_2"], t["model_1"])
            rep.pairs.append(Pair(prompt, [{"role": "assistant", "content": a}],
                                  [{"role": "assistant", "content": b}], source, conf, ids["participant"],
                                  ids["session"], t["turn"], ids["study"], ma, mb))
            rep.by_source[source] += 1
            participants.add(ids["participant"])
    rep.participants = len(participants)
    return rep


def _label(t: dict, labels: str, p: float | None, min_confidence: float):
    """(why no pair or None, side preferred 1/2, label_source, confidence)."""
    a, b = t["response_1"], t["response_2"]
    if not a.strip() or not b.strip():
        return "empty answer", 0, "", 0.0
    if a == b:
        return "same answers", 0, "", 0.0
    pref = t["preference"]
    explicit = pref if pref in (1, 2) else None
    implicit = conf = None
    if p is not None and np.isfinite(p):
        conf = max(p, 1.0 - p)
        implicit = (1 if p >= 0.5 else 2) if conf >= min_confidence else None
    no_choice = "tie" if pref == 0 else "no choice"
    if labels == "explicit":
        return (no_choice, 0, "", 0.0) if explicit is None else (None, explicit, "explicit", 1.0)
    if labels == "implicit" or (labels == "fill" and explicit is None):
        if conf is None:
            return "no prediction", 0, "", 0.0
        if implicit is None:
            return "low confidence", 0, "", 0.0
        if explicit is not None and labels == "implicit":
            return None, implicit, "both agree" if implicit == explicit else "implicit", conf
        return None, implicit, "implicit", conf
    if labels == "fill":
        return None, explicit, "explicit", 1.0
    # agree
    if explicit is None:
        return no_choice, 0, "", 0.0
    if conf is None:
        return "no prediction", 0, "", 0.0
    if implicit is None:
        return "low confidence", 0, "", 0.0
    if implicit != explicit:
        return "disagree", 0, "", 0.0
    return None, explicit, "both agree", conf


# -- files ------------------------------------------------------------------------------------
def write_jsonl(pairs: list[Pair], path: str) -> str:
    """One JSON object per line; written beside ``path`` and moved into place (a failed
    write leaves nothing)."""
    from ..paths import write_text_atomic

    path = os.path.abspath(path)
    write_text_atomic(path, "".join(json.dumps(p.as_dict(), ensure_ascii=False) + "\n" for p in pairs))
    return path


def write_hf(pairs: list[Pair], folder: str) -> str:
    """A Hugging Face ``datasets`` folder (``load_from_disk``); needs the ``dpo`` extra
    (the worker module writes it: the training libraries load only there)."""
    from ..paths import write_text_atomic
    from ..session.provenance import sources_of_rows
    from .worker import DpoUnavailable, write_hf_dataset

    rows = [p.as_dict() for p in pairs]
    try:
        out = write_hf_dataset(rows, folder)
    except DpoUnavailable as exc:
        raise PairsError(f"{exc} (or write --format jsonl)") from None
    # a dataset folder cannot be read without the training libraries: whose data it holds
    # is written beside its files (a participant's erasure reads it)
    write_text_atomic(os.path.join(out, HF_SOURCES_FILE), json.dumps(sources_of_rows(rows), indent=1) + "\n")
    return out


def read_jsonl(path: str) -> list[dict]:
    """The rows of a pairs file, each checked for the fields a DPO trainer needs."""
    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            for i, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise PairsError(f"{path} line {i} is not JSON: {exc}") from None
                missing = [k for k in ("prompt", "chosen", "rejected") if k not in row]
                if missing:
                    raise PairsError(f"{path} line {i} has no {', '.join(missing)}")
                rows.append(row)
    except OSError as exc:
        raise PairsError(f"{path} cannot be read: {exc.strerror or exc}") from None
    return rows
