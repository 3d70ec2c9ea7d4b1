package webhooks

import (
	"fmt"
	"net/url"
	"slices"

	"github.com/scanorama/scanorama/controller/state"
)

// Events a webhook can filter on: host_history's events.
var Events = eventNames()

func eventNames() []string {
	var out []string
	for _, e := range state.ChangeEvents() {
		out = append(out, string(e))
	}
	return out
}

// CheckURL accepts an absolute http or https URL with a host and nothing a
// POST cannot carry.
func CheckURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("required, e.g. \"https://hooks.example.com/scanorama\"")
	}
	if len(raw) > 2048 {
		return fmt.Errorf("longer than 2048 bytes")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %q", raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme must be http or https, not %q", u.Scheme)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("has no host: %q", raw)
	}
	if u.User != nil {
		return fmt.Errorf("must not carry credentials; the signature authenticates deliveries")
	}
	if u.Fragment != "" {
		return fmt.Errorf("must not have a fragment")
	}
	return nil
}

// CheckEvents accepts known event names, each once.
func CheckEvents(events []string) error {
	for i, e := range events {
		if !slices.Contains(Events, e) {
			return fmt.Errorf("unknown event %q; one of %v", e, Events)
		}
		if slices.Contains(events[:i], e) {
			return fmt.Errorf("%q given twice", e)
		}
	}
	return nil
}
