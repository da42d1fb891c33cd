"""End-to-end test harness: moto's SQS server, a cuttable TCP proxy, real Celery processes.

Kept free of pytest imports: worker processes import ``tests.harness.noop_tasks``.
"""
