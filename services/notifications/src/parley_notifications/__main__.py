"""`python -m parley_notifications`: serve the notifications command API and its policy."""

from parley_commandkit.entry import serve

from parley_notifications.bootstrap import bootstrap
from parley_notifications.config import Settings

if __name__ == "__main__":
    serve("notifications", Settings, bootstrap)
