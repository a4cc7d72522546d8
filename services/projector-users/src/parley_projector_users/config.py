"""Settings from the environment (`PROJECTOR_*`, pydantic-settings)."""

from __future__ import annotations

from parley_readmodel.service import ProjectorSettings


class Settings(ProjectorSettings):
    name: str = "projector-users"
