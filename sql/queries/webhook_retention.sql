-- name: RetentionDeleteDeliveries :execrows
-- One batch of delivered webhook deliveries older than the cutoff, oldest
-- first (webhook_deliveries_delivered).
DELETE FROM webhook_deliveries
WHERE id IN (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.state = 'delivered' AND d.delivered_at < @cutoff
    ORDER BY d.delivered_at
    LIMIT @batch::int
);
