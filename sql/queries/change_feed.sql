-- Change feed (host_history in feed_seq order) and webhooks.

-- name: GetChangeFeedState :one
SELECT epoch, pruned_through, pruned_at,
       greatest((SELECT coalesce(max(feed_seq), 0) FROM host_history), pruned_through)::bigint AS tip,
       coalesce((SELECT min(feed_seq) FROM host_history), 0)::bigint AS oldest
FROM change_feed;

-- name: FeedPage :many
-- The changes after a cursor, in commit order, for one site (NULL: every
-- site). feed_page walks the feed in order (migration 0022); the sort here
-- only orders its page of at most row_limit rows after the joins.
SELECT hh.id, hh.host_id, hh.site_id, hh.job_id, hh.event, hh.port, hh.protocol, hh.old_value, hh.new_value,
       hh.changed_at, hh.changed_by, hh.change_reason, hh.feed_seq,
       s.name AS site_name, h.ip_address, h.hostname, j.target_id
FROM feed_page(sqlc.narg(site_id)::uuid, @after_seq, @row_limit) hh
JOIN hosts h ON h.id = hh.host_id
JOIN sites s ON s.id = hh.site_id
LEFT JOIN scan_jobs j ON j.id = hh.job_id
ORDER BY hh.feed_seq;

-- The join-free feed page (changefeed.ReadPage, for the webhook builder)
-- is scanned by hand: sqlc's :many grows its slice row by row. These are
-- its lookups, one each per page.

-- name: FeedPageHosts :many
-- The address and name of a feed page's hosts.
SELECT id, ip_address, hostname FROM hosts WHERE id = ANY(@ids::uuid[]);

-- name: FeedPageSites :many
SELECT id, name FROM sites WHERE id = ANY(@ids::uuid[]);

-- name: FeedPageJobTargets :many
-- The targets of a feed page's jobs, for a webhook that filters by target.
SELECT id, target_id FROM scan_jobs WHERE id = ANY(@ids::uuid[]);

-- name: PruneChangeFeed :one
SELECT prune_change_feed(@cutoff::timestamptz)::bigint;

-- name: CreateWebhook :one
WITH w AS (
    INSERT INTO webhooks (name, url, site_id, target_id, events, secret, down_after_scans, format, created_by)
    VALUES (@name, @url, sqlc.narg(site_id), sqlc.narg(target_id), @events::text[], @secret, @down_after_scans,
            @format, @created_by)
    RETURNING *
), c AS (
    -- A new webhook starts at the tip: it reports what changes from now on.
    INSERT INTO webhook_cursors (webhook_id, feed_seq)
    SELECT w.id, (SELECT coalesce(max(feed_seq), 0) FROM host_history) FROM w
)
SELECT * FROM w;

-- name: GetWebhook :one
SELECT * FROM webhooks WHERE id = @id;

-- name: ListWebhooks :many
SELECT sqlc.embed(w), s.name AS site_name, c.feed_seq AS cursor_seq,
       (SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'pending')::bigint AS pending,
       (SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'dead')::bigint AS dead
FROM webhooks w
LEFT JOIN sites s ON s.id = w.site_id
JOIN webhook_cursors c ON c.webhook_id = w.id
WHERE w.name > @after_name
ORDER BY w.name
LIMIT @row_limit;

-- name: DeleteWebhook :execrows
DELETE FROM webhooks WHERE id = @id;

-- name: ClaimWebhooks :many
-- A dispatcher's claim, held by its open transaction: several controllers
-- never work on the same webhook at once.
SELECT * FROM webhooks ORDER BY id LIMIT @row_limit FOR NO KEY UPDATE SKIP LOCKED;

-- name: GetWebhookCursor :one
SELECT feed_seq FROM webhook_cursors WHERE webhook_id = @webhook_id;

-- name: SetWebhookCursor :exec
UPDATE webhook_cursors SET feed_seq = @feed_seq WHERE webhook_id = @webhook_id;

-- name: NextWebhookDeliveries :many
-- The oldest deliveries not yet delivered, in order: deliveries go out in
-- order, so a dead one holds the line until it is re-driven. after_seq
-- skips those the sender POSTed already and is still marking delivered.
-- The bodies of held (deliveries this controller built in this turn and
-- holds in memory) come back empty: not read from TOAST, decompressed and
-- sent a second time.
SELECT id, webhook_id, seq, first_feed_seq, last_feed_seq, event_count,
       (CASE WHEN id = ANY(@held::uuid[]) THEN ''::bytea ELSE body END)::bytea AS body,
       state, attempts, next_attempt_at, last_error, last_status, created_at, delivered_at
FROM webhook_deliveries
WHERE webhook_id = @webhook_id AND state <> 'delivered' AND seq > @after_seq
ORDER BY seq
LIMIT @row_limit;

-- name: MarkWebhookDeliveriesDelivered :exec
-- Deliveries a sender POSTed successfully, with each one's HTTP status.
UPDATE webhook_deliveries w
SET state = 'delivered', attempts = w.attempts + 1, delivered_at = now(), last_status = d.status, last_error = NULL
FROM (SELECT unnest(@ids::uuid[]) AS id, unnest(@statuses::int[]) AS status) AS d
WHERE w.id = d.id;

-- name: MarkWebhookFailed :exec
UPDATE webhook_deliveries
SET state = CASE WHEN @dead::boolean THEN 'dead' ELSE 'pending' END,
    attempts = attempts + 1,
    next_attempt_at = now() + make_interval(secs => @retry_after_seconds::float8),
    last_status = sqlc.narg(last_status), last_error = @last_error
WHERE id = @id;

-- name: ListWebhookDeliveries :many
SELECT id, webhook_id, seq, first_feed_seq, last_feed_seq, event_count, state, attempts, next_attempt_at,
       last_error, last_status, created_at, delivered_at
FROM webhook_deliveries
WHERE webhook_id = @webhook_id
  AND (sqlc.narg(state)::text IS NULL OR state = sqlc.narg(state))
  AND seq < @before_seq
ORDER BY seq DESC
LIMIT @row_limit;

-- name: RetryWebhookDeliveries :execrows
UPDATE webhook_deliveries
SET state = 'pending', attempts = 0, next_attempt_at = now()
WHERE webhook_id = @webhook_id AND state = 'dead';

-- name: AddPendingDown :exec
INSERT INTO webhook_pending_downs (webhook_id, host_id, history_id, feed_seq, since)
VALUES (@webhook_id, @host_id, @history_id, @feed_seq, @since)
ON CONFLICT (webhook_id, host_id) DO NOTHING;

-- name: DeletePendingDown :execrows
DELETE FROM webhook_pending_downs WHERE webhook_id = @webhook_id AND host_id = @host_id;

-- name: CountPendingDowns :one
SELECT count(*) FROM webhook_pending_downs WHERE webhook_id = @webhook_id;

-- name: DuePendingDowns :many
-- Held-back host_down changes whose host has now been missed by
-- down_after_scans completed scans in a row (the scan that first missed it
-- included) and has not come back since.
SELECT sqlc.embed(hh), s.name AS site_name, h.ip_address, h.hostname, j.target_id
FROM webhook_pending_downs p
JOIN host_history hh ON hh.id = p.history_id
JOIN hosts h ON h.id = p.host_id
JOIN sites s ON s.id = hh.site_id
LEFT JOIN scan_jobs j ON j.id = hh.job_id
WHERE p.webhook_id = @webhook_id
  AND h.status = 'down'
  AND NOT EXISTS (SELECT 1 FROM host_history u
                  WHERE u.host_id = p.host_id AND u.feed_seq > p.feed_seq AND u.event IN ('host_up', 'host_discovered'))
  AND (SELECT count(*) FROM scan_jobs sj
       WHERE sj.site_id = h.site_id AND sj.status = 'completed' AND sj.completed_at >= p.since
         AND h.ip_address <<= sj.network AND NOT h.ip_address <<= ANY (sj.exclusions)) >= @down_after_scans::int
ORDER BY p.feed_seq;

-- name: DeletePendingDownsOfGoneHistory :exec
DELETE FROM webhook_pending_downs p
WHERE p.webhook_id = @webhook_id AND NOT EXISTS (SELECT 1 FROM host_history hh WHERE hh.id = p.history_id);
