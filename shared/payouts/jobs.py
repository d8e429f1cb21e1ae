"""The payout worker tasks, by name: the gateway enqueues by name (it never imports the
worker), and the worker's decorators, beat schedule and queue table use the same names."""

SEND_WITHDRAWAL_TASK = "payouts.send"
POLL_WITHDRAWALS_TASK = "payouts.poll"
