"""Command handlers: plain async functions, one per command, in one routing table.

The HTTP layer and the policy (policy.py) call `handle` with the same commands. Each handler
loads one aggregate, lets it decide, and saves its events with the outbox rows in one
transaction (the repository does both).
"""

from __future__ import annotations

from dataclasses import dataclass

from parley_commandkit import CommandBus, Context
from parley_commandkit.appending import execute
from parley_eventstore.aggregate import Repository
from parley_eventstore.records import AppendResult

from parley_notifications.commands import (
    CreateNotification,
    MarkEmailed,
    MarkRead,
    UpdatePreferences,
)
from parley_notifications.domain import Notification, Preferences


@dataclass(frozen=True)
class Repositories:
    notifications: Repository[Notification]
    preferences: Repository[Preferences]


BUS: CommandBus[Repositories] = CommandBus("notifications")


@BUS.register(CreateNotification)
async def create_notification(
    repos: Repositories, command: CreateNotification, ctx: Context
) -> AppendResult:
    c = command
    return await execute(
        repos.notifications,
        c.notification_id,
        lambda n: n.create(
            c.user_id, c.conversation_id, c.message_id, c.sender_id, c.content, c.mention
        ),
        ctx,
    )


@BUS.register(MarkRead)
async def mark_read(repos: Repositories, command: MarkRead, ctx: Context) -> AppendResult:
    return await execute(
        repos.notifications, command.notification_id, lambda n: n.mark_read(command.user_id), ctx
    )


@BUS.register(MarkEmailed)
async def mark_emailed(repos: Repositories, command: MarkEmailed, ctx: Context) -> AppendResult:
    return await execute(
        repos.notifications, command.notification_id, lambda n: n.mark_emailed(), ctx
    )


@BUS.register(UpdatePreferences)
async def update_preferences(
    repos: Repositories, command: UpdatePreferences, ctx: Context
) -> AppendResult:
    c = command
    return await execute(
        repos.preferences,
        c.user_id,
        lambda p: p.update(c.in_app, c.email, c.muted_conversations, c.muted_mentions),
        ctx,
    )


# run one command, in its own span (parley_commandkit.CommandBus)
handle = BUS.append
