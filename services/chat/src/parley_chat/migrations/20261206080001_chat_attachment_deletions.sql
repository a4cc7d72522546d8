-- A deleted message's attachments are deleted with it (objects, then rows). The delete handler
-- marks them (`deleting_since`) before it appends MessageDeleted and deletes them after; the
-- janitor finishes what a process that died in between left, and clears the marks of
-- deletions that were never appended (refused, or failed).

-- migrate:up

ALTER TABLE attachments ADD COLUMN deleting_since timestamptz;
CREATE INDEX attachments_message ON attachments (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX attachments_deleting ON attachments (deleting_since)
    WHERE deleting_since IS NOT NULL;

-- migrate:down

DROP INDEX attachments_deleting;
DROP INDEX attachments_message;
ALTER TABLE attachments DROP COLUMN deleting_since;
