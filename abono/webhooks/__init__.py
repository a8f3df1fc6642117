"""Events out: what happened, told to the operator's systems (billing, CRM) by signed webhooks.

``events_out`` turns domain events into delivery rows in the transaction that caused them,
``delivery`` sends them (a durable queue: retries with jittered backoff, failed rows kept for
a replay), ``endpoints`` manages where they go. docs/webhooks.md is the receiver's contract.
"""
