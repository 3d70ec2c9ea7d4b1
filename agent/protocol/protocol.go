// Package protocol owns the agent–controller wire protocol version: which
// version this build speaks and which agent versions a controller accepts.
// Bump Version when an agent of the new version needs a controller that
// understands it (or the other way round), and raise Min when a controller
// stops serving older agents.
package protocol

import "fmt"

const (
	// Version is the protocol this build speaks. 2 added partial results of
	// interrupted scans (ScanSummary.partial).
	Version uint32 = 2
	// Min is the oldest agent protocol a controller of this build serves.
	Min uint32 = 1
	// legacy is what an agent that sends no version speaks (it predates
	// versioning).
	legacy uint32 = 1
)

// Effective maps an agent's reported version to the one it speaks: 0 means
// an agent from before versioning.
func Effective(reported uint32) uint32 {
	if reported == 0 {
		return legacy
	}
	return reported
}

// Check reports why a controller of this build cannot serve an agent that
// reported version reported, or nil.
func Check(reported uint32) error {
	v := Effective(reported)
	if v < Min || v > Version {
		return fmt.Errorf("agent speaks protocol version %d; this controller speaks versions %d to %d", v, Min, Version)
	}
	return nil
}
