"""The fault suite: real services as processes against private servers, a fault injected while articles flow.

Every test here asserts the delivery promise after its fault: each article pushed is stored exactly once or in the
DLQ with a reason, nothing stays pending past the claim idle time plus a margin, every service is alive or exited
non-zero, and `newsflow status` exits and reports what is true. Fixtures shared by the fault tests live here;
`start_service`, `service_env` and the private servers come from tests/conftest.py and tests/servers.py.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/faults is a fault test (`pytest -m faults` runs only these)."""
    for item in items:
        if "/tests/faults/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.integration)
