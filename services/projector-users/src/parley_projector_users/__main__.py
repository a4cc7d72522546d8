"""`python -m parley_projector_users`: the composition root of the users projector.

Re-drive and rebuild are the read-model library's commands, with this projection's entry
point name (`users`):
    python -m parley_readmodel.redrive --group projector-users --projection users
    python -m parley_readmodel.rebuild --projection users
"""

from __future__ import annotations

from parley_readmodel.service import main

from parley_projector_users.config import Settings
from parley_projector_users.views import users_projection

if __name__ == "__main__":
    main(Settings(), users_projection)
