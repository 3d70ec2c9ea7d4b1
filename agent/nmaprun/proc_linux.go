//go:build linux

package nmaprun

import "syscall"

// sysProcAttr puts nmap in its own process group, so that it and anything
// it spawns can be killed together, and makes the kernel SIGKILL nmap when
// the thread that started it dies (see Runner.Run for why that thread is
// locked for the whole run).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
