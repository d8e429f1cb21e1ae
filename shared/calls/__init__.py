"""Pay-per-minute calls: rating, reservations in blocks, cut-off and settlement.

Domain code only: no Flask, no Celery. Functions that need a worker task afterwards
return `Followup`s, which the gateway and the worker enqueue with `followups.schedule`.

The gateway's side of a call is `service` (initiate, end, reads); the worker's steps are
`renewals` (renew, cut off), `settlement` (capture) and the beat job `sweeper`; a call
ends exactly once in `ending`.
"""
