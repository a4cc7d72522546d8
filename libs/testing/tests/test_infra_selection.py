"""The documented order: env var, then local cluster, then testcontainers, else a clear error."""

import pytest
from parley_testing.infra import NoServer, Server, host_port, locate


def never(*_: object) -> bool:
    return False


def always(*_: object) -> bool:
    return True


def test_env_var_wins_even_when_local_cluster_answers() -> None:
    found = locate(Server.KAFKA, {"KAFKA_BOOTSTRAP_SERVERS": "k:1"}, probe=always, docker=always)
    assert (found.address, found.source) == ("k:1", "env")


def test_local_cluster_used_when_its_port_answers() -> None:
    probed: list[tuple[str, int]] = []

    def probe(host: str, port: int) -> bool:
        probed.append((host, port))
        return True

    found = locate(Server.POSTGRES, {"PARLEY_PG_PORT": "6543"}, probe=probe, docker=never)
    assert found.source == "local-cluster"
    assert probed == [("127.0.0.1", 6543)]
    assert found.address.startswith("postgresql://parley:parley@127.0.0.1:6543/")


def test_testcontainers_only_when_nothing_local_and_docker_reachable() -> None:
    assert locate(Server.MONGO, {}, probe=never, docker=always).source == "testcontainers"


def test_no_server_is_an_error_naming_the_variable() -> None:
    with pytest.raises(NoServer, match="MONGO_URL"):
        locate(Server.MONGO, {}, probe=never, docker=never)


@pytest.mark.parametrize(
    ("server", "address", "expected"),
    [
        (Server.KAFKA, "10.0.0.1:19092,other:9092", ("10.0.0.1", 19092)),
        (Server.POSTGRES, "postgresql://u:p@db:6000/x", ("db", 6000)),
        (Server.MONGO, "mongodb://m/", ("m", 27017)),
    ],
)
def test_host_port(server: Server, address: str, expected: tuple[str, int]) -> None:
    assert host_port(server, address) == expected
