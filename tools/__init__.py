"""Development tools: quality evaluations, benchmarks and the AsyncAPI generator (`python -m tools --help`).

Not part of the installed package or the image; they import the pipeline (commands, services, shared), and nothing
in the pipeline imports them.
"""
