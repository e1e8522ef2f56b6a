"""Policy stage: rule packs, the organisation's register, and the pure evaluator."""
