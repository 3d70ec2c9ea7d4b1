package state

import pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"

// WebhookFormat is webhooks.format.
type WebhookFormat string

// Webhook formats (webhooks_format_check).
const (
	FormatJSON  WebhookFormat = "json"
	FormatSlack WebhookFormat = "slack"
)

var webhookFormats = newMapping("webhook format",
	pair[WebhookFormat, pb.WebhookFormat]{FormatJSON, pb.WebhookFormat_WEBHOOK_FORMAT_JSON},
	pair[WebhookFormat, pb.WebhookFormat]{FormatSlack, pb.WebhookFormat_WEBHOOK_FORMAT_SLACK},
)

// WebhookFormats lists every webhook format.
func WebhookFormats() []WebhookFormat { return webhookFormats.values() }

// ParseWebhookFormat reads a format from the database.
func ParseWebhookFormat(s string) (WebhookFormat, error) { return webhookFormats.parse(s) }

// ToPB is the API's value of f; an unknown format is an error.
func (f WebhookFormat) ToPB() (pb.WebhookFormat, error) { return webhookFormats.to(f) }

// WebhookFormatFromPB is the database string of an API format. UNSPECIFIED
// is an error here; callers that default it (to JSON) do so themselves.
func WebhookFormatFromPB(p pb.WebhookFormat) (WebhookFormat, error) { return webhookFormats.from(p) }

// DeliveryState is webhook_deliveries.state.
type DeliveryState string

// Delivery states (webhook_deliveries_state_check).
const (
	DeliveryPending   DeliveryState = "pending"
	DeliveryDelivered DeliveryState = "delivered"
	DeliveryDead      DeliveryState = "dead"
)

var deliveryStates = newMapping("webhook delivery state",
	pair[DeliveryState, pb.WebhookDeliveryState]{DeliveryPending, pb.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_PENDING},
	pair[DeliveryState, pb.WebhookDeliveryState]{DeliveryDelivered, pb.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_DELIVERED},
	pair[DeliveryState, pb.WebhookDeliveryState]{DeliveryDead, pb.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_DEAD},
)

// DeliveryStates lists every delivery state.
func DeliveryStates() []DeliveryState { return deliveryStates.values() }

// ParseDeliveryState reads a state from the database.
func ParseDeliveryState(s string) (DeliveryState, error) { return deliveryStates.parse(s) }

// ToPB is the API's value of d; an unknown state is an error.
func (d DeliveryState) ToPB() (pb.WebhookDeliveryState, error) { return deliveryStates.to(d) }

// DeliveryStateFromPB is the database string of an API state; UNSPECIFIED
// is an error (a filter that wants "any" checks for it first).
func DeliveryStateFromPB(p pb.WebhookDeliveryState) (DeliveryState, error) {
	return deliveryStates.from(p)
}
