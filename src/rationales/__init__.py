"""rationales: an LLM's rationale as a first-class object.

Layers, top to bottom; a module imports only from its own layer or below, nothing imports
``cli/``, and the contract in pyproject.toml (``[tool.importlinter]``, run by
tests/test_layers.py) keeps it true, imports inside functions included::

    cli/                thin: parse options, call a job, render its result (table, --json, report)
    report/ | review/   all HTML and plots (result -> page) | the local web app
    jobs/               orchestration returning typed results (jobs/results.py); never prints
    train/              trainers, one config dataclass each
    data/               datasets: export, sft, dpo, stepwise, contrastive, pairs, splits
    select/             strategies (vote, best_of_n, step_search, beam, mcts, adaptive) + step tree
    score/              rationale-level Scores: utility, faithfulness, brevity, calibration
    verify/             everything that attaches a step Check: arithmetic, mc, prm, genprm, consensus, ...
    generate.py         prompts -> backends -> stored, segmented, answer-checked rationales
    scale/              scale-out: the backend as a Ray actor pool, work claims of parallel drivers
    backends/ answers   io: model backends; answer extraction and checking
    store tasks prompts steps models     io: SQLite store, task loaders, templates, segmentation, aliases
    records stats config registry        base: record types, statistics, configs, the name registry
    errors              the error types

No module-level side effects; heavy imports (torch, transformers, trl, ray) happen inside the
functions that need them, so ``rationales --help`` stays fast.
"""

__version__ = "0.1.0"
