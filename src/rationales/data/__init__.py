"""The data stage: training datasets from the store, in TRL's column conventions.

* ``filters``: the shared selection (task, model, method, correct only, deduplicated, agreeing
  with self-consistency, at most K per problem) and ``splits``: the train/test split by
  problem, recorded in the store;
* ``sft`` (``messages`` / ``prompt``+``completion``), ``dpo`` (``prompt``/``chosen``/``rejected``
  from outcome, step-controlled and sibling-step pairs), ``stepwise`` (PRM labels),
  ``contrastive`` (QCRD positives/negatives with weights), ``counterfactual`` (PINTO);
* ``pairs``: Step-Controlled DPO pair mining; ``export``: JSONL / Parquet / ``datasets.Dataset``.
"""
