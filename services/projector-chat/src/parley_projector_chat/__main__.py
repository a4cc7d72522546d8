"""`python -m parley_projector_chat`: the composition root of the chat projector.

Re-drive and rebuild are the read-model library's commands, with this projection's entry
point name (`chat`):
    python -m parley_readmodel.redrive --group projector-chat --projection chat
    python -m parley_readmodel.rebuild --projection chat
"""

from __future__ import annotations

from parley_readmodel.service import main

from parley_projector_chat.config import Settings
from parley_projector_chat.views import chat_projection

if __name__ == "__main__":
    main(Settings(), chat_projection)
