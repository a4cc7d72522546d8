"""`python -m parley_auth`: serve the auth command API."""

from parley_commandkit.entry import serve

from parley_auth.bootstrap import bootstrap
from parley_auth.config import Settings

if __name__ == "__main__":
    serve("auth", Settings, bootstrap)
