"""Fixed limits of funding that the rest of the configuration is checked against
(`load_settings`); imports nothing else of the domain, so reading settings loads no
metrics, database or Monnify code."""

# The longest a webhook event waits between two tries (shared/funding/inbox.py); the
# broker's visibility timeout must outlast it.
MAX_TASK_RETRY_DELAY_SECONDS = 300
