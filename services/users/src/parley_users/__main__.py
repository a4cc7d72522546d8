"""`python -m parley_users`: serve the users command API."""

from parley_commandkit.entry import serve

from parley_users.bootstrap import bootstrap
from parley_users.config import Settings

if __name__ == "__main__":
    serve("users", Settings, bootstrap)
