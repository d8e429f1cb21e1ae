"""A local stand-in for Monnify's API: the same paths, envelope, field names and errors
as the real sandbox for everything `shared.monnify.MonnifyClient` uses, a checkout page
where a person can pay, signed webhooks with Monnify's retry schedule, and `/sim/...`
endpoints that let tests pay, reverse, refund, re-deliver and break things on purpose.

State lives in memory, so it runs as ONE process (threads for concurrency):
`python -m services.monnify_sim`. Configuration: see `services.monnify_sim.config`.
"""
