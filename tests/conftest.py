from __future__ import annotations

import pytest

from config import Settings
from tests.helpers import make_settings


@pytest.fixture
def settings() -> Settings:
    return make_settings()
