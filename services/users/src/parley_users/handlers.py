"""Command handlers: plain async functions, one per command, in one routing table.

A handler loads the aggregate, asks it to decide, and saves the new events with the outbox
row in one transaction (the repository does both). No HTTP here: the HTTP layer and, later,
the saga's Kafka consumer call `handle` with the same commands.
"""

from __future__ import annotations

from parley_commandkit import CommandBus, Context
from parley_commandkit.appending import execute
from parley_eventstore.aggregate import Repository
from parley_eventstore.records import AppendResult

from parley_users.commands import (
    AddContact,
    AssignRole,
    Block,
    ChangeEmail,
    CreateUser,
    Deactivate,
    ForgetUser,
    Reactivate,
    RemoveContact,
    Unblock,
    UpdateProfile,
)
from parley_users.domain import User

BUS: CommandBus[Repository[User]] = CommandBus("users")


@BUS.register(CreateUser)
async def create_user(users: Repository[User], command: CreateUser, ctx: Context) -> AppendResult:
    return await execute(
        users, command.user_id, lambda u: u.create(command.name, command.email), ctx, retries=0
    )


@BUS.register(UpdateProfile)
async def update_profile(
    users: Repository[User], command: UpdateProfile, ctx: Context
) -> AppendResult:
    # edits of different fields commute, so a concurrent edit is retried on a fresh load
    return await execute(users, command.user_id, lambda u: u.update_profile(command.changes), ctx)


@BUS.register(Deactivate)
async def deactivate(users: Repository[User], command: Deactivate, ctx: Context) -> AppendResult:
    return await execute(users, command.user_id, lambda u: u.deactivate(command.reason), ctx)


@BUS.register(Reactivate)
async def reactivate(users: Repository[User], command: Reactivate, ctx: Context) -> AppendResult:
    return await execute(users, command.user_id, lambda u: u.reactivate(), ctx)


@BUS.register(AddContact)
async def add_contact(users: Repository[User], command: AddContact, ctx: Context) -> AppendResult:
    """Any id but one's own, like a block: whether `contact_id` is a user is not checked.
    A 404 for an unknown id would tell a fresh registration's profile (made by the saga before
    its address is verified) from the decoy id a taken address gets, so registering someone's
    address and adding the id as a contact would reveal whether the address has an account.
    The contact list shows a name only for a user others may see (the query gateway)."""
    return await execute(users, command.user_id, lambda u: u.add_contact(command.contact_id), ctx)


@BUS.register(RemoveContact)
async def remove_contact(
    users: Repository[User], command: RemoveContact, ctx: Context
) -> AppendResult:
    return await execute(
        users, command.user_id, lambda u: u.remove_contact(command.contact_id), ctx
    )


@BUS.register(Block)
async def block(users: Repository[User], command: Block, ctx: Context) -> AppendResult:
    return await execute(users, command.user_id, lambda u: u.block(command.other_id), ctx)


@BUS.register(Unblock)
async def unblock(users: Repository[User], command: Unblock, ctx: Context) -> AppendResult:
    return await execute(users, command.user_id, lambda u: u.unblock(command.other_id), ctx)


@BUS.register(AssignRole)
async def assign_role(users: Repository[User], command: AssignRole, ctx: Context) -> AppendResult:
    return await execute(users, command.user_id, lambda u: u.assign_role(command.role), ctx)


@BUS.register(ChangeEmail)
async def change_email(users: Repository[User], command: ChangeEmail, ctx: Context) -> AppendResult:
    return await execute(users, command.user_id, lambda u: u.change_email(command.email), ctx)


@BUS.register(ForgetUser)
async def forget_user(users: Repository[User], command: ForgetUser, ctx: Context) -> AppendResult:
    outcome = await execute(users, command.user_id, lambda u: u.forget(command.forgotten_by), ctx)
    # the snapshot holds the profile in plaintext; the next load folds redacted events
    await users.store.delete_snapshots(command.user_id)
    return outcome


# run one command, in its own span (parley_commandkit.CommandBus)
handle = BUS.append
