-- name: NotifyJobEvent :exec
-- One job event, delivered when the caller's transaction commits.
SELECT pg_notify('scanorama_events', @payload::text);

-- name: NotifyJobEvents :exec
-- A batch of job events in one short transaction (events.Publisher). The
-- transaction commits without waiting for its WAL flush (set_config(...,
-- true) lasts until the statement's own transaction ends): PostgreSQL wakes
-- listeners only after the commit, so waiting for the flush delayed every
-- watcher by an fsync, and a notification is a hint that a crash may lose
-- anyway (listeners re-read everything when they reconnect).
SELECT pg_notify('scanorama_events', p)
FROM set_config('synchronous_commit', 'off', true) AS c, unnest(@payloads::text[]) AS p;
