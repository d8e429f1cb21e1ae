"""The funding worker tasks, by name: the gateway enqueues by name (it never imports the
worker), and the worker's decorators, beat schedule and queue table use the same names."""

PROCESS_EVENT_TASK = "payments.process_event"
REQUEUE_INBOX_TASK = "payments.requeue_inbox"
RECONCILE_TASK = "payments.reconcile_pending"
DAILY_REPORT_TASK = "payments.daily_report"
