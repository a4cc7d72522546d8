"""`python -m parley_chat`: serve the chat command API."""

from parley_commandkit.entry import serve

from parley_chat.bootstrap import bootstrap
from parley_chat.config import Settings

if __name__ == "__main__":
    serve("chat", Settings, bootstrap)
