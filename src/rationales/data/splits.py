"""Train/test splits by problem, recorded in the store so evaluation never sees a training problem.

A problem's side is a pure function of (split seed, problem id): ``hash < test_fraction`` puts it
in the test set. So the split is stable when problems are added (old problems keep their side),
identical on every machine, and needs no coordination. It is *recorded* anyway, as a store blob
(kind ``"split"``, key ``"split:NAME"``) with every assigned problem id, so that an evaluation
can ask the store which problems it may use (``heldout_ids``) and a later export with different
split settings under the same name is refused instead of silently leaking problems.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import RationalesError
from ..records import content_hash
from ..store import Store

SPLIT_KIND = "split"


class SplitError(RationalesError):
    pass


def side_of(problem_id: str, test_fraction: float, seed: int = 0) -> str:
    """"test" or "train" for one problem (deterministic)."""
    u = int(content_hash("split", seed, problem_id), 16) / float(16 ** 16)
    return "test" if u < test_fraction else "train"


@dataclass
class Split:
    name: str
    test_fraction: float
    seed: int
    train: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)

    def side(self, problem_id: str) -> str | None:
        if problem_id in set(self.train):
            return "train"
        if problem_id in set(self.test):
            return "test"
        return None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "test_fraction": self.test_fraction, "seed": self.seed,
                "train": list(self.train), "test": list(self.test)}

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "test_fraction": self.test_fraction, "seed": self.seed,
                "train_problems": len(self.train), "test_problems": len(self.test), "key": split_key(self.name)}


def split_key(name: str) -> str:
    return f"{SPLIT_KIND}:{name}"


def load_split(store: Store, name: str = "default") -> Split | None:
    saved = store.get_blob(split_key(name))
    if not saved:
        return None
    return Split(saved["name"], float(saved["test_fraction"]), int(saved["seed"]), list(saved["train"]),
                 list(saved["test"]))


def record_split(store: Store, problem_ids: Iterable[str], *, name: str = "default", test_fraction: float = 0.2,
                 seed: int = 0) -> Split:
    """Assign ``problem_ids`` to train/test (new ids only; recorded ones keep their side) and save."""
    if not isinstance(test_fraction, (int, float)) or not math.isfinite(test_fraction) or \
            not 0.0 <= test_fraction < 1.0:
        raise SplitError(f"test_fraction must be in [0, 1), got {test_fraction!r}.")
    split = load_split(store, name)
    if split is None:
        split = Split(name, float(test_fraction), int(seed))
    elif not math.isclose(split.test_fraction, test_fraction) or split.seed != seed:
        raise SplitError(f"Split '{name}' is recorded with test_fraction={split.test_fraction}, seed={split.seed}; "
                         f"pass those values, or a new split name, so no training problem leaks into the test set.")
    train, test = set(split.train), set(split.test)
    changed = False
    for pid in problem_ids:
        if pid in train or pid in test:
            continue
        changed = True
        (test if side_of(pid, split.test_fraction, split.seed) == "test" else train).add(pid)
    if changed or store.get_blob(split_key(name)) is None:
        split.train, split.test = sorted(train), sorted(test)
        store.put_blob(split_key(name), SPLIT_KIND, split.as_dict())
    return split


def heldout_ids(store: Store, name: str = "default") -> set[str]:
    """Problem ids an evaluation may use: the recorded test side of split ``name``."""
    split = load_split(store, name)
    if split is None:
        raise SplitError(f"No split '{name}' is recorded in {store.path}; export or train with --split {name} first.")
    return set(split.test)


def training_ids(store: Store, name: str = "default") -> set[str]:
    split = load_split(store, name)
    if split is None:
        raise SplitError(f"No split '{name}' is recorded in {store.path}; export or train with --split {name} first.")
    return set(split.train)
