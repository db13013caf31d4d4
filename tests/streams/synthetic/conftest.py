"""Shared runs: generating is deterministic, so each configuration is made once per session."""

from __future__ import annotations

import pytest

from streams.synthetic import FailureRates, Generated, GeneratorConfig, generate


@pytest.fixture(scope="session")
def small_week() -> Generated:
    """A week at small scale with the default rates."""
    return generate(GeneratorConfig(days=7, seed=11, scale="small"))


@pytest.fixture(scope="session")
def medium_week() -> Generated:
    """A week at medium scale with the default rates."""
    return generate(GeneratorConfig(days=7, seed=5, scale="medium"))


@pytest.fixture(scope="session")
def edgy_run() -> Generated:
    """Three weeks at small scale with many failures and many boundary cases."""
    rates = FailureRates(
        notice_late=0.2,
        notice_missed=0.2,
        result_late=0.2,
        result_missed=0.1,
        order_cancelled=0.1,
        ack_late=0.2,
        ack_missed=0.2,
        summary_late=0.2,
        summary_missed=0.2,
        letter_late=0.2,
        letter_missed=0.2,
        overbooked=0.3,
        contact_after_death=0.8,
        edge_cases=0.4,
    )
    return generate(GeneratorConfig(days=21, seed=3, scale="small", rates=rates))
