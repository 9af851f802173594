"""Session-wide fixtures: real services start once per test session."""

pytest_plugins = [
    "tests.fixtures.redis_server",
    "tests.fixtures.redis_cluster",
    "tests.fixtures.redis_sentinel",
    "tests.fixtures.servers",
    "tests.fixtures.stores",
    "tests.fixtures.hardhat",
    "tests.fixtures.evm",
    "tests.fixtures.schedule",
]
