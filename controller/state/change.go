package state

// ChangeEvent is host_history.event: one change between consecutive scans
// of a host, written by ingest_commit. The API carries it as a string
// (HostChange.event, Webhook.events).
type ChangeEvent string

// Change events (host_history_event_check).
const (
	HostDiscovered ChangeEvent = "host_discovered"
	HostUp         ChangeEvent = "host_up"
	HostDown       ChangeEvent = "host_down"
	PortOpened     ChangeEvent = "port_opened"
	PortClosed     ChangeEvent = "port_closed"
	ServiceChanged ChangeEvent = "service_changed"
	OSChanged      ChangeEvent = "os_changed"
)

var changeEvents = newVocab("change event", HostDiscovered, HostUp, HostDown, PortOpened, PortClosed, ServiceChanged, OSChanged)

// ChangeEvents lists every change event.
func ChangeEvents() []ChangeEvent { return changeEvents.values() }

// ParseChangeEvent reads an event name from the database or a request.
func ParseChangeEvent(s string) (ChangeEvent, error) { return changeEvents.parse(s) }
