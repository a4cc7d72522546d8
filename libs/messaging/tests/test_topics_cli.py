"""The topic-creation entry point the deploy jobs run: it passes the declared topics on."""

from __future__ import annotations

import pytest
from parley_messaging import topics


def test_cli_creates_the_declared_topics(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    async def fake_ensure(
        bootstrap: str, declared: list[topics.Topic], replication_factor: int = 1
    ) -> list[str]:
        seen.update(bootstrap=bootstrap, declared=declared, rf=replication_factor)
        return [t.name for t in declared]

    monkeypatch.setattr(topics, "ensure_topics", fake_ensure)
    argv = ["--bootstrap-servers", "kafka:9092", "--partitions", "3", "--replication-factor", "3"]
    assert topics.main(argv) == 0
    assert seen["bootstrap"] == "kafka:9092"
    assert seen["rf"] == 3
    assert seen["declared"] == topics.declared_topics(3)


def test_cli_requires_the_bootstrap_servers() -> None:
    with pytest.raises(SystemExit):
        topics.main([])
