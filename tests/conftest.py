pytest_plugins = ["tests.support.plugin", "tests.support.venvs"]
