//go:build unix && !linux

package nmaprun

import "syscall"

// sysProcAttr puts nmap in its own process group, so that it and anything
// it spawns can be killed together. Only Linux offers a parent-death signal.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
