-- name: NotifyJobEvent :exec
-- One job event, delivered when the caller's transaction commits.
SELECT pg_notify('scanorama_events', @payload::text);

-- name: NotifyJobEvents :exec
-- A batch of job events in one short transaction (events.Publisher).
SELECT pg_notify('scanorama_events', p) FROM unnest(@payloads::text[]) AS p;
