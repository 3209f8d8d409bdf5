import pytest

pytest_plugins = ["tests.support.plugin", "tests.support.venvs"]


def pytest_configure(config: pytest.Config) -> None:
    # Without the recordings a dozen modules fail to import with a bare FileNotFoundError.
    from tests.support.fixtures import FIXTURES

    if not (FIXTURES / "FORMATS.md").is_file():
        raise pytest.UsageError(
            f"the recorded provider streams are not at {FIXTURES}: clone the repository beside "
            "the shared/ folder that holds fixtures/streams, or set SSE_LLM_FIXTURES to it"
        )
