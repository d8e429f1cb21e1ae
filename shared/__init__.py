"""Domain code shared by the gateway and the workers. Knows nothing of Flask or Celery."""
