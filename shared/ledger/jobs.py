"""The ledger's periodic worker tasks, by name: the worker's decorators, beat schedule and
queue table use the same names."""

EXPIRE_HOLDS_TASK = "ledger.expire_holds"
CHECK_INVARIANTS_TASK = "ledger.check_invariants"
