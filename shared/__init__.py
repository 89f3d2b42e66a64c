"""What the stages run on: contracts (events, streams, settings, errors), transport, storage, observability.

Imports nothing from `services`, `newsflow` or `tools`.
"""
