"""`python -m parley_projector_notifications`: the composition root of the notifications projector.

Re-drive and rebuild are the read-model library's commands, with this projection's entry
point name (`notifications`):
    python -m parley_readmodel.redrive --group projector-notifications --projection notifications
    python -m parley_readmodel.rebuild --projection notifications
"""

from __future__ import annotations

from parley_readmodel.service import main

from parley_projector_notifications.config import Settings
from parley_projector_notifications.views import notifications_projection

if __name__ == "__main__":
    main(Settings(), notifications_projection)
