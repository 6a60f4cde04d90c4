"""A saved reward model for the live monitor's tests: pairwise, on the implicit features
(gaze + mouse + context), trained on synthetic recorded sessions whose eyes and hand give
the choice away."""
from __future__ import annotations

from pathlib import Path


def implicit_model(folder: Path, cache: Path) -> str:
    """Train and save the model under ``folder``; returns the model folder."""
    from ifllm_lab.reward.data import load_dataset
    from ifllm_lab.reward.model import RewardModel
    from ifllm_lab.reward.store import save_model
    from ifllm_lab.synthetic.session import make_study_session

    sessions = folder / "sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    for i in range(6):
        make_study_session(str(sessions / f"p{i}.h5"), f"P{i}", turns=6, signal=0.9, seed=10 + i)
    data = load_dataset([str(sessions)], cache_dir=str(cache), workers=1)
    model = RewardModel("pairwise", "logistic", "implicit").fit(data.comparisons)
    return save_model(model, str(folder / "implicit"))
