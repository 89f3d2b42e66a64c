"""Commands on top of the stages: the `newsflow` CLI, the embedded local stack and the in-process chain.

The composition root: the only package that knows every stage. Imports point one way: newsflow -> services -> shared.
"""
