-- Delivered webhook deliveries are deleted after --webhook-delivery-retention
-- (a retention pass, in bounded batches, oldest first). Pending and dead
-- deliveries stay: the first are still to be sent, the second wait for an
-- operator's RetryWebhookDeliveries.
CREATE INDEX webhook_deliveries_delivered ON webhook_deliveries (delivered_at) WHERE state = 'delivered';
