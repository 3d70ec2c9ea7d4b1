//go:build !linux

package pgserver

// removeShm is only implemented on Linux; elsewhere a killed server's small
// segment stays until reboot.
func removeShm(int) error { return nil }
