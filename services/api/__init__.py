"""The HTTP gateway: authenticates, validates, reads, and enqueues. It moves money only
through the ledger in `shared/` (the first hold of a call, which the caller waits for)."""
