"""The train stage: one config dataclass per method on ``base.TrainConfig``.

``sft`` and ``dpo`` run TRL's trainers; ``qcrd`` (contrastive rationale distillation) and
``pinto`` (counterfactual regularisation) are ``transformers.Trainer`` subclasses with their own
losses; ``models`` loads base models (HF directory, packaged GGUF rebuilt as a plain
``LlamaForCausalLM``, tiny models made in code). Every trainer checkpoints, resumes, and saves
a merged model usable as ``--backend transformers --model OUTPUT`` with ``model_card.json``.
"""
